build-m/calib/stats.o: calib/stats.c calib/calib.h awq/awq.h \
 model/model.h base/base.h io/io.h datasets/datasets.h quant/quant.h \
 gptq/gptq.h
calib/calib.h:
awq/awq.h:
model/model.h:
base/base.h:
io/io.h:
datasets/datasets.h:
quant/quant.h:
gptq/gptq.h:
