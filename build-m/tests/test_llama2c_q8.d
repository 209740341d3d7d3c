build-m/tests/test_llama2c_q8.o: tests/test_llama2c_q8.c eval/eval.h \
 base/base.h datasets/datasets.h model/model.h io/io.h io/llama2c.h \
 tests/check.h
eval/eval.h:
base/base.h:
datasets/datasets.h:
model/model.h:
io/io.h:
io/llama2c.h:
tests/check.h:
