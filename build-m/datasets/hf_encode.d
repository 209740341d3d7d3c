build-m/datasets/hf_encode.o: datasets/hf_encode.c datasets/hf_internal.h \
 datasets/datasets.h base/base.h
datasets/hf_internal.h:
datasets/datasets.h:
base/base.h:
