build-m/calib/prestep.o: calib/prestep.c calib/internal.h calib/calib.h \
 awq/awq.h model/model.h base/base.h io/io.h datasets/datasets.h \
 quant/quant.h gptq/gptq.h smooth/smooth.h
calib/internal.h:
calib/calib.h:
awq/awq.h:
model/model.h:
base/base.h:
io/io.h:
datasets/datasets.h:
quant/quant.h:
gptq/gptq.h:
smooth/smooth.h:
