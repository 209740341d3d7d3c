build-m/datasets/decode.o: datasets/decode.c datasets/hf_internal.h \
 datasets/datasets.h base/base.h
datasets/hf_internal.h:
datasets/datasets.h:
base/base.h:
