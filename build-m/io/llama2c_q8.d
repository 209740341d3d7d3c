build-m/io/llama2c_q8.o: io/llama2c_q8.c io/internal.h io/io.h \
 base/base.h datasets/datasets.h io/llama2c.h
io/internal.h:
io/io.h:
base/base.h:
datasets/datasets.h:
io/llama2c.h:
