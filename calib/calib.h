/* calib.h — calibration: statistics of every linear layer's inputs, gathered by hooks on
 * the fp32 forward pass, and the runner that quantizes a model block by block.
 *
 *   windows ─embed─▶ x ─┬─ block i with hooks on a site's input ─▶ stats (Σxᵀx, max|x|, …)
 *                       ├─ solver on each linear of the site ──────▶ quantized weights
 *                       └─ block i again, quantized ──────────────▶ x for block i+1
 *
 * True-sequential, the block's activations between sites are kept instead (runner.c): each
 * site's input is computed once, from the one before through the linears just solved, and
 * the last one gives x for block i+1. Only one block's weights and one site's statistics are
 * in memory at a time, besides the activations of the calibration windows. */
#ifndef QC_CALIB_H
#define QC_CALIB_H

#include "awq/awq.h"
#include "base/base.h"
#include "datasets/datasets.h"
#include "dist/dist.h"
#include "gptq/gptq.h"
#include "model/model.h"
#include "quant/quant.h"

/* ---- statistics of one input site (QUANT-SPEC §2) ---- */

typedef struct qc_stats {
    int n;            /* input features */
    int64_t count;    /* tokens seen */
    float *xtx;       /* (n, n) Σ xᵀx in fp32 (as the reference accumulates H); upper
                         triangle until qc_stats_finish, then full; NULL for channels only */
    float *absmax;    /* (n) max |x| (SmoothQuant) */
    float *max, *min; /* (n) largest and smallest x (±INFINITY before any token) */
    double *sum_abs;  /* (n) Σ |x| (AWQ's mean|x|) */
    double *sum;      /* (n) Σ x */
    double *sum_sq;   /* (n) Σ x² (llama.cpp's importance matrix) */
    double seconds;   /* spent in qc_stats_add */
} qc_stats;

qc_status qc_stats_init(qc_stats *s, int n, qc_err *e);
/* The per-channel figures only, without Σ xᵀx (what analysis needs; n² memory spared). */
qc_status qc_stats_init_channels(qc_stats *s, int n, qc_err *e);
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
    QC_METHOD_RTN, QC_METHOD_GPTQ, QC_METHOD_AWQ, QC_METHOD_AWQ_GPTQ, QC_METHOD_SMOOTHQUANT, QC_METHOD_COUNT
} qc_method;

/* A row of the methods table (method.c). */
typedef struct qc_method_info {
    qc_method method;
    const char *name;  /* "gptq", "awq+gptq", ...: the command line's, recipes' and logs' spelling */
    bool gptq;         /* solved by GPTQ (column order, damping); else round-to-nearest */
    bool awq;          /* AWQ's scale and clip search first */
    bool smooth;       /* SmoothQuant's smoothing, with its own α */
} qc_method_info;

const qc_method_info *qc_method_info_of(qc_method m);
const char *qc_method_name(qc_method m);
/* The method spelled `name`; false for a name the table does not hold. */
bool qc_method_parse(const char *name, qc_method *m);

struct qc_quantized;
struct qc_observation;
/* How qc_calibrate checkpoints its work and continues an interrupted run (resume.c
 * implements it in a work folder). */
typedef struct qc_calib_checkpoint {
    /* Before the first block: may fill out's results and log rows of blocks [0, *first) and
     * x, the activations entering block *first (nbytes, in the run's act_dtype); *first
     * stays 0 otherwise. */
    qc_status (*restore)(void *ctx, struct qc_quantized *out, void *x, size_t nbytes, int *first, qc_err *e);
    /* After block `layer` is finished: x holds the activations entering block layer + 1. */
    qc_status (*save)(void *ctx, int layer, const struct qc_quantized *out, const void *x, size_t nbytes, qc_err *e);
    void *ctx;
} qc_calib_checkpoint;

/* One linear's own settings, in place of qc_calib_opts' spec (recipes' per-module overrides,
 * mixed precision by measurement). */
typedef struct qc_module_quant {
    qc_quant_spec spec;
    bool keep_f16;   /* not quantized: weights rounded to fp16 */
    bool pinned;     /* set by a recipe rule: mixed precision leaves it as it is */
} qc_module_quant;

typedef struct qc_calib_opts {
    qc_method method;
    qc_quant_spec spec;
    qc_gptq_opts gptq;
    bool true_sequential; /* {q,k,v} → {o} → {gate,up} → {down}, each on inputs computed
                             with the earlier subsets quantized */
    bool recompute;       /* true-sequential: each subset's inputs recomputed from the block's
                             input, instead of computed once from the block's activations kept
                             between subsets (the same bits; the memory plan's `intermediates`,
                             for when they do not fit) */
    bool keep_f16[QC_LIN_COUNT]; /* linears left unquantized, their weights rounded to fp16
                                    (what a file storing them as F16 holds) */
    const qc_module_quant *modules; /* optional (n_layers × QC_LIN_COUNT, [layer * QC_LIN_COUNT
                                       + lin]): each linear's own spec, and keep_f16 besides the
                                       one above; NULL: spec for every linear */
    qc_quant_spec embed;  /* bits > 0: the token embedding is quantized too, after calibration
                             (embedding.c), by round-to-nearest unless embed_gptq (calibration
                             itself sees the fp32 embedding) */
    bool embed_gptq;      /* the embedding by GPTQ against the error it causes in the outputs
                             of the linears that read it (embedding.c) */
    qc_quant_spec classifier; /* bits > 0: the classifier is quantized too, by o's method (GPTQ:
                                 on the final RMSNorm's outputs after the last block,
                                 classifier.c); the result is the classifier alone, also when it
                                 is tied to the embedding */
    int batch_tokens;     /* tokens per forward chunk (0: 2048, at least one window) */
    float smooth_alpha;   /* > 0: SmoothQuant smoothing with this α, before anything else */
    qc_awq_opts awq;      /* awq, awq+gptq: duo scaling, clipping (chunk_windows: set here) */
    bool propagate_fp32;  /* the next block's inputs from the fp32 (rescaled) block, as AWQ's
                             reference; else from the quantized block, as GPTQ's */
    bool no_quant;        /* smoothquant without weight quantization: linears stay fp32 */
    qc_dtype act_dtype;   /* how the residual stream of all windows is held between blocks:
                             F32 (0, the default), F16 or BF16 (half the memory, rounded once
                             per block); each chunk is computed in fp32 */
    const char *spill_dir; /* non-NULL: each result goes to a scratch file in this folder as
                              soon as it is solved (spill.c), instead of staying in memory */
    const qc_log *log;
    /* Optional: sees each site before its linears are solved (tests compare the statistics
     * with the reference's Hessians; mixed precision measures candidate settings). */
    qc_status (*observe)(void *ctx, const struct qc_observation *ob, qc_err *e);
    void *observe_ctx;
    const qc_calib_checkpoint *checkpoint; /* optional: checkpoints, resume (rank 0's; the other
                                              ranks' is NULL) */
    const qc_dist *dist;  /* the ranks of a distributed run (share.c), each calibrating its share
                             of the windows; NULL: one process */
} qc_calib_opts;

/* What an observer sees of a site whose statistics are finished, before its linears are solved. */
typedef struct qc_observation {
    int layer;
    qc_site site;
    const qc_stats *stats;
    const qc_block *block;   /* the block as it is: earlier true-sequential subsets solved */
    const void *x;           /* the block's input, every window: (nwin*seqlen, dim) in act_dtype */
    qc_dtype act_dtype;
    int nwin, seqlen, chunk; /* chunk: windows per forward, what ws holds */
    qc_workspace *ws;        /* the runner's forward scratch, free during the call */
} qc_observation;

/* SmoothQuant (o->smooth_alpha > 0) or AWQ rescales each block before its linears are
 * solved (prestep.c), on fp32 inputs of every window. */
bool qc_calib_rescales(const qc_calib_opts *o);
/* The spec linear lin of block `layer` is quantized with (o->modules' or o->spec). */
const qc_quant_spec *qc_calib_spec(const qc_calib_opts *o, int layer, qc_linear lin);
/* Whether that linear is left unquantized (o->keep_f16 or its module's keep_f16). */
bool qc_calib_keeps(const qc_calib_opts *o, int layer, qc_linear lin);

/* One row of the quant log: what happened to one linear layer. */
typedef struct qc_layer_report {
    int block;
    qc_linear linear;
    int rows, cols;
    double loss;      /* GPTQ's loss (0 for RTN) */
    double rel_err;   /* ‖XWᵀ − XQᵀ‖² / ‖XWᵀ‖² on the calibration inputs */
    double abs_err;   /* ‖XWᵀ − XQᵀ‖² itself (what --observe and --target-bpw compare) */
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
    qc_qweight embed;     /* the token embedding, with opts.embed; zeroed otherwise */
    qc_qweight classifier; /* the classifier, with opts.classifier; zeroed otherwise */
    qc_spill *spill;      /* with opts.spill_dir: the arrays of res live in its mapping */
    qc_layer_report *reports;  /* (n_layers * QC_LIN_COUNT) in the order solved */
    int nreports;
    float **scales;       /* (n_layers, QC_SCALE_STAGES, QC_SITE_COUNT) the scales of each stage
                             (qc_block_scale) folded into each block, NULL where none; writers
                             read norms and unquantized linears through them. NULL: none at all */
    bool fp32_linears;    /* unquantized linears are kept fp32 (no_quant), not fp16-rounded */
    double seconds;       /* the whole calibration; of it: */
    double stats_seconds; /* accumulating statistics (qc_stats_add) */
    double solve_seconds; /* this process's solves (with ranks, the reports' seconds are their owners') */
    qc_dist_traffic traffic; /* with ranks: what this rank's collectives cost during calibration */
    struct qc_rank_figures {  /* with ranks, on rank 0: every rank's (nranks of them), else NULL */
        double seconds, stats_seconds, solve_seconds;
        qc_dist_traffic traffic;
    } *ranks;
    int nranks;
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

/* ---- analysis: what `qcalib stats` reports (analysis.c) ---- */

/* Histogram of a weight's standardized values (w − mean) / σ: bins of 0.25 over [−10, 10);
 * the two end bins also hold everything beyond. */
#define QC_WSTATS_BINS 80
#define QC_WSTATS_SPAN 10.0

/* Statistics of one weight (rows = output channels, cols = inputs), summed in double. */
typedef struct qc_wstats {
    qc_weight weight;
    int layer;                    /* -1 for a global weight */
    int rows, cols;
    double min, max, mean, std;   /* std: population (÷ n) */
    double kurtosis;              /* E[(w − mean)⁴] / σ⁴: 3 for a normal distribution */
    float row_absmax_min, row_absmax_median, row_absmax_max; /* max|w| of each output row */
    int64_t beyond3, beyond6;     /* weights with |w − mean| > 3σ, > 6σ */
    int64_t hist[QC_WSTATS_BINS];
} qc_wstats;

/* Fills s from w (rows × cols); s->weight and s->layer are kept as they are. */
qc_status qc_wstats_compute(const float *w, int rows, int cols, qc_wstats *s, qc_err *e);

/* Statistics of every matrix of ck: the token embedding, the classifier unless tied, and
 * each block's seven linears in block order; *out (newly allocated) has *n entries. */
qc_status qc_wstats_checkpoint(const qc_checkpoint *ck, const qc_log *log, qc_wstats **out, int *n, qc_err *e);

/* The per-channel statistics (qc_stats_init_channels) of every site's input in the fp32
 * model over the windows w, block by block, nothing quantized: out has n_layers ×
 * QC_SITE_COUNT entries, [layer * QC_SITE_COUNT + site]; free each with qc_stats_free. */
qc_status qc_activation_stats(qc_model *m, const qc_windows *w, int batch_tokens, const qc_log *log, qc_stats *out,
                              qc_err *e);

/* Writes what `qcalib stats` found into the folder d (report.c): weight_stats.csv (one row per
 * weight), weight_hist.csv (the standardized histograms summed per module type), and with
 * act (n_layers × QC_SITE_COUNT, as qc_activation_stats fills it; may be NULL)
 * act_stats.csv (one row per block, site and input channel); stats.json holds all of it. */
/* act (as qc_activation_stats fills it, over the windows w) as llama.cpp's importance matrix at
 * path (imatrix.c; GGUF when path ends in ".gguf", else the legacy .dat: qc_imatrix_write),
 * naming `datasets` (the calibration files) in its metadata. Atomic. */
qc_status qc_stats_imatrix_write(const char *path, const qc_config *c, const qc_stats *act, const qc_windows *w,
                                 const char *const *datasets, int ndatasets, qc_err *e);
qc_status qc_stats_report_write(const qc_outdir *d, const qc_config *c, const qc_wstats *ws, int n,
                                const qc_stats *act, qc_err *e);

/* ---- recipes (recipe.c) ---- */

#define QC_RECIPE_UNSET (-1000000) /* an int field the recipe leaves out */
#define QC_RECIPE_MAX_RULES 64

/* A module rule: an override (fields left QC_RECIPE_UNSET keep the module's value) or a skip. */
typedef struct qc_recipe_rule {
    char *pattern;         /* glob over module names, e.g. "model.layers.*.mlp.down_proj" */
    int bits, groupsize;   /* groupsize 0 or -1: one group per row */
    int sym;               /* 0 or 1 */
    bool skip;             /* leave the module unquantized (fp16) */
} qc_recipe_rule;

/* What a recipe says; every field may be unset (QC_RECIPE_UNSET, NAN, has_method false). */
typedef struct qc_recipe {
    bool has_method;
    qc_method method;
    char linear_key[16];       /* the "linear:..." key the weight settings came from, "" if none */
    int bits, groupsize, sym;  /* every linear's weights */
    int act_bits;              /* per-token dynamic activations of this many bits (a8w4dq: 8) */
    int embed_bits, embed_groupsize; /* the token embedding; embed_bits 0: not quantized */
    double percdamp;
    int blocksize, act_order, static_groups, true_sequential, mse;
    double target_bpw;         /* mixed precision under this budget */
    int observe;               /* re-quantize this many worst modules at higher precision */
    int nrules;
    qc_recipe_rule rules[QC_RECIPE_MAX_RULES];
} qc_recipe;

void qc_recipe_init(qc_recipe *r);  /* everything unset */
/* Parses the JSON text (recipe.c's header shows the keys); messages name `source`. */
qc_status qc_recipe_parse(const char *text, size_t len, const char *source, qc_recipe *r, qc_err *e);
/* "aN" (N = 2..16) as bits; false for anything else. */
bool qc_recipe_act_bits(const char *s, int *bits);
/* The recipe as JSON text that qc_recipe_parse reads back to the same recipe (malloc'd). */
char *qc_recipe_dump(const qc_recipe *r);
void qc_recipe_free(qc_recipe *r);

/* The spec a module gets for (bits, groupsize, sym): the caller's format decides the rest
 * (fp16 scales, zero-point conventions) and refuses what it cannot store. */
typedef qc_status (*qc_recipe_spec_fn)(void *ctx, int bits, int groupsize, bool sym, qc_quant_spec *out, qc_err *e);

/* Fills mods (n_layers × QC_LIN_COUNT) with base, then applies r's rules in order; a rule
 * that matches no linear of the model is an error naming it. */
qc_status qc_recipe_modules(const qc_recipe *r, const qc_config *c, const qc_quant_spec *base, qc_recipe_spec_fn spec_of,
                            void *ctx, qc_module_quant *mods, qc_err *e);

/* ---- mixed precision (mixed.c) ---- */

/* Bits a (rows, cols) weight quantized by s takes in a file: each row's codes packed in
 * 32-bit words (3-bit codes in 32-code blocks), an fp16 scale per group and row, and per group
 * the rows' zero points packed the same way, an fp16 min each (store_min) or nothing
 * (signed_scale): exactly GPTQ safetensors' qweight + qzeros + scales (g_idx, one int32 per
 * column whatever the setting, apart) and GGUF's Q4_0 / Q4_1 blocks; Q8_0 is counted with
 * zero points it does not store (8.75 bits per weight for its 8.5). A K-quant spec: its
 * blocks' bytes exactly (Q2_K 84, Q3_K 110, Q4_K 144, Q5_K 176, Q6_K 210 per 256 weights). */
double qc_spec_storage_bits(const qc_quant_spec *s, int rows, int cols);

/* Measures every linear not kept at each of the ncand (1..64) candidate specs: one
 * calibration pass with o (its own results discarded; no checkpoint, no embedding) whose
 * observer solves each linear at every candidate on the pass's statistics (GPTQ for gptq
 * methods, else round-to-nearest) and runs the rest of the model with it. err (n_layers ×
 * QC_LIN_COUNT, ncand) receives the mean KL divergence per token, in nats, of the model's
 * next-token distribution with the candidate from the one without it (mixed.c); NaN for kept
 * linears. */
qc_status qc_mixed_measure(qc_model *m, const qc_windows *w, const qc_calib_opts *o, const qc_quant_spec *cands,
                           int ncand, double *err, qc_err *e);
/* The bytes qc_mixed_measure holds beside its calibration pass (for the memory plan). */
size_t qc_mixed_measure_bytes(const qc_config *c, int nwin, int seqlen, const qc_calib_opts *o, int ncand);

typedef struct qc_mixed_result {
    double bpw;      /* the estimated bits per weight of the choice (pinned linears included) */
    double est_err;  /* Σ of the chosen candidates' measured errors (qc_mixed_measure: KL, nats) */
} qc_mixed_result;

/* Gives every linear of mods that is neither kept nor pinned the candidate minimizing the
 * total measured error within budget_bpw bits per weight over the quantized linears (sizes by
 * qc_spec_storage_bits); with tie_sites, the free linears of one site of a block (q, k, v;
 * gate, up: one fused layer in vLLM) one candidate together. QC_ERR_ARG when even the
 * cheapest candidates exceed the budget. */
qc_status qc_mixed_choose(const qc_config *c, const qc_quant_spec *cands, int ncand, const double *err,
                          double budget_bpw, bool tie_sites, qc_module_quant *mods, qc_mixed_result *res,
                          qc_err *e);

/* Whether qc_mixed_choose can meet budget_bpw with these candidates at all, before anything is
 * measured: its own refusal when even the cheapest candidate of every free linear (which does
 * not depend on the errors) exceeds the budget; mods is left as it is. */
qc_status qc_mixed_check_budget(const qc_config *c, const qc_quant_spec *cands, int ncand, double budget_bpw,
                                bool tie_sites, const qc_module_quant *mods, qc_err *e);

/* --observe: gives the k linears of q with the largest abs_err (neither kept nor pinned, nor
 * at `up` already) the spec up in mods — with tie_sites, each with the free linears of its
 * site (vLLM's fused qkv_proj, gate_up_proj); returns how many were picked. */
int qc_observe_upgrade(const qc_quantized *q, int k, const qc_quant_spec *up, bool tie_sites, qc_module_quant *mods);

/* ---- checkpoints and resume (resume.c) ---- */

/* A work folder "<out>.work" beside the output folder `out`, where a run checkpoints each
 * block as it finishes (its quantized linears and log rows, then the activations entering
 * the next block, each file written atomically), and from which a run with `resume`
 * continues after the last finished block. The folder holds the run's fingerprint
 * (qc_run_desc_fingerprint); a resume whose fingerprint differs is refused, naming the
 * difference, and so is a run without `resume` when the folder holds finished blocks. A
 * folder without any (its run stopped before finishing one) holds nothing to resume and is
 * reused. Each restored block is checked against the model's block as read now
 * (qc_model_block_hash), and the token embedding likewise. The run holds the folder's lock
 * (worklock.c) until qc_resume_close: a second run on the same output is refused, naming
 * the first one's pid. */
typedef struct qc_resume qc_resume;

qc_status qc_resume_open(qc_resume **r, const char *out, qc_model *m, const qc_calib_opts *o,
                         const char *fingerprint, bool resume, qc_err *e);
/* The hooks to put in qc_calib_opts.checkpoint (valid until qc_resume_close). */
const qc_calib_checkpoint *qc_resume_checkpoint(qc_resume *r);
/* After the run: on success the work folder is removed; on failure it is kept when it holds
 * finished blocks (and e's message says so) or was there before the run, else removed.
 * NULL: no-op. */
void qc_resume_close(qc_resume *r, bool success, qc_err *e);
/* --restart: removes the work folder of out (the checkpoints of an interrupted run), unless
 * a live run holds it (an error naming its pid); nothing there: QC_OK. */
qc_status qc_resume_discard(const char *out, qc_err *e);
/* ---- the memory plan (plan.c) ---- */

/* Bytes each large buffer of a quantize run takes (see plan.c for what each one holds). */
typedef struct qc_mem_plan {
    size_t model_file;      /* the model's tensors on disk (mapped; never resident as a whole) */
    size_t activations;     /* the residual stream of all windows (act_dtype) + one fp32 chunk */
    size_t workspace;       /* the forward pass's scratch for one chunk */
    size_t intermediates;   /* true-sequential: the block's activations kept between sites, fp32
                               for every window (o's then down's input, and x + o(attention)
                               unless it takes the fp32 residual stream's place) */
    bool recomputed;        /* ... not kept (o->recompute): not counted, each site's inputs
                               recomputed from the block's input */
    size_t block_weights;   /* one block in fp32 */
    size_t statistics;      /* the site statistics held at once (true-sequential: one site) */
    size_t largest_hessian; /* the largest site's statistics */
    int largest_hessian_cols;
    size_t solver;          /* the largest solve: weight and Hessian copies, factorization, scratch */
    size_t prestep;         /* SmoothQuant/AWQ: the captured site inputs of all windows (not at
                               the same time as statistics + solver) */
    size_t fp32_outputs;    /* fp32 propagation: the block's fp32 outputs of all windows */
    size_t measuring;       /* --target-bpw's measuring pass: its residual streams, a later
                               block, the classifier and log-probabilities (qc_mixed_measure_bytes) */
    size_t ranks;           /* a distributed run: the collectives' buffers, and on rank 0 every
                               window's activations, gathered for its checkpoints (at most
                               (n + 1)·N − 1 windows, n its own share) */
    size_t results_calibrating, results_exporting; /* quantized results resident */
    size_t exporter;        /* the writer's buffers (an upper bound over every format) */
    size_t runtime;         /* code, libraries, thread buffers: a fixed allowance */
    size_t text;            /* reading the calibration text and drawing its windows, before
                               calibrating: QC_CALIB_TEXT_MEM per byte of the largest source */
    size_t text_read, text_bound; /* that source's bytes of text; the bound on one source */
    size_t calibration, export_phase, peak;
} qc_mem_plan;

/* The plan of calibrating the model of ck (already padded, if it is to be) on nwin windows
 * of seqlen tokens with o (o->spill_dir decides whether results are held) on threads, after
 * a measuring pass over measure_ncand candidates (0: none). With ranks (o->dist), nwin is
 * this rank's share and the plan this rank's. */
void qc_mem_plan_make(const qc_checkpoint *ck, int nwin, int seqlen, const qc_calib_opts *o, int measure_ncand,
                      int threads, qc_mem_plan *p);
/* The bound on one calibration source's text under a memory limit (bytes; 0: none known, then
 * QC_CORPUS_MAX_BYTES): what is left beside the runtime allowance, over QC_CALIB_TEXT_MEM, and
 * never below 1 MiB (a smaller budget is refused by the plan). */
size_t qc_mem_plan_text_bound(uint64_t limit, int threads);
/* Counts the text phase (text_read bytes of the largest source, under text_bound) in p: its own
 * phase, before calibration, so the peak is the largest of the three. */
void qc_mem_plan_count_text(qc_mem_plan *p, size_t text_read, size_t text_bound);
/* One line: every figure in MB, the phases and the peak. */
void qc_mem_plan_describe(const qc_mem_plan *p, const qc_calib_opts *o, char *buf, size_t size);
/* Bytes of one quantized result of (rows, cols) under spec (codes, parameters, g_idx, perm). */
size_t qc_plan_result_bytes(int rows, int cols, const qc_quant_spec *s);

/* Writes the quant log as CSV and as JSON lines (one object per layer), atomically. */
qc_status qc_quantized_write_log(const qc_quantized *q, const qc_calib_opts *o, const char *csv_path,
                                 const char *jsonl_path, qc_err *e);

#endif
