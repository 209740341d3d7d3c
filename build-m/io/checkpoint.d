build-m/io/checkpoint.o: io/checkpoint.c io/internal.h io/io.h \
 base/base.h datasets/datasets.h
io/internal.h:
io/io.h:
base/base.h:
datasets/datasets.h:
