build-m/tests/test_base.o: tests/test_base.c base/base.h tests/check.h
base/base.h:
tests/check.h:
