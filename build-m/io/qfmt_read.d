build-m/io/qfmt_read.o: io/qfmt_read.c io/qformat.h io/internal.h io/io.h \
 base/base.h datasets/datasets.h
io/qformat.h:
io/internal.h:
io/io.h:
base/base.h:
datasets/datasets.h:
