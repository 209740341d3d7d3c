build-m/datasets/tokenizer_json.o: datasets/tokenizer_json.c \
 datasets/hf_internal.h datasets/datasets.h base/base.h
datasets/hf_internal.h:
datasets/datasets.h:
base/base.h:
