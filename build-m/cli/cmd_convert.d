build-m/cli/cmd_convert.o: cli/cmd_convert.c cli/cli.h base/base.h \
 datasets/datasets.h eval/eval.h model/model.h io/io.h
cli/cli.h:
base/base.h:
datasets/datasets.h:
eval/eval.h:
model/model.h:
io/io.h:
