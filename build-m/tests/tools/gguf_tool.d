build-m/tests/tools/gguf_tool.o: tests/tools/gguf_tool.c io/gguf.h \
 io/internal.h io/io.h base/base.h datasets/datasets.h
io/gguf.h:
io/internal.h:
io/io.h:
base/base.h:
datasets/datasets.h:
