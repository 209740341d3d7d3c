build-m/cli/args.o: cli/args.c cli/cli.h base/base.h datasets/datasets.h \
 eval/eval.h model/model.h io/io.h
cli/cli.h:
base/base.h:
datasets/datasets.h:
eval/eval.h:
model/model.h:
io/io.h:
