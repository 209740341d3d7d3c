build-m/awq/clip.o: awq/clip.c awq/internal.h awq/awq.h model/model.h \
 base/base.h io/io.h datasets/datasets.h quant/quant.h
awq/internal.h:
awq/awq.h:
model/model.h:
base/base.h:
io/io.h:
datasets/datasets.h:
quant/quant.h:
