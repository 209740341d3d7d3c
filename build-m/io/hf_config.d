build-m/io/hf_config.o: io/hf_config.c io/qformat.h io/internal.h io/io.h \
 base/base.h datasets/datasets.h
io/qformat.h:
io/internal.h:
io/io.h:
base/base.h:
datasets/datasets.h:
