build-m/calib/resume.o: calib/resume.c calib/calib.h awq/awq.h \
 model/model.h base/base.h io/io.h datasets/datasets.h quant/quant.h \
 gptq/gptq.h
calib/calib.h:
awq/awq.h:
model/model.h:
base/base.h:
io/io.h:
datasets/datasets.h:
quant/quant.h:
gptq/gptq.h:
