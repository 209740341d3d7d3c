build-m/io/gguf_read.o: io/gguf_read.c io/gguf.h io/internal.h io/io.h \
 base/base.h datasets/datasets.h
io/gguf.h:
io/internal.h:
io/io.h:
base/base.h:
datasets/datasets.h:
