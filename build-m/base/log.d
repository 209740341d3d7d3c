build-m/base/log.o: base/log.c base/base.h
base/base.h:
