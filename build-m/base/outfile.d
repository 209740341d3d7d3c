build-m/base/outfile.o: base/outfile.c base/base.h
base/base.h:
