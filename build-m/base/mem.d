build-m/base/mem.o: base/mem.c base/base.h
base/base.h:
