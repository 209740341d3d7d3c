build-m/tests/test_io.o: tests/test_io.c io/io.h base/base.h \
 datasets/datasets.h tests/check.h
io/io.h:
base/base.h:
datasets/datasets.h:
tests/check.h:
