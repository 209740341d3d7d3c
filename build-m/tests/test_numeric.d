build-m/tests/test_numeric.o: tests/test_numeric.c gptq/gptq.h \
 quant/quant.h base/base.h io/io.h datasets/datasets.h tests/check.h
gptq/gptq.h:
quant/quant.h:
base/base.h:
io/io.h:
datasets/datasets.h:
tests/check.h:
