build-m/io/dtype.o: io/dtype.c io/internal.h io/io.h base/base.h \
 datasets/datasets.h
io/internal.h:
io/io.h:
base/base.h:
datasets/datasets.h:
