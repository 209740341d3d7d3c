build-m/model/scale.o: model/scale.c model/model.h base/base.h io/io.h \
 datasets/datasets.h
model/model.h:
base/base.h:
io/io.h:
datasets/datasets.h:
