build-m/datasets/calib_set.o: datasets/calib_set.c datasets/datasets.h \
 base/base.h
datasets/datasets.h:
base/base.h:
