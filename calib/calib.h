/* calib.h — calibration: statistics of every linear layer's inputs, gathered by hooks on
 * the fp32 forward pass, and the runner that quantizes a model block by block.
 *
 *   windows ─embed─▶ x ─┬─ block i with hooks on a site's input ─▶ stats (Σxᵀx, max|x|, …)
 *                       ├─ solver on each linear of the site ──────▶ quantized weights
 *                       └─ block i again, quantized ──────────────▶ x for block i+1
 *
 * Only one block's weights and one site's statistics are in memory at a time, besides the
 * activations of the calibration windows. */
#ifndef QC_CALIB_H
#define QC_CALIB_H

#include "awq/awq.h"
#include "base/base.h"
#include "datasets/datasets.h"
#include "gptq/gptq.h"
#include "model/model.h"
#include "quant/quant.h"

/* ---- statistics of one input site (QUANT-SPEC §2) ---- */

typedef struct qc_stats {
    int n;            /* input features */
    int64_t count;    /* tokens seen */
    float *xtx;       /* (n, n) Σ xᵀx in fp32 (as the reference accumulates H); upper
                         triangle until qc_stats_finish, then full */
    float *absmax;    /* (n) max |x| (SmoothQuant) */
    double *sum_abs;  /* (n) Σ |x| (AWQ's mean|x|) */
    double *sum_sq;   /* (n) Σ x² (llama.cpp's importance matrix) */
} qc_stats;

qc_status qc_stats_init(qc_stats *s, int n, qc_err *e);
/* Adds ntok rows of x (ntok, n). Rejects NaN/Inf, naming `what`. */
qc_status qc_stats_add(qc_stats *s, const float *x, int ntok, const char *what, qc_err *e);
/* Mirrors the upper triangle of xtx into the lower one. */
void qc_stats_finish(qc_stats *s);
void qc_stats_free(qc_stats *s);

/* ---- the runner ---- */

/* The solvers, and the function-preserving rescaling that may come first (QUANT-SPEC §4–5):
 * awq = AWQ's scales and clipping, then round-to-nearest (AWQ-style parameters when the
 * spec says awq_range); awq+gptq = the same, then GPTQ; smoothquant = SmoothQuant's smoothing
 * (smooth_alpha), then round-to-nearest, or nothing (no_quant). */
typedef enum qc_method {
    QC_METHOD_RTN, QC_METHOD_GPTQ, QC_METHOD_AWQ, QC_METHOD_AWQ_GPTQ, QC_METHOD_SMOOTHQUANT
} qc_method;

const char *qc_method_name(qc_method m);

typedef struct qc_calib_opts {
    qc_method method;
    qc_quant_spec spec;
    qc_gptq_opts gptq;
    bool true_sequential; /* {q,k,v} → {o} → {gate,up} → {down}, each on inputs computed
                             with the earlier subsets quantized */
    bool keep_f16[QC_LIN_COUNT]; /* linears left unquantized, their weights rounded to fp16
                                    (what a file storing them as F16 holds) */
    int batch_tokens;     /* tokens per forward chunk (0: 2048, at least one window) */
    float smooth_alpha;   /* > 0: SmoothQuant smoothing with this α, before anything else */
    qc_awq_opts awq;      /* awq, awq+gptq: duo scaling, clipping (chunk_windows: set here) */
    bool propagate_fp32;  /* the next block's inputs from the fp32 (rescaled) block, as AWQ's
                             reference; else from the quantized block, as GPTQ's */
    bool no_quant;        /* smoothquant without weight quantization: linears stay fp32 */
    const qc_log *log;
    /* Optional: sees each site's finished statistics before its linears are solved (tests
     * compare them with the reference's Hessians; analysis tools record them). */
    qc_status (*observe)(void *ctx, int layer, qc_site site, const qc_stats *s, qc_err *e);
    void *observe_ctx;
} qc_calib_opts;

/* One row of the quant log: what happened to one linear layer. */
typedef struct qc_layer_report {
    int block;
    qc_linear linear;
    int rows, cols;
    double loss;      /* GPTQ's loss (0 for RTN) */
    double rel_err;   /* ‖XWᵀ − XQᵀ‖² / ‖XWᵀ‖² on the calibration inputs */
    double damp;      /* relative damping used (GPTQ) */
    int retries;      /* damping escalations (GPTQ) */
    bool fallback;    /* GPTQ fell back to round-to-nearest */
    bool kept_f16;    /* not quantized: weights rounded to fp16 (keep_f16) */
    int dead;         /* inputs never active in calibration */
    double seconds;
    int awq_grid;     /* AWQ: the grid point chosen for the group of the linear's input (the
                         exponent awq_grid / 20); -1: the input has no scaling group */
    double awq_loss, awq_loss0; /* that group's loss, and the unscaled candidate's (s = 1) */
    double clip_mean, clip_min; /* AWQ: clip range / max|w| over the linear's groups; 1: unclipped */
    double smooth_min, smooth_max; /* SmoothQuant: the range of the scales of the linear's input
                                      norm; 0: not smoothed */
} qc_layer_report;

/* Rescalings applied to a block before its linears are solved, in this order. */
enum { QC_STAGE_SMOOTH, QC_STAGE_AWQ, QC_SCALE_STAGES };

/* What calibration produced for a whole model. */
typedef struct qc_quantized {
    int n_layers;
    const qc_checkpoint *ck;   /* borrowed: the model's other weights */
    qc_qweight *res;      /* (n_layers, QC_LIN_COUNT); zeroed for keep_f16 linears */
    qc_layer_report *reports;  /* (n_layers * QC_LIN_COUNT) in the order solved */
    int nreports;
    float **scales;       /* (n_layers, QC_SCALE_STAGES, QC_SITE_COUNT) the scales of each stage
                             (qc_block_scale) folded into each block, NULL where none; writers
                             read norms and unquantized linears through them. NULL: none at all */
    bool fp32_linears;    /* unquantized linears are kept fp32 (no_quant), not fp16-rounded */
    double seconds;
} qc_quantized;

/* Calibrates and quantizes every linear layer of m on the windows w. */
qc_status qc_calibrate(qc_model *m, const qc_windows *w, const qc_calib_opts *o, qc_quantized *out,
                       qc_err *e);
void qc_quantized_free(qc_quantized *q);

/* The quantized model as a weight source for io/'s writers: linears dequantized from q,
 * everything else read from q->ck. */
qc_weight_source qc_quantized_source(const qc_quantized *q);

/* Writes the quant log as CSV and as JSON lines (one object per layer), atomically. */
qc_status qc_quant_log_write(const qc_quantized *q, const qc_calib_opts *o, const char *csv_path,
                             const char *jsonl_path, qc_err *e);

#endif
