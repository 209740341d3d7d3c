build-m/eval/perplexity.o: eval/perplexity.c eval/internal.h eval/eval.h \
 base/base.h datasets/datasets.h model/model.h io/io.h quant/quant.h
eval/internal.h:
eval/eval.h:
base/base.h:
datasets/datasets.h:
model/model.h:
io/io.h:
quant/quant.h:
