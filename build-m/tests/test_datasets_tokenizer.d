build-m/tests/test_datasets_tokenizer.o: tests/test_datasets_tokenizer.c \
 datasets/datasets.h base/base.h tests/check.h
datasets/datasets.h:
base/base.h:
tests/check.h:
