build-m/datasets/hf_regex.o: datasets/hf_regex.c datasets/hf_internal.h \
 datasets/datasets.h base/base.h
datasets/hf_internal.h:
datasets/datasets.h:
base/base.h:
