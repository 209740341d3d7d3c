build-m/cli/cmd_synth.o: cli/cmd_synth.c cli/cli.h base/base.h \
 datasets/datasets.h eval/eval.h model/model.h io/io.h
cli/cli.h:
base/base.h:
datasets/datasets.h:
eval/eval.h:
model/model.h:
io/io.h:
