build-m/io/synth.o: io/synth.c io/internal.h io/io.h base/base.h \
 datasets/datasets.h
io/internal.h:
io/io.h:
base/base.h:
datasets/datasets.h:
