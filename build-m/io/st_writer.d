build-m/io/st_writer.o: io/st_writer.c io/internal.h io/io.h base/base.h \
 datasets/datasets.h
io/internal.h:
io/io.h:
base/base.h:
datasets/datasets.h:
