build-m/cli/cmd_eval.o: cli/cmd_eval.c cli/cli.h base/base.h \
 datasets/datasets.h eval/eval.h model/model.h io/io.h
cli/cli.h:
base/base.h:
datasets/datasets.h:
eval/eval.h:
model/model.h:
io/io.h:
