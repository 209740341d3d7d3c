/* io.h — model files in and out: the model configuration, checkpoints opened for reading
 * (llama2.c .bin, Hugging Face safetensors directories, single or sharded), safetensors
 * reading and writing, and full-precision conversion between the formats.
 *
 * Weights are addressed by (kind, layer) rather than by name, so the rest of qcalib never
 * sees a file's naming scheme. Every weight is returned in fp32, row-major [out, in], with
 * Q and K rows (and their biases') in the interleaved-pair RoPE layout of Meta's
 * checkpoints, llama2.c and GGUF (HF's "rotate-half" rows are un-permuted on read and
 * re-permuted on write; a row permutation commutes with per-row quantization, so nothing
 * downstream cares).
 *
 * Files, one naming scheme: a container's reader and writer are <container>_read.c and
 * <container>_write.c (safetensors, gguf); a model layout's reader, which makes a
 * qc_checkpoint of it, is <layout>_checkpoint.c (hf on safetensors, gguf, llama2c) and its
 * full-precision writer <layout>_export.c (hf, llama2c; gguf_write.c writes GGUF's container
 * and layout at once); quantized layouts are <layout>_format.c (gptq, awq: both directions,
 * through qfmt_read.c and qfmt_write.c) and llama2c_q8.c; imatrix_write.c writes llama.cpp's
 * importance matrix; pad.c is a weight source that widens another (convert --pad-to).
 * Functions are named after their file's prefix: qc_safetensors_* (the container),
 * qc_<layout>_checkpoint_open (internal.h), qc_<layout>_export (qc_hf_export,
 * qc_llama2c_export, qc_gguf_export; *_into for a writer that adds its files to a folder being
 * built: qc_gptq_export_into, qc_awq_export_into). */
#ifndef QC_IO_H
#define QC_IO_H

#include "base/base.h"
#include "datasets/datasets.h"
#include "quant/quant.h"

/* ---- configuration --------------------------------------------------------------------------- */

/* Limits any file's header is checked against before anything is allocated from it. */
#define QC_MAX_DIM      (1 << 17)
#define QC_MAX_LAYERS   1024
#define QC_MAX_HEADS    1024
#define QC_MAX_VOCAB    (1 << 22)
#define QC_MAX_SEQ_LEN  (1 << 22)
#define QC_MAX_ROPE_FREQS 256 /* head_dim / 2 of a model with scaled RoPE frequencies */

typedef struct qc_config {
    int dim;          /* hidden size */
    int hidden_dim;   /* FFN width */
    int n_layers;
    int n_heads;
    int n_kv_heads;   /* < n_heads: grouped-query attention */
    int head_dim;     /* usually dim / n_heads */
    int vocab_size;
    int seq_len;      /* trained context length */
    float norm_eps;   /* RMSNorm epsilon */
    float rope_theta; /* RoPE base */
    bool tied_classifier; /* classifier shares the token embedding */
    /* Attention biases: q, k and v (Qwen2; Llama's attention_bias), o (Llama's attention_bias).
     * attn_o_bias implies attn_qkv_bias (qc_config_validate). */
    bool attn_qkv_bias, attn_o_bias;
    /* Llama 3's rope_scaling (rope_type "llama3"); rope_factor 0 = none. Frequencies whose
     * wavelength exceeds rope_original_ctx / low_freq_factor are divided by rope_factor, those
     * below rope_original_ctx / high_freq_factor kept, the band between interpolated. */
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_original_ctx;
    /* What the RoPE pass applies: frequency i of a head is divided by rope_freqs[i], for
     * i < rope_nfreqs = head_dim / 2; rope_nfreqs 0: no scaling. From Llama 3's parameters above
     * (qc_config_set_llama3_rope, when config.json is read) or from a GGUF's rope_freqs.weight
     * tensor, which holds exactly these factors (then rope_factor may be 0: the parameters
     * are not in the file). */
    int rope_nfreqs;
    float rope_freqs[QC_MAX_ROPE_FREQS];
} qc_config;

/* Checks ranges and divisibility (heads divide evenly, dims within QC_MAX_*); the message
 * names `source` (a file) and the offending field. */
qc_status qc_config_validate(const qc_config *c, const char *source, qc_err *e);
/* Tokens per window when --seqlen is not given (quantize, stats, eval): the model's context,
 * at most QC_SEQLEN_DEFAULT_MAX. */
#define QC_SEQLEN_DEFAULT_MAX 2048
int qc_config_default_seqlen(const qc_config *c);
/* Fills c->rope_freqs from Llama 3's rope_scaling parameters (rope_factor > 0; rope_theta and
 * head_dim set): llama.cpp's converter's rope_freqs (rope_freqs.c has the formula), computed in
 * double and rounded once. A head_dim over 2·QC_MAX_ROPE_FREQS is QC_ERR_UNSUPPORTED naming
 * `source`. */
qc_status qc_config_set_llama3_rope(qc_config *c, const char *source, qc_err *e);

/* ---- weights ---------------------------------------------------------------------------------- */

typedef enum qc_weight {
    QC_W_EMBED,       /* (vocab, dim)            token embedding          global */
    QC_W_FINAL_NORM,  /* (dim)                   final RMSNorm weight     global */
    QC_W_CLASSIFIER,  /* (vocab, dim)            output projection        global; = embed when tied */
    QC_W_ATTN_NORM,   /* (dim)                   input RMSNorm            per layer */
    QC_W_Q,           /* (n_heads*head_dim, dim) */
    QC_W_K,           /* (n_kv_heads*head_dim, dim) */
    QC_W_V,           /* (n_kv_heads*head_dim, dim) */
    QC_W_O,           /* (dim, n_heads*head_dim) */
    QC_W_FFN_NORM,    /* (dim)                   post-attention RMSNorm */
    QC_W_GATE,        /* (hidden_dim, dim)       w1 in llama2.c */
    QC_W_UP,          /* (hidden_dim, dim)       w3 in llama2.c */
    QC_W_DOWN,        /* (dim, hidden_dim)       w2 in llama2.c */
    QC_W_Q_BIAS,      /* (n_heads*head_dim)      present with attn_qkv_bias; RoPE rows as QC_W_Q */
    QC_W_K_BIAS,      /* (n_kv_heads*head_dim)   present with attn_qkv_bias; RoPE rows as QC_W_K */
    QC_W_V_BIAS,      /* (n_kv_heads*head_dim)   present with attn_qkv_bias */
    QC_W_O_BIAS,      /* (dim)                   present with attn_o_bias */
    QC_W_COUNT
} qc_weight;

bool qc_weight_is_global(qc_weight w);
/* Whether the model has weight w: false only for the biases its config leaves out. Every
 * loop over the weights skips the absent ones. */
bool qc_weight_present(const qc_config *c, qc_weight w);
/* Norms and biases: one-dimensional in every file format. */
bool qc_weight_is_vector(qc_weight w);
/* The attention biases, QC_W_Q_BIAS .. QC_W_O_BIAS. */
bool qc_weight_is_bias(qc_weight w);
/* The seven matrices of a block (q, k, v, o, gate, up, down): what solvers quantize. */
bool qc_weight_is_linear(qc_weight w);
/* The linear whose output a bias is added to (QC_W_Q for QC_W_Q_BIAS, ...). */
qc_weight qc_bias_linear(qc_weight bias);
/* For Q and K weights and biases, the heads whose rows are in RoPE order (n_heads for q,
 * n_kv_heads for k); 0 for every other weight. */
int qc_weight_rope_heads(const qc_config *c, qc_weight w);
/* rows and cols of a weight (cols = 1 for vectors). */
void qc_weight_shape(const qc_config *c, qc_weight w, int *rows, int *cols);
/* The Hugging Face tensor name, e.g. "model.layers.3.self_attn.q_proj.weight" (".bias" for
 * a bias). */
void qc_weight_hf_name(qc_weight w, int layer, char *buf, size_t size);
/* A short name for logs: "embed", "q", "k", "v", "o", "gate", "up", "down", "q_bias", ... */
const char *qc_weight_short_name(qc_weight w);

/* HF's rotate-half row order from the interleaved order (and back), for a Q or K weight of
 * n_heads heads of head_dim rows each: within a head, interleaved row 2i+j is HF row
 * j*head_dim/2 + i. Works on any row width (cols). */
void qc_rope_rows_to_hf(const float *src, float *dst, int n_heads, int head_dim, int cols);
void qc_rope_rows_from_hf(const float *src, float *dst, int n_heads, int head_dim, int cols);

/* ---- element types ------------------------------------------------------------------------------ */

typedef enum qc_dtype {
    QC_DT_F32, QC_DT_F16, QC_DT_BF16, QC_DT_F64,
    QC_DT_I8, QC_DT_U8, QC_DT_I16, QC_DT_I32, QC_DT_I64, QC_DT_BOOL,
    QC_DT_COUNT
} qc_dtype;

size_t qc_dtype_size(qc_dtype t);
const char *qc_dtype_name(qc_dtype t);          /* safetensors spelling: "F32", "BF16", ... */
bool qc_dtype_parse(const char *name, qc_dtype *t);
/* Converts n elements of a float type (F32/F16/BF16/F64) at src (little endian, any
 * alignment) to fp32. */
void qc_convert_to_f32(qc_dtype t, const void *src, size_t n, float *dst);
/* Converts n fp32 values to F32/F16/BF16 (round to nearest even) or F64, little endian. */
void qc_convert_from_f32(qc_dtype t, const float *src, size_t n, void *dst);
/* Checks that type t (F16 or BF16; others always pass) holds each of src[0..n), a matrix of
 * `cols` columns: a value beyond its largest finite one would become ±Inf (a weight over
 * 65504 in F16), a NaN or Inf stays one; either is an error naming `file`, `tensor`, the
 * row and column (the element for a vector, cols = 1). */
qc_status qc_check_dtype_range(qc_dtype t, const float *src, size_t n, size_t cols, const char *file,
                               const char *tensor, qc_err *e);

/* ---- checkpoints ---------------------------------------------------------------------------------- */

/* A model file opened for reading. The tensor data stays in the mapped file(s); each
 * read converts one tensor (or some rows of it) to fp32 in a caller buffer. */
typedef struct qc_checkpoint qc_checkpoint;

/* path: a llama2.c .bin checkpoint; a .gguf file; a folder holding one of them as
 * model.bin or model.gguf and no config.json, as qcalib writes them; a folder with
 * config.json and model.safetensors or model.safetensors.index.json (+ shards), plain or
 * GPTQ/AWQ-quantized; or a .safetensors file with config.json beside it. Every header, offset, shape and dtype is validated here, before any read; every
 * weight the config implies must be present with the right shape. */
qc_status qc_checkpoint_open(qc_checkpoint **ck, const char *path, qc_err *e);

/* A file a checkpoint reads: its real path (./, .. and symlinks resolved: one file, one
 * name), its size, and for a file read whole (config.json, a shard index) the qc_hash64 of
 * its bytes as read. Tensor files are mapped and not hashed here: their weights are hashed
 * as they are converted (qc_block's hash, model/), so a large model is read once. */
typedef struct qc_ck_file {
    char *path;
    uint64_t bytes;
    bool whole;
    uint64_t hash; /* whole files only */
} qc_ck_file;

int qc_checkpoint_nfiles(const qc_checkpoint *ck);
const qc_ck_file *qc_checkpoint_file(const qc_checkpoint *ck, int i);
void qc_checkpoint_close(qc_checkpoint *ck); /* NULL: no-op */

const qc_config *qc_checkpoint_config(const qc_checkpoint *ck);
const char *qc_checkpoint_format(const qc_checkpoint *ck); /* "llama2.c", "hf-safetensors" */
const char *qc_checkpoint_path(const qc_checkpoint *ck);
/* The storage type of a weight in the file (F32 for legacy llama2.c, I8 for its int8 v2
 * matrices; see qc_checkpoint_qtype for quantized layouts). */
qc_dtype qc_checkpoint_dtype(const qc_checkpoint *ck, qc_weight w, int layer);

/* For a quantized weight, its storage type (e.g. "gptq-4bit", "Q4_0"); NULL for float ones. */
const char *qc_checkpoint_qtype(const qc_checkpoint *ck, qc_weight w, int layer);

/* Pads the FFN width to the next multiple of `multiple` with zeros (zero rows in gate and up,
 * zero columns in down): an exact transformation (silu(0)·0 = 0) after which every read and
 * the config see the padded width. Used so that GGUF's 32-wide blocks tile every row. */
qc_status qc_checkpoint_pad_ffn(qc_checkpoint *ck, int multiple, qc_err *e);

/* Reads a whole weight (layer ignored for globals) into out, which holds rows*cols floats.
 * Every read is checked as it is converted: a NaN or an Inf is QC_ERR_NUMERIC naming the
 * file, the tensor and the position (row and column in the file; the element of a vector). */
qc_status qc_checkpoint_read(const qc_checkpoint *ck, qc_weight w, int layer, float *out, qc_err *e);
/* Reads rows [row0, row0+nrows) of a global matrix (embedding, classifier) into out. */
qc_status qc_checkpoint_read_rows(const qc_checkpoint *ck, qc_weight w, int64_t row0, int nrows,
                                  float *out, qc_err *e);
/* Reads rows ids[0..n) of a global matrix (any order, repeats allowed) into out (n, cols):
 * an embedding lookup. The mapped pages are let go once, after every row. */
qc_status qc_checkpoint_gather_rows(const qc_checkpoint *ck, qc_weight w, const int32_t *ids, int n, float *out,
                                    qc_err *e);
/* Reads every weight of the model once (norms, embedding, classifier, every block; a few MB
 * at a time) so that a NaN or an Inf anywhere is refused now, as above, rather than when a
 * run reaches it: one pass over the tensors at the cost of converting them. */
qc_status qc_checkpoint_check_finite(const qc_checkpoint *ck, qc_err *e);

/* ---- safetensors ---------------------------------------------------------------------------------- */

/* Layout: u64 little-endian header length N; N bytes of JSON: {"name": {"dtype": "F32",
 * "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}; then the
 * data, offsets relative to byte 8+N. */
#define QC_ST_MAX_HEADER ((uint64_t)100 << 20)
#define QC_ST_MAX_DIMS 8

typedef struct qc_safetensors_tensor {
    char *name;
    qc_dtype dtype;
    int ndim;
    int64_t shape[QC_ST_MAX_DIMS];
    const uint8_t *data; /* into the mapping; borrowed */
    size_t nbytes;
} qc_safetensors_tensor;

/* One "__metadata__" entry (string to string). */
typedef struct qc_safetensors_meta {
    char *key, *value;
} qc_safetensors_meta;

typedef struct qc_safetensors_file {
    qc_map map;
    int ntensors;
    qc_safetensors_tensor *tensors; /* (ntensors) sorted by name */
    int nmeta;
    qc_safetensors_meta *meta;      /* (nmeta) the "__metadata__" entries, sorted by key */
} qc_safetensors_file;

/* Validates the header length against the file, the JSON, every dtype and shape, that
 * each tensor's bytes equal its shape's size, that offsets lie inside the data, and that
 * no two tensors overlap or share a name. */
qc_status qc_safetensors_open(qc_safetensors_file *f, const char *path, qc_err *e);
/* The tensor stored under exactly `name`, or NULL. */
const qc_safetensors_tensor *qc_safetensors_find(const qc_safetensors_file *f, const char *name);
/* The "__metadata__" value of `key`, or NULL. */
const char *qc_safetensors_meta_get(const qc_safetensors_file *f, const char *key);
/* The tensor stored under `name`, else the one a "__metadata__" alias `name` → stored name
 * designates (safetensors' save_model stores a tensor shared by two names once, under one
 * of them, and maps the other name to it; transformers reads tied embeddings that way).
 * *out is NULL when neither is there. An alias to a name the file does not store is an
 * error naming the file and both names. */
qc_status qc_safetensors_lookup(const qc_safetensors_file *f, const char *name, const qc_safetensors_tensor **out, qc_err *e);
void qc_safetensors_close(qc_safetensors_file *f);

/* A streaming writer: declare every tensor, then write their data in declaration order;
 * the file appears at its path only when qc_safetensors_writer_finish succeeds. */
typedef struct qc_safetensors_writer qc_safetensors_writer;

qc_safetensors_writer *qc_safetensors_writer_new(qc_err *e);
qc_status qc_safetensors_writer_add(qc_safetensors_writer *w, const char *name, qc_dtype dtype, int ndim,
                           const int64_t *shape, qc_err *e);
/* An entry of "__metadata__" (string to string). */
qc_status qc_safetensors_writer_meta(qc_safetensors_writer *w, const char *key, const char *value, qc_err *e);
/* Writes the header to a temporary file beside path. */
qc_status qc_safetensors_writer_begin(qc_safetensors_writer *w, const char *path, qc_err *e);
/* The next declared tensor's bytes, exactly its size. */
qc_status qc_safetensors_writer_write(qc_safetensors_writer *w, const char *name, const void *data, size_t nbytes,
                             qc_err *e);
qc_status qc_safetensors_writer_finish(qc_safetensors_writer *w, qc_err *e);
void qc_safetensors_writer_free(qc_safetensors_writer *w); /* aborts an unfinished file; NULL: no-op */

/* ---- full-precision export --------------------------------------------------------------------------- */

/* Where an exporter gets weights from: a checkpoint, or a model whose linears were
 * quantized. read() fills out with the weight in fp32, interleaved RoPE rows. */
typedef struct qc_weight_source {
    const qc_config *cfg;
    qc_status (*read)(void *ctx, qc_weight w, int layer, float *out, qc_err *e);
    /* Optional: the quantized form of a weight, or NULL for one that is not quantized.
     * Quantized formats write these as they are; read() gives their dequantized values. */
    const qc_qweight *(*qweight)(void *ctx, qc_weight w, int layer);
    void *ctx;
} qc_weight_source;

qc_weight_source qc_checkpoint_source(const qc_checkpoint *ck);

/* A model widened with zeros so that every matrix's input width is a multiple of `multiple`
 * (pad.c, where the algebra is): the residual width d and the FFN width to the next multiple,
 * the attention width by whole groups of heads (head_dim and the GQA ratio kept), each RMSNorm
 * weight scaled by sqrt(d/d') and eps by d/d', so that it computes the same function. in (and
 * what it reads from) is borrowed and must outlive the padded source. */
typedef struct qc_pad {
    qc_config cfg;                 /* the padded model */
    const qc_weight_source *in;    /* borrowed */
    double norm_scale;             /* sqrt(d/d') */
} qc_pad;

/* multiple: a positive multiple of 32, else QC_ERR_ARG naming --pad-to; a width that cannot be
 * padded within qcalib's limits is QC_ERR_UNSUPPORTED naming it. */
qc_status qc_pad_init(qc_pad *p, const qc_weight_source *in, int multiple, qc_err *e);
/* Full-precision reads of the padded weights (no qweight: quantized inputs read dequantized). */
qc_weight_source qc_pad_source(const qc_pad *p);

typedef struct qc_hf_export_opts {
    qc_dtype dtype;       /* F32, F16 or BF16 */
    size_t shard_bytes;   /* 0: one model.safetensors; else shards of at most this size + index */
} qc_hf_export_opts;

/* Writes a Hugging Face Llama folder (config.json, model.safetensors or shards with
 * model.safetensors.index.json); Q/K rows in HF's layout. The folder appears at `dir`
 * only when complete; an existing one is replaced only if `replace`. */
qc_status qc_hf_export(const qc_weight_source *src, const char *dir, const qc_hf_export_opts *o,
                       bool replace, const qc_log *log, qc_err *e);

/* What config.json (HF, GPTQ and AWQ folders) can describe, for a caller to refuse before it
 * calibrates: a valid config whose scaled RoPE frequencies, if any, come from Llama 3's
 * rope_scaling parameters, not only from a GGUF's rope_freqs tensor. The message names `path`. */
qc_status qc_hf_check_config(const qc_config *c, const char *path, qc_err *e);

/* The same files, written into an output folder being built (e.g. beside logs). */
qc_status qc_hf_export_into(const qc_weight_source *src, const qc_outdir *d, const qc_hf_export_opts *o,
                            const qc_log *log, qc_err *e);

/* ---- quantized formats ----------------------------------------------------------------------------- */

/* GPTQ safetensors (AutoGPTQ / GPTQModel / transformers / vLLM; QUANT-SPEC §7): per quantized
 * linear PREFIX.{qweight, qzeros, scales, g_idx} in its own bits (2, 3, 4 or 8), group size
 * and symmetry; every other tensor F16, config.json with a quantization_config and
 * quantize_config.json. The config's bits, group_size and sym are those most linears have
 * (ties: the first linear's); when some linear differs, or is not quantized (qweight() NULL:
 * written as an F16 PREFIX.weight), both files get GPTQModel's "dynamic": a "+:" entry with
 * that linear's bits, group_size and sym, or a "-:" entry ({}), keyed by a regex matching
 * exactly its module name, e.g. "+:^model\.layers\.1\.mlp\.down_proj$" (layout in
 * gptq_dynamic.c). At least one linear must be quantized. A quantized token embedding
 * (qweight() of QC_W_EMBED) is refused: transformers and vLLM load a GPTQ embedding as fp16
 * (use GGUF, llama2.c int8 or the dequantized HF export for it). */
typedef struct qc_gptq_export_opts {
    int checkpoint_format; /* 1: qzeros hold zero − 1 (the widely loaded "gptq"); 2: the zero ("gptq_v2") */
    float damp_percent;
    bool desc_act, static_groups, true_sequential;
} qc_gptq_export_opts;

qc_status qc_gptq_export_into(const qc_weight_source *src, const qc_outdir *d, const qc_gptq_export_opts *o,
                              const qc_log *log, qc_err *e);
/* The bit widths GPTQ checkpoints hold, and their loaders (AutoGPTQ, GPTQModel, vLLM) read:
 * 2, 3, 4 or 8. The one statement of that set: writer, config readers and format choice ask it. */
bool qc_gptq_format_holds_bits(int bits);

/* AutoAWQ's "GEMM" layout (QUANT-SPEC §7): 4-bit, contiguous groups (no act-order), zero
 * points stored, one group size for every linear, every linear quantized. Refuses quantized
 * weights it cannot hold, saying why, and a quantized token embedding (loaded as fp16). */
qc_status qc_awq_export_into(const qc_weight_source *src, const qc_outdir *d, const qc_log *log, qc_err *e);
/* The shape half of what AWQ refuses, for a caller to check every linear before it
 * calibrates: in % groupsize == 0 (groupsize <= 0: one group per row) and out % 8 == 0; the
 * message names `name` (the linear). */
qc_status qc_awq_check_shape(const char *name, int rows, int cols, int groupsize, qc_err *e);

/* GGUF for llama.cpp (../shared/docs/GGUF.md). Block types are ggml's own type ids. */
typedef enum qc_gguf_type {
    QC_GGUF_F32 = 0, QC_GGUF_F16 = 1, QC_GGUF_Q4_0 = 2, QC_GGUF_Q4_1 = 3, QC_GGUF_Q5_0 = 6, QC_GGUF_Q5_1 = 7,
    QC_GGUF_Q8_0 = 8,
    QC_GGUF_Q2_K = 10, QC_GGUF_Q3_K = 11, QC_GGUF_Q4_K = 12, QC_GGUF_Q5_K = 13, QC_GGUF_Q6_K = 14,
} qc_gguf_type;

const char *qc_gguf_type_name(qc_gguf_type t); /* "Q4_0", "Q4_K", ... */
/* llama.cpp's tensor name of a weight: "token_embd.weight", "blk.3.attn_q.weight", ... */
void qc_gguf_tensor_name(qc_weight w, int layer, char *buf, size_t size);
bool qc_gguf_type_parse(const char *name, qc_gguf_type *t); /* "q4_0", "Q4_0", "f16", "q6_k", ... */
double qc_gguf_type_bits(qc_gguf_type t); /* bits per weight its blocks take: Q4_0 4.5, F16 16, ...; 0: unknown */
int qc_gguf_type_block(qc_gguf_type t);   /* weights per block: 32, 256 for the K-quants, 1 for F16/F32 */
/* Whether t is a K-quant (Q2_K..Q6_K), and its bits (Q<bits>_K). */
static inline bool qc_gguf_type_is_k(qc_gguf_type t) { return t >= QC_GGUF_Q2_K && t <= QC_GGUF_Q6_K; }
static inline int qc_gguf_k_bits(qc_gguf_type t) { return (int)t - QC_GGUF_Q2_K + 2; }

/* The K-quant fitter solvers get through their spec (quant.h's qc_kquant_fit_fn): llama.cpp's
 * reference quantizer of Q<bits>_K (imp NULL: byte for byte what `llama-quantize --pure`
 * writes for the same values) or its importance-weighted one, its block unpacked into
 * qc_qweight's K-quant layout. */
void qc_gguf_kquant_fit(int bits, const float *x, const float *imp, uint8_t *codes, float *scales, float *zeros,
                        float *mins, float *sb);

/* ---- llama.cpp's K-quant mixes (gguf_mix.c) ----
 * A mix (`--gguf-type q4_k_m`) is llama-quantize's ftype: a default type and per-tensor rules
 * for the Llama architecture (attn_v, ffn_down, attn_output, output, token_embd). */
typedef struct qc_gguf_mix qc_gguf_mix;
/* The mix or single type named `name` ("q4_k_m", "Q3_K_S", "q6_k", ...); NULL: no such mix. */
const qc_gguf_mix *qc_gguf_mix_find(const char *name);
const char *qc_gguf_mix_name(const qc_gguf_mix *m);     /* "Q4_K_M" */
int qc_gguf_mix_ftype(const qc_gguf_mix *m);            /* general.file_type (llama_ftype) */
qc_gguf_type qc_gguf_mix_default(const qc_gguf_mix *m); /* the type of the tensors no rule names */
/* The type the mix gives weight w (a linear, QC_W_EMBED or QC_W_CLASSIFIER) of block `layer`
 * in a model of config c, before shape fallbacks (llama_tensor_get_type's choice). */
qc_gguf_type qc_gguf_mix_type(const qc_gguf_mix *m, const qc_config *c, qc_weight w, int layer);
/* llama.cpp's type for a tensor of type t whose rows hold cols values: t itself when they are
 * whole blocks of t; else its fallback, Q4_0 for Q2_K and Q3_K, Q5_0 for Q4_K, Q5_1 for Q5_K,
 * Q8_0 for Q6_K (tensor_type_fallback), *name its ggml name; -1 when even that does not fit
 * (llama.cpp then writes F16), *name the fallback's. */
int qc_gguf_fallback(qc_gguf_type t, int cols, const char **name);

typedef struct qc_gguf_export_opts {
    qc_gguf_type float_type;   /* for linears src holds unquantized (F32 or F16) */
    qc_gguf_type embed_type;   /* token_embd.weight, unless src holds it quantized */
    qc_gguf_type output_type;  /* output.weight, written even when the classifier is tied */
    const qc_tokenizer *tok;       /* the vocabulary, for the tokenizer metadata (required) */
    const char *name;          /* the model's path: general.name is its last part without a
                                  .bin/.safetensors/.gguf ("stories260K"), however it is spelled */
    int ftype;                 /* > 0: general.file_type (a mix's llama_ftype); 0: the type most
                                  linear weights have */
} qc_gguf_export_opts;

/* A quantized linear, or a quantized token embedding (qweight() of QC_W_EMBED), becomes
 * blocks of its own type: 4-bit symmetric groups of 32 with zero 8 are Q4_0 (d = scale), 4-bit
 * groups with mins are Q4_1 (d = scale, m = min), 5-bit ones Q5_0 (zero 16) and Q5_1 (mins),
 * 8-bit symmetric groups of 32 are Q8_0, a
 * K-quant weight (super set) is Q<bits>_K with its stored factors (NaN or Inf refused); its
 * scales (and mins) must already be fp16 values, so that the file holds exactly the weights
 * the solver compensated for; one that fits none is refused. output.weight always comes from
 * read(), in output_type. */
qc_status qc_gguf_export(const qc_weight_source *src, const char *path, const qc_gguf_export_opts *o,
                         const qc_log *log, qc_err *e);
/* What qc_gguf_export checks of the model and the options before it looks at any weight, for
 * a caller to refuse before it calibrates: a config llama.cpp's llama architecture reads
 * (Llama 3's rope_scaling goes in as a rope_freqs.weight tensor), the float, embedding and output types
 * (quantized ones need dim a multiple of their block), and the vocabulary (present, as long
 * as the model's, no repeated piece). The message names `path`. */
qc_status qc_gguf_check_export(const qc_config *c, const qc_gguf_export_opts *o, const char *path, qc_err *e);

/* ---- llama.cpp's importance matrix (imatrix_write.c) ------------------------------------------------ */

/* Σx² of every linear's input, per input channel, over `tokens` tokens in `chunks` windows of
 * `chunk_size`: what llama-imatrix measures and llama-quantize --imatrix reads. */
typedef struct qc_imatrix_src {
    const qc_config *cfg;
    /* (the input width of w) the sums for linear w of block `layer` (borrowed) */
    const double *(*sum_sq)(void *ctx, qc_weight w, int layer);
    void *ctx;
    int64_t tokens;
    int chunks, chunk_size;
    const char *const *datasets; /* the calibration files, for the file's metadata */
    int ndatasets;
} qc_imatrix_src;

/* Writes m at path, atomically: llama.cpp's GGUF imatrix when path ends in ".gguf", else its
 * legacy .dat (layouts in imatrix_write.c). No tokens, or a sum beyond fp32, is an error
 * naming path (and the tensor). */
qc_status qc_imatrix_write(const char *path, const qc_imatrix_src *m, qc_err *e);

/* ---- synthetic models (benchmarks and unit tests only; synth.c) --------------------------------------- */

/* A Llama of random weights: the shape's config and a seed fix every value. */
typedef struct qc_synth {
    qc_config cfg;
    uint64_t seed;
} qc_synth;

/* The config of a named shape: "tiny" (128 wide, 2 blocks, tests), "tiny256" (256 wide, 8
 * blocks, FFN 768: GGUF K-quant tests), "1b" (2048 wide, 16 blocks,
 * FFN 5632, vocab 32000) or "7b" (Llama-2-7B); false for another name. */
bool qc_synth_shape(const char *name, qc_config *c);
/* Weights generated on read, one tensor at a time (deterministic, thread-count independent). */
qc_weight_source qc_synth_source(const qc_synth *s);
/* The model as a Hugging Face folder in dt (F32, F16, BF16), config.json labelled
 * "qcalib_synthetic": true with the shape's name. */
qc_status qc_synth_export_into(const qc_synth *s, const char *shape, const qc_outdir *d, qc_dtype dt,
                               const qc_log *log, qc_err *e);

/* llama2.c's "version 2" int8 checkpoint, which its runq.c loads (export.py's
 * version2_export): norms in fp32, every matrix as Q8_0 in groups of `groupsize` consecutive
 * values (int8 codes, fp32 scales). A weight whose qweight() is 8-bit, symmetric (zero 128),
 * in groups of exactly `groupsize` columns is stored as it is (the token embedding's too); a
 * linear's qweight that is not is refused; every other matrix, and a token embedding whose
 * qweight does not fit, gets export.py's quantizer of read() (scale = max|w| / 127).
 * groupsize must divide dim and hidden_dim (runq.c's matmul works in whole groups of a row).
 * Atomic. */
qc_status qc_llama2c_q8_export(const qc_weight_source *src, const char *path, int groupsize, const qc_log *log,
                               qc_err *e);
/* What qc_llama2c_q8_export checks of the model and group size before it writes anything,
 * for a caller to refuse before it calibrates: runq.c's fixed head_dim = dim / n_heads,
 * rope_theta 10000, norm_eps 1e-5, no rope_scaling, no attention biases; groupsize > 0
 * dividing dim and hidden_dim; every tensor within runq.c's 32-bit sizes. The message names
 * `path`. */
qc_status qc_llama2c_q8_check(const qc_config *c, const char *path, int groupsize, qc_err *e);

/* The tokenizer a checkpoint carries (GGUF's tokenizer metadata); QC_ERR_UNSUPPORTED when it
 * carries none. */
qc_status qc_checkpoint_tokenizer(const qc_checkpoint *ck, qc_tokenizer *t, qc_err *e);
/* The model's tokenizer (tokenizer_find.c): `path` if given, else the one ck carries (GGUF),
 * else tokenizer.json, tokenizer.bin or tok<vocab>.bin beside the model. When no path is
 * given and there is none to find: *found false, QC_OK, and e's message says where it
 * looked. A tokenizer found but unreadable is an error. */
qc_status qc_checkpoint_find_tokenizer(const char *path, const qc_checkpoint *ck, qc_tokenizer *t, bool *found,
                                       qc_err *e);
/* The same, where having none is an error (QC_ERR_ARG) whose message ends with "; pass
 * --tokenizer FILE". */
qc_status qc_checkpoint_require_tokenizer(const char *path, const qc_checkpoint *ck, qc_tokenizer *t, qc_err *e);

/* Writes a llama2.c legacy checkpoint (fp32; the classifier stored separately unless
 * cfg->tied_classifier), atomically. */
qc_status qc_llama2c_export(const qc_weight_source *src, const char *path, const qc_log *log,
                            qc_err *e);

#endif
