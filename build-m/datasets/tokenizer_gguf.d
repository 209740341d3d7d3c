build-m/datasets/tokenizer_gguf.o: datasets/tokenizer_gguf.c \
 datasets/hf_internal.h datasets/datasets.h base/base.h
datasets/hf_internal.h:
datasets/datasets.h:
base/base.h:
