build-m/tests/test_smooth.o: tests/test_smooth.c model/model.h \
 base/base.h io/io.h datasets/datasets.h quant/quant.h smooth/smooth.h \
 tests/check.h tests/vectors.h
model/model.h:
base/base.h:
io/io.h:
datasets/datasets.h:
quant/quant.h:
smooth/smooth.h:
tests/check.h:
tests/vectors.h:
