build-m/tests/test_model_variants.o: tests/test_model_variants.c \
 tests/check.h calib/calib.h awq/awq.h model/model.h base/base.h io/io.h \
 datasets/datasets.h quant/quant.h gptq/gptq.h
tests/check.h:
calib/calib.h:
awq/awq.h:
model/model.h:
base/base.h:
io/io.h:
datasets/datasets.h:
quant/quant.h:
gptq/gptq.h:
