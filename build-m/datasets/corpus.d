build-m/datasets/corpus.o: datasets/corpus.c datasets/datasets.h \
 base/base.h
datasets/datasets.h:
base/base.h:
