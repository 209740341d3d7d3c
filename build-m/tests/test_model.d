build-m/tests/test_model.o: tests/test_model.c datasets/datasets.h \
 base/base.h eval/eval.h model/model.h io/io.h tests/check.h
datasets/datasets.h:
base/base.h:
eval/eval.h:
model/model.h:
io/io.h:
tests/check.h:
