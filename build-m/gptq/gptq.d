build-m/gptq/gptq.o: gptq/gptq.c gptq/gptq.h quant/quant.h base/base.h \
 io/io.h datasets/datasets.h gptq/internal.h
gptq/gptq.h:
quant/quant.h:
base/base.h:
io/io.h:
datasets/datasets.h:
gptq/internal.h:
