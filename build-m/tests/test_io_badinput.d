build-m/tests/test_io_badinput.o: tests/test_io_badinput.c io/io.h \
 base/base.h datasets/datasets.h tests/check.h
io/io.h:
base/base.h:
datasets/datasets.h:
tests/check.h:
