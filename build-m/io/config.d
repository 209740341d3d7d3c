build-m/io/config.o: io/config.c io/internal.h io/io.h base/base.h \
 datasets/datasets.h
io/internal.h:
io/io.h:
base/base.h:
datasets/datasets.h:
