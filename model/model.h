/* model.h — the fp32 Llama forward pass, exposed block by block.
 *
 *   tokens ─embed─▶ x ─block 0─▶ x ─block 1─▶ … ─block L-1─▶ x ─head─▶ logits
 *
 * A block is RMSNorm → Q,K,V (+ their biases, if any) → RoPE → causal grouped-query
 * attention → O (+ its bias, if any) (+ residual), RMSNorm → gate, up → SwiGLU → down
 * (+ residual). Every matrix product goes through
 * cblas_sgemm over all tokens of a chunk of windows at once. Before each linear layer the
 * caller's hook sees (and may modify) that layer's input: that is how the calibration
 * runner records statistics and how evaluation simulates activation quantization.
 *
 * Activations are row-major (tokens, features); the tokens of window w are rows
 * [w*seqlen, (w+1)*seqlen), positions 0..seqlen-1 within each window. */
#ifndef QC_MODEL_H
#define QC_MODEL_H

#include "base/base.h"
#include "io/io.h"

/* The seven linear layers of a block, in true-sequential order. */
typedef enum qc_linear {
    QC_LIN_Q, QC_LIN_K, QC_LIN_V, /* input: attention RMSNorm output */
    QC_LIN_O,                     /* input: attention output */
    QC_LIN_GATE, QC_LIN_UP,       /* input: FFN RMSNorm output */
    QC_LIN_DOWN,                  /* input: silu(gate)·up */
    QC_LIN_COUNT
} qc_linear;

/* The inputs that linears share: the true-sequential subsets {q,k,v}, {o}, {gate,up}, {down}. */
typedef enum qc_site { QC_SITE_QKV, QC_SITE_O, QC_SITE_GATE_UP, QC_SITE_DOWN, QC_SITE_COUNT } qc_site;

qc_weight qc_linear_weight(qc_linear l);
/* The bias of linear l's output (QC_W_Q_BIAS for q, ...), or QC_W_COUNT for a linear that
 * never has one; whether a model has it: qc_weight_present. */
qc_weight qc_linear_bias(qc_linear l);
qc_site qc_linear_site(qc_linear l);
const char *qc_site_name(qc_site s); /* "qkv", "o", "gate_up", "down" */
/* The input width of a site's linears: dim, the attention width (n_heads × head_dim) or the FFN width. */
int qc_site_width(const qc_config *c, qc_site s);

/* One transformer block's weights in fp32; owned. */
typedef struct qc_block {
    float *attn_norm;          /* (dim) */
    float *ffn_norm;           /* (dim) */
    float *w[QC_LIN_COUNT];    /* (rows, cols) as qc_weight_shape of qc_linear_weight(l) */
    float *bias[QC_LIN_COUNT]; /* (rows) added to the linear's output; NULL: it has none */
    uint64_t hash;             /* qc_hash64 of the weights above as converted, in that order */
} qc_block;

/* Reads one weight into a new buffer (*out, rows*cols floats) and rejects NaN/Inf values,
 * naming the tensor and position. */
qc_status qc_weight_load(const qc_checkpoint *ck, qc_weight w, int layer, float **out, qc_err *e);

/* Reads block `layer` from ck; rejects NaN/Inf weights naming the tensor and block; hashes
 * the weights as they are read (b->hash). */
qc_status qc_block_load(const qc_checkpoint *ck, int layer, qc_block *b, qc_err *e);
void qc_block_free(qc_block *b); /* NULL or zeroed: no-op */

/* ---- hooks ---------------------------------------------------------------------------------- */

typedef struct qc_hook_call {
    int layer;
    qc_site site;
    float *x;   /* (ntok, cols) the input about to enter the site's linears; may be modified */
    int ntok;
    int cols;
    int nwin, seqlen; /* how the ntok rows split into windows */
    bool stop;  /* set by the hook to end the block here (the block's x is then unusable) */
} qc_hook_call;

typedef struct qc_hooks {
    qc_status (*fn)(void *ctx, qc_hook_call *call, qc_err *e);
    void *ctx;
} qc_hooks;

/* ---- scratch and caches ------------------------------------------------------------------------- */

/* Scratch buffers for chunks of at most max_tokens tokens, attention spans of at most
 * max_ctx positions, and the RoPE table for those positions. */
typedef struct qc_workspace qc_workspace;

qc_workspace *qc_workspace_new(const qc_config *c, int max_tokens, int max_ctx, qc_err *e);
void qc_workspace_free(qc_workspace *ws);
/* The bytes qc_workspace_new allocates, for `threads` OpenMP threads (for memory plans),
 * its bf16 conversions held for one part of a block included. */
size_t qc_workspace_bytes(const qc_config *c, int max_tokens, int max_ctx, int threads);
/* On: the bf16 conversion of each weight ws's products multiply is kept and reused until
 * off (qc_matmul_scratch_hold), for a loop over chunks in which no weight changes. */
void qc_workspace_hold_weights(qc_workspace *ws, bool on);

/* Keys and values of earlier positions, for incremental decoding. */
typedef struct qc_kvcache {
    int max_len;
    int len;   /* positions already stored; the caller advances it after all blocks ran */
    float *k;  /* (n_layers, max_len, n_kv_heads*head_dim) */
    float *v;  /* (n_layers, max_len, n_kv_heads*head_dim) */
} qc_kvcache;

qc_status qc_kvcache_init(qc_kvcache *kv, const qc_config *c, int max_len, qc_err *e);
void qc_kvcache_free(qc_kvcache *kv);

/* ---- the pass ------------------------------------------------------------------------------------- */

/* y (ntok, rows) = x (ntok, cols) · wᵀ, w (rows, cols): one oneDNN matmul in the run's compute
 * type, converting into ws's buffers (ws may be NULL: the product's own). */
qc_status qc_matmul_xwt(const float *x, int ntok, const float *w, int rows, int cols, float *y, qc_workspace *ws,
                        qc_err *e);

/* Runs block `layer` on nwin windows of seqlen tokens; x (nwin*seqlen, dim) is updated in
 * place. hooks may be NULL. nwin*seqlen must fit the workspace. */
qc_status qc_block_forward(const qc_config *c, const qc_block *b, int layer, float *x, int nwin,
                           int seqlen, const qc_hooks *hooks, qc_workspace *ws, qc_err *e);

/* Parts of a block, each from one point of it to a later one. The widths: dim, the attention
 * width n_heads*head_dim, the FFN width hidden_dim.
 *   QC_SUB_ATTENTION  attention RMSNorm's output (dim) → attention's output before the residual add (dim)
 *   QC_SUB_MLP        FFN RMSNorm's output (dim) → the MLP's output before the residual add (dim)
 *   QC_SUB_ATTEND     attention RMSNorm's output (dim) → o's input: q, k, v, RoPE, attention (attention width)
 *   QC_SUB_O          o's input (attention width) → o, with its bias (dim)
 *   QC_SUB_SWIGLU     FFN RMSNorm's output (dim) → down's input: gate, up, SwiGLU (hidden_dim)
 *   QC_SUB_DOWN       down's input (hidden_dim) → down (dim)
 * ATTEND then O is ATTENTION, SWIGLU then DOWN is MLP, operation for operation (the same
 * bits as qc_block_forward for the same chunk of windows). */
typedef enum qc_subblock {
    QC_SUB_ATTENTION, QC_SUB_MLP, QC_SUB_ATTEND, QC_SUB_O, QC_SUB_SWIGLU, QC_SUB_DOWN
} qc_subblock;

/* out (nwin*seqlen, the part's output width) = the sub-block `part` of block b on in
 * (nwin*seqlen, its input width): what AWQ's scale search compares candidate weights on, and
 * the calibration runner's stages. out must not be in. nwin*seqlen must fit the workspace. */
qc_status qc_subblock_forward(const qc_config *c, const qc_block *b, int layer, qc_subblock part, const float *in,
                              int nwin, int seqlen, float *out, qc_workspace *ws, qc_err *e);
/* xn (ntok, dim) = the RMSNorm of block b in front of `site` (QC_SITE_QKV: the attention's;
 * QC_SITE_GATE_UP: the FFN's) on x (ntok, dim); xn may be x. */
void qc_block_norm(const qc_config *c, const qc_block *b, qc_site site, const float *x, int ntok, float *xn);
/* x += y (n floats): a part's output added to the residual stream, as the block adds it. */
void qc_residual_add(float *x, const float *y, size_t n);

/* Runs block `layer` on ntok new tokens at positions kv->len .. kv->len+ntok-1, attending to
 * the cached positions as well; stores their keys and values in kv (kv->len is unchanged). */
qc_status qc_block_forward_cached(const qc_config *c, const qc_block *b, int layer, float *x,
                                  int ntok, qc_kvcache *kv, qc_workspace *ws, qc_err *e);

/* ---- function-preserving rescaling (SmoothQuant, AWQ) ---------------------------------------------- */

/* Per-site scales s (NULL: the site is not scaled), each of the site's input width: the
 * site's input is divided by s and its linears' input columns multiplied by s, folding 1/s
 * into what produces the input, so the block computes the same function (up to rounding):
 *   qkv:     attn_norm /= s;   q, k, v columns *= s
 *   o:       v rows /= s;      o columns *= s   (only when v's rows are o's columns: no GQA;
 *                                                v's bias /= s too)
 *   gate_up: ffn_norm /= s;    gate, up columns *= s
 *   down:    up rows /= s;     down columns *= s
 * Applies to weight w (rows, cols as qc_weight_shape) every scale that touches it, columns
 * before rows; w read from a file and then scaled equals the same weight of a block scaled by
 * qc_block_scale, bit for bit. */
void qc_weight_scale(const qc_config *c, qc_weight w, const float *const s[QC_SITE_COUNT], float *buf);
/* Scales every weight of block b (norms, linears and biases) by s. */
void qc_block_scale(const qc_config *c, qc_block *b, const float *const s[QC_SITE_COUNT]);

/* ---- the model ------------------------------------------------------------------------------------ */

/* A model: a checkpoint plus whatever weights have been brought into memory. Blocks are
 * loaded on first use and kept until released; embeddings are read row by row from the
 * mapped file. */
typedef struct qc_model {
    qc_config cfg;
    qc_checkpoint *ck;   /* owned */
    float *final_norm;   /* (dim) */
    float *classifier;   /* (vocab, dim); NULL until the first qc_model_head */
    qc_block *blocks;    /* (n_layers) zeroed until loaded */
    uint64_t *block_hash; /* (n_layers) each block's hash as the checkpoint holds it ... */
    bool *hashed;        /* ... (n_layers) once it was loaded */
    const qc_weight_source *linears; /* borrowed; if set, the linears come from it, not ck */
    const qc_hooks *hooks; /* borrowed; if set, qc_model_forward runs every block with them
                              (evaluation's activation quantization) */
} qc_model;

qc_status qc_model_open(qc_model **m, const char *path, qc_err *e);
void qc_model_free(qc_model *m);

/* Pads the FFN width to a multiple of `multiple` with zeros (qc_checkpoint_pad_ffn): the
 * same function, wider matrices. Only before any block is loaded. */
qc_status qc_model_pad_ffn(qc_model *m, int multiple, qc_err *e);

/* From now on the blocks' linear layers are read from src (e.g. a quantized model held in
 * memory); everything else still from the checkpoint. Only before any block is loaded. */
void qc_model_set_linears(qc_model *m, const qc_weight_source *src);

/* The block's weights, loading them on first use. */
qc_status qc_model_block(qc_model *m, int layer, const qc_block **b, qc_err *e);
void qc_model_release_block(qc_model *m, int layer);
/* A copy of block `layer`'s weights as the checkpoint holds them (not from qc_model_set_linears'
 * source), owned by the caller, who may change them (the calibration runner); its hash is
 * recorded for qc_model_block_hash, so that the block is not read again to hash it. */
qc_status qc_model_load_block(qc_model *m, int layer, qc_block *b, qc_err *e);
/* The content hash of block `layer`'s weights as the checkpoint holds them (qc_block's hash,
 * before any qc_model_set_linears): recorded when the block was loaded; a block never loaded
 * is loaded for it, and released. */
qc_status qc_model_block_hash(qc_model *m, int layer, uint64_t *h, qc_err *e);
/* The content hash of the token embedding as converted, read in chunks of rows. */
qc_status qc_model_embed_hash(const qc_model *m, uint64_t *h, qc_err *e);

/* x (ntok, dim) = embedding rows of tokens; ids outside the vocabulary are an error. */
qc_status qc_model_embed(const qc_model *m, const int32_t *tokens, int ntok, float *x, qc_err *e);

/* xn (ntok, dim) = the final RMSNorm of x (ntok, dim): the classifier's input; xn may be x. */
void qc_model_final_norm(const qc_model *m, const float *x, int ntok, float *xn);

/* Final RMSNorm (x is normalised in place) and classifier: logits (ntok, vocab). */
qc_status qc_model_head(qc_model *m, float *x, int ntok, float *logits, qc_err *e);

/* Log-softmax of one row of n logits into lp (may be NULL), in double so the figures do not
 * depend on summation order; returns the log-sum-exp. */
double qc_log_softmax(const float *logits, int n, float *lp);
/* KL(p ‖ q) in nats of two log-probability rows (as qc_log_softmax gives); never negative. */
double qc_kl_logprobs(const float *lp, const float *lq, int n);

/* The whole model on nwin windows: logits (nwin*seqlen, vocab). */
qc_status qc_model_forward(qc_model *m, const int32_t *tokens, int nwin, int seqlen, float *logits,
                           qc_workspace *ws, qc_err *e);

#endif
