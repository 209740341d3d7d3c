build-m/calib/runner.o: calib/runner.c calib/internal.h calib/calib.h \
 awq/awq.h model/model.h base/base.h io/io.h datasets/datasets.h \
 quant/quant.h gptq/gptq.h
calib/internal.h:
calib/calib.h:
awq/awq.h:
model/model.h:
base/base.h:
io/io.h:
datasets/datasets.h:
quant/quant.h:
gptq/gptq.h:
