build-m/datasets/hf_bpe.o: datasets/hf_bpe.c datasets/hf_internal.h \
 datasets/datasets.h base/base.h
datasets/hf_internal.h:
datasets/datasets.h:
base/base.h:
