build-m/io/jsonbuf.o: io/jsonbuf.c io/internal.h io/io.h base/base.h \
 datasets/datasets.h
io/internal.h:
io/io.h:
base/base.h:
datasets/datasets.h:
