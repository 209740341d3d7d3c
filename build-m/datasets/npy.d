build-m/datasets/npy.o: datasets/npy.c datasets/datasets.h base/base.h
datasets/datasets.h:
base/base.h:
