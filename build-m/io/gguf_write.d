build-m/io/gguf_write.o: io/gguf_write.c io/gguf.h io/internal.h io/io.h \
 base/base.h datasets/datasets.h
io/gguf.h:
io/internal.h:
io/io.h:
base/base.h:
datasets/datasets.h:
