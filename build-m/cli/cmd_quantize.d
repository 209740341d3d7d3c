build-m/cli/cmd_quantize.o: cli/cmd_quantize.c calib/calib.h awq/awq.h \
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
