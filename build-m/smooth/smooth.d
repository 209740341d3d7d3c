build-m/smooth/smooth.o: smooth/smooth.c smooth/smooth.h model/model.h \
 base/base.h io/io.h datasets/datasets.h
smooth/smooth.h:
model/model.h:
base/base.h:
io/io.h:
datasets/datasets.h:
