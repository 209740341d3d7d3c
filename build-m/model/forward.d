build-m/model/forward.o: model/forward.c model/internal.h model/model.h \
 base/base.h io/io.h datasets/datasets.h
model/internal.h:
model/model.h:
base/base.h:
io/io.h:
datasets/datasets.h:
