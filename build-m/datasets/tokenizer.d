build-m/datasets/tokenizer.o: datasets/tokenizer.c datasets/hf_internal.h \
 datasets/datasets.h base/base.h
datasets/hf_internal.h:
datasets/datasets.h:
base/base.h:
