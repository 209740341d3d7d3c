build-m/tests/test_stats.o: tests/test_stats.c calib/calib.h awq/awq.h \
 model/model.h base/base.h io/io.h datasets/datasets.h quant/quant.h \
 gptq/gptq.h tests/check.h
calib/calib.h:
awq/awq.h:
model/model.h:
base/base.h:
io/io.h:
datasets/datasets.h:
quant/quant.h:
gptq/gptq.h:
tests/check.h:
