build-m/quant/quant.o: quant/quant.c quant/quant.h base/base.h io/io.h \
 datasets/datasets.h
quant/quant.h:
base/base.h:
io/io.h:
datasets/datasets.h:
