build-m/datasets/tok_synth.o: datasets/tok_synth.c datasets/datasets.h \
 base/base.h
datasets/datasets.h:
base/base.h:
