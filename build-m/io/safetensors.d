build-m/io/safetensors.o: io/safetensors.c io/internal.h io/io.h \
 base/base.h datasets/datasets.h
io/internal.h:
io/io.h:
base/base.h:
datasets/datasets.h:
