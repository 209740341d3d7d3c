build-m/tests/test_qformats.o: tests/test_qformats.c io/io.h base/base.h \
 datasets/datasets.h tests/check.h
io/io.h:
base/base.h:
datasets/datasets.h:
tests/check.h:
