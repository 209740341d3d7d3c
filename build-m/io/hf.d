build-m/io/hf.o: io/hf.c io/qformat.h io/internal.h io/io.h base/base.h \
 datasets/datasets.h
io/qformat.h:
io/internal.h:
io/io.h:
base/base.h:
datasets/datasets.h:
