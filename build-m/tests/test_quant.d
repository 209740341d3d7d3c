build-m/tests/test_quant.o: tests/test_quant.c quant/quant.h base/base.h \
 io/io.h datasets/datasets.h tests/check.h
quant/quant.h:
base/base.h:
io/io.h:
datasets/datasets.h:
tests/check.h:
