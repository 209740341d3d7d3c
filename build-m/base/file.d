build-m/base/file.o: base/file.c base/base.h
base/base.h:
