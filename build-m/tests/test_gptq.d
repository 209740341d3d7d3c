build-m/tests/test_gptq.o: tests/test_gptq.c gptq/gptq.h quant/quant.h \
 base/base.h io/io.h datasets/datasets.h gptq/internal.h tests/check.h
gptq/gptq.h:
quant/quant.h:
base/base.h:
io/io.h:
datasets/datasets.h:
gptq/internal.h:
tests/check.h:
