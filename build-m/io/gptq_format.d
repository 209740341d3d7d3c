build-m/io/gptq_format.o: io/gptq_format.c io/qformat.h io/internal.h \
 io/io.h base/base.h datasets/datasets.h
io/qformat.h:
io/internal.h:
io/io.h:
base/base.h:
datasets/datasets.h:
