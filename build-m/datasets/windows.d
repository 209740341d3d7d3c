build-m/datasets/windows.o: datasets/windows.c datasets/datasets.h \
 base/base.h
datasets/datasets.h:
base/base.h:
