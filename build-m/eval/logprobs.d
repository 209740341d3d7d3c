build-m/eval/logprobs.o: eval/logprobs.c eval/internal.h eval/eval.h \
 base/base.h datasets/datasets.h model/model.h io/io.h
eval/internal.h:
eval/eval.h:
base/base.h:
datasets/datasets.h:
model/model.h:
io/io.h:
