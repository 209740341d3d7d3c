build-m/tests/test_datasets.o: tests/test_datasets.c datasets/datasets.h \
 base/base.h tests/check.h
datasets/datasets.h:
base/base.h:
tests/check.h:
