build-m/tests/test_limits.o: tests/test_limits.c io/io.h base/base.h \
 datasets/datasets.h tests/check.h
io/io.h:
base/base.h:
datasets/datasets.h:
tests/check.h:
