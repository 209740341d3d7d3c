build-m/model/block.o: model/block.c model/model.h base/base.h io/io.h \
 datasets/datasets.h
model/model.h:
base/base.h:
io/io.h:
datasets/datasets.h:
