build-m/io/qweight.o: io/qweight.c io/io.h base/base.h \
 datasets/datasets.h
io/io.h:
base/base.h:
datasets/datasets.h:
