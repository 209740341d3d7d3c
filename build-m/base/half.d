build-m/base/half.o: base/half.c base/base.h
base/base.h:
