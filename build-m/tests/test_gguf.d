build-m/tests/test_gguf.o: tests/test_gguf.c io/gguf.h io/internal.h \
 io/io.h base/base.h datasets/datasets.h tests/check.h
io/gguf.h:
io/internal.h:
io/io.h:
base/base.h:
datasets/datasets.h:
tests/check.h:
