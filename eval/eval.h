/* eval.h — how good a model is on text: perplexity by the protocol of QUANT-SPEC §6, and
 * the KL divergence and top-1 agreement of a model against the log-probabilities another
 * (usually the fp32) model saved on the same windows — llama.cpp's `llama-perplexity
 * --kl-divergence` measure, so quantized models can be judged beyond perplexity. */
#ifndef QC_EVAL_H
#define QC_EVAL_H

#include "base/base.h"
#include "datasets/datasets.h"
#include "model/model.h"

typedef struct qc_eval_opts {
    int batch_tokens;           /* tokens per forward chunk; 0: 2048 (at least one window) */
    const char *save_logprobs;  /* if set: write this model's log-probabilities there */
    const char *kld_base;       /* if set: compare with the log-probabilities saved there */
    const qc_log *log;
    int act_bits;               /* > 0: the input of every linear of every block quantized per
                                   token, symmetric and dynamic, to this many bits (8: W8A8's
                                   activations, QUANT-SPEC §5); 0: fp32 */
} qc_eval_opts;

typedef struct qc_eval_result {
    int seqlen, windows;
    int64_t scored;       /* predicted tokens: windows × (seqlen − 1) */
    double nll;           /* mean negative log-likelihood per predicted token, nats */
    double ppl;           /* exp(nll) */
    double max_abs_logit; /* the largest |logit| at the scored positions: the scale of the
                             logits' rounding, and what an fp16 runtime must hold (65504) */
    double seconds;
    /* against kld_base */
    bool has_kld;
    double kld_mean, kld_median, kld_p99, kld_max; /* KL(base ‖ model) per token, nats */
    double top1;          /* fraction of tokens where both models' argmax agree */
    double base_ppl;      /* the base model's perplexity on the same tokens */
} qc_eval_result;

/* Runs the model over every window; in each window, position p predicts token p + 1, and
 * the mean NLL is over all those predictions. */
qc_status qc_eval_perplexity(qc_model *m, const qc_windows *w, const qc_eval_opts *o,
                             qc_eval_result *r, qc_err *e);

/* Log-probability files (--save-logits / --kld-base), little endian:
 *   0  char[8] "QCLOGP01"
 *   8  u32 vocab, u32 seqlen, u32 windows, u32 reserved (0)
 *  24  i32 tokens[windows][seqlen]                       the windows evaluated
 *  ..  f32 logprobs[windows][seqlen - 1][vocab]          log-softmax of each prediction
 * The size is checked exactly against the header before anything is read. */
#define QC_LOGPROBS_MAGIC "QCLOGP01"

#endif
