build-m/model/model.o: model/model.c model/internal.h model/model.h \
 base/base.h io/io.h datasets/datasets.h
model/internal.h:
model/model.h:
base/base.h:
io/io.h:
datasets/datasets.h:
