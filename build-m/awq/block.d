build-m/awq/block.o: awq/block.c awq/internal.h awq/awq.h model/model.h \
 base/base.h io/io.h datasets/datasets.h quant/quant.h
awq/internal.h:
awq/awq.h:
model/model.h:
base/base.h:
io/io.h:
datasets/datasets.h:
quant/quant.h:
