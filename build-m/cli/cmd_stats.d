build-m/cli/cmd_stats.o: cli/cmd_stats.c calib/calib.h awq/awq.h \
 model/model.h base/base.h io/io.h datasets/datasets.h quant/quant.h \
 gptq/gptq.h cli/cli.h eval/eval.h
calib/calib.h:
awq/awq.h:
model/model.h:
base/base.h:
io/io.h:
datasets/datasets.h:
quant/quant.h:
gptq/gptq.h:
cli/cli.h:
eval/eval.h:
