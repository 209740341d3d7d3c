build-m/tests/test_awq.o: tests/test_awq.c awq/awq.h model/model.h \
 base/base.h io/io.h datasets/datasets.h quant/quant.h tests/check.h \
 tests/vectors.h
awq/awq.h:
model/model.h:
base/base.h:
io/io.h:
datasets/datasets.h:
quant/quant.h:
tests/check.h:
tests/vectors.h:
