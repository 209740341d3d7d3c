build-m/base/pyrandom.o: base/pyrandom.c base/base.h
base/base.h:
