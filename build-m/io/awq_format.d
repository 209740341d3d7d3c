build-m/io/awq_format.o: io/awq_format.c io/qformat.h io/internal.h \
 io/io.h base/base.h datasets/datasets.h
io/qformat.h:
io/internal.h:
io/io.h:
base/base.h:
datasets/datasets.h:
