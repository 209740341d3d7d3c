build-m/io/qpack.o: io/qpack.c io/qformat.h io/internal.h io/io.h \
 base/base.h datasets/datasets.h
io/qformat.h:
io/internal.h:
io/io.h:
base/base.h:
datasets/datasets.h:
