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

typedef enum qc_method { QC_METHOD_RTN, QC_METHOD_GPTQ } qc_method;

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
    qc_dtype act_dtype;   /* how the residual stream of all windows is held between blocks:
                             F32 (0, the default), F16 or BF16 (half the memory, rounded once
                             per block); each chunk is computed in fp32 */
    const char *spill_dir; /* non-NULL: each result goes to a scratch file in this folder as
                              soon as it is solved (spill.c), instead of staying in memory */
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
} qc_layer_report;

/* ---- quantized results waiting for the writer (spill.c) ---- */

typedef struct qc_spill qc_spill;

/* A scratch file for n results in folder dir, unlinked at once (never seen in dir). */
qc_status qc_spill_open(qc_spill **s, const char *dir, size_t n, qc_err *e);
/* Appends result i's arrays to the file and frees them (q keeps its shape, arrays NULL). */
qc_status qc_spill_put(qc_spill *s, size_t i, qc_qweight *q, qc_err *e);
/* Maps the file: the arrays of every result put are pointed into it (read-only). */
qc_status qc_spill_map(qc_spill *s, qc_qweight *res, qc_err *e);
bool qc_spill_mapped(const qc_spill *s); /* NULL: false */
/* A writer is reading q: drops the pages of the result read before it. s NULL: no-op. */
void qc_spill_touch(qc_spill *s, const qc_qweight *q);
void qc_spill_close(qc_spill *s); /* NULL: no-op */

/* What calibration produced for a whole model. */
typedef struct qc_quantized {
    int n_layers;
    const qc_checkpoint *ck;   /* borrowed: the model's other weights */
    qc_qweight *res;      /* (n_layers, QC_LIN_COUNT); zeroed for keep_f16 linears */
    qc_spill *spill;      /* with opts.spill_dir: the arrays of res live in its mapping */
    qc_layer_report *reports;  /* (n_layers * QC_LIN_COUNT) in the order solved */
    int nreports;
    double seconds;
} qc_quantized;

/* Windows per forward chunk of the runner (o->batch_tokens). */
int qc_calib_chunk_windows(const qc_calib_opts *o, int nwin, int seqlen);

/* Calibrates and quantizes every linear layer of m on the windows w. */
qc_status qc_calibrate(qc_model *m, const qc_windows *w, const qc_calib_opts *o, qc_quantized *out,
                       qc_err *e);
void qc_quantized_free(qc_quantized *q);

/* The quantized model as a weight source for io/'s writers: linears dequantized from q,
 * everything else read from q->ck. */
qc_weight_source qc_quantized_source(const qc_quantized *q);

/* ---- the memory plan (plan.c) ---- */

/* Bytes each large buffer of a quantize run takes (see plan.c for what each one holds). */
typedef struct qc_mem_plan {
    size_t model_file;      /* the model's tensors on disk (mapped; never resident as a whole) */
    size_t activations;     /* the residual stream of all windows (act_dtype) + one fp32 chunk */
    size_t workspace;       /* the forward pass's scratch for one chunk */
    size_t block_weights;   /* one block in fp32 */
    size_t statistics;      /* the site statistics held at once (true-sequential: one site) */
    size_t largest_hessian; /* the largest site's statistics */
    int largest_hessian_cols;
    size_t solver;          /* the largest solve: weight and Hessian copies, factorization, scratch */
    size_t results_calibrating, results_exporting; /* quantized results resident */
    size_t exporter;        /* the writer's buffers (an upper bound over every format) */
    size_t runtime;         /* code, libraries, thread buffers: a fixed allowance */
    size_t calibration, export_phase, peak;
} qc_mem_plan;

/* The plan of calibrating the model of ck (already padded, if it is to be) on nwin windows
 * of seqlen tokens with o (o->spill_dir decides whether results are held) on threads. */
void qc_mem_plan_make(const qc_checkpoint *ck, int nwin, int seqlen, const qc_calib_opts *o, int threads,
                      qc_mem_plan *p);
/* One line: every figure in MB, the phases and the peak. */
void qc_mem_plan_describe(const qc_mem_plan *p, const qc_calib_opts *o, char *buf, size_t size);
/* Bytes of one quantized result of (rows, cols) under spec (codes, parameters, g_idx, perm). */
size_t qc_plan_result_bytes(int rows, int cols, const qc_quant_spec *s);

/* Writes the quant log as CSV and as JSON lines (one object per layer), atomically. */
qc_status qc_quant_log_write(const qc_quantized *q, const qc_calib_opts *o, const char *csv_path,
                             const char *jsonl_path, qc_err *e);

#endif
