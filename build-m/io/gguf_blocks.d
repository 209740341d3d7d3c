build-m/io/gguf_blocks.o: io/gguf_blocks.c io/gguf.h io/internal.h \
 io/io.h base/base.h datasets/datasets.h
io/gguf.h:
io/internal.h:
io/io.h:
base/base.h:
datasets/datasets.h:
