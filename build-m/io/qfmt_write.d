build-m/io/qfmt_write.o: io/qfmt_write.c io/qformat.h io/internal.h \
 io/io.h base/base.h datasets/datasets.h
io/qformat.h:
io/internal.h:
io/io.h:
base/base.h:
datasets/datasets.h:
