/* qformat.h — internal to io/ (callers use io/io.h): what the GPTQ and AWQ safetensors
 * formats share between their writers (gptq_format.c, awq_format.c), the bit packing both use
 * (qpack.c), and the Hugging Face reader that opens such folders (hf_checkpoint.c, hf_config.c).
 *
 * A quantized linear PREFIX (e.g. "model.layers.3.self_attn.q_proj") is stored as
 *   GPTQ: PREFIX.qweight I32 [in_words, out]   PREFIX.qzeros I32 [ngroups, out_words]
 *         PREFIX.scales  F16 [ngroups, out]    PREFIX.g_idx  I32 [in]
 *   AWQ:  PREFIX.qweight I32 [in, out/8]       PREFIX.qzeros I32 [in/g, out/8]
 *         PREFIX.scales  F16 [in/g, out]
 * (layouts in gptq_format.c and awq_format.c). Output features ("out") are HF's rows: for
 * Q and K in the rotate-half order, un-permuted on read like plain HF weights. */
#ifndef QC_IO_QFORMAT_H
#define QC_IO_QFORMAT_H

#include "io/internal.h"

/* ---- config.json's quantization_config ----------------------------------------------------- */

typedef enum qc_hfq_method { QC_HFQ_NONE, QC_HFQ_GPTQ, QC_HFQ_AWQ } qc_hfq_method;

/* One entry of a GPTQ quantization_config.dynamic, compiled (gptq_dynamic.c). */
typedef struct qc_hfq_rule qc_hfq_rule;

typedef struct qc_hf_quant {
    qc_hfq_method method;
    int bits;              /* GPTQ 2, 3, 4, 8; AWQ 4 */
    int group_size;        /* > 0, or -1: one group per output row */
    bool sym;              /* GPTQ: informational (zero points are stored either way) */
    bool desc_act;         /* GPTQ: act-order; with it g_idx is required */
    int checkpoint_format; /* GPTQ: 1 ("gptq": qzeros hold zero − 1) or 2 ("gptq_v2"); AWQ: 0 */
    int nrules;            /* GPTQ: the entries of "dynamic", in the order they are tried */
    qc_hfq_rule *rules;    /* (nrules) owned; qc_hf_quant_free */
} qc_hf_quant;

/* qc_hf_config_load, plus the quantization_config (q->method QC_HFQ_NONE when there is
 * none). Accepted: quant_method "gptq" (bits, group_size required; sym default true,
 * desc_act default false, checkpoint_format "gptq" (default) or "gptq_v2", dynamic: per-module
 * overrides) and "awq" (bits or w_bit = 4, group_size or q_group_size, zero_point true,
 * version "gemm"); anything else is refused with a message naming the file and the field.
 * q may own compiled rules afterwards, also after a failure: the caller frees it with
 * qc_hf_quant_free. */
qc_status qc_hf_config_load_quant(const char *path, qc_config *c, qc_hf_quant *q, uint64_t *hash, qc_err *e);

/* ---- GPTQModel's per-module overrides: quantization_config.dynamic (gptq_dynamic.c) ---------- */

/* Parses dyn (quantization_config.dynamic, not NULL) of config file `path` into q->rules;
 * a malformed entry is an error naming path and the entry's key. */
qc_status qc_hfq_dynamic_parse(const char *path, const struct cJSON *dyn, qc_hf_quant *q, qc_err *e);
/* The settings of module `name` (e.g. "model.layers.3.mlp.down_proj") into *out: q's, with the
 * first matching rule's fields over them (out->rules is NULL); *skip = that rule's key when it
 * is a negative one (the module is not quantized), else NULL. `path` is for messages. */
qc_status qc_hfq_module(const qc_hf_quant *q, const char *name, const char *path, qc_hf_quant *out,
                        const char **skip, qc_err *e);
void qc_hf_quant_free(qc_hf_quant *q); /* the rules; q itself is the caller's */

/* ---- reading --------------------------------------------------------------------------------- */

/* Looks a tensor up by name (or "__metadata__" alias, qc_safetensors_lookup) in the checkpoint's
 * shard(s); *out NULL when absent. `where` receives the file to name in messages (the shard
 * holding it, or the file it should be in). Fails only on an alias to a missing tensor. */
typedef qc_status (*qc_hfq_find)(const void *files, const qc_checkpoint *ck, const char *name,
                                 const qc_safetensors_tensor **out, const char **where, qc_err *e);

/* Locates the tensors of the quantized linear `prefix` (rows × cols as the config implies,
 * file-order rows), validates their dtypes, shapes and g_idx values, and sets *loc
 * (decode, aux and qtype owned by ck; hf_rope_heads is left to the caller). */
qc_status qc_gptq_locate(qc_checkpoint *ck, const qc_hf_quant *q, const char *prefix, int rows, int cols,
                         qc_hfq_find find, const void *files, qc_ck_loc *loc, qc_err *e);
qc_status qc_awq_locate(qc_checkpoint *ck, const qc_hf_quant *q, const char *prefix, int rows, int cols,
                        qc_hfq_find find, const void *files, qc_ck_loc *loc, qc_err *e);

/* Looks PREFIX.suffix up with find and checks it: dtype I32, or F16, BF16 or F32 when is_float;
 * shape [r, c] with r in [r_lo, r_hi] and c in [c_lo, c_hi], or [r] when c_hi < 0. Missing is
 * an error unless optional (then *out is NULL). Messages name the file, the tensor, the shape
 * expected (r_lo, c_lo) and `why` (what implies it). (qfmt_read.c) */
qc_status qc_qfmt_find_tensor(qc_hfq_find find, const void *files, const qc_checkpoint *ck, const char *prefix,
                              const char *suffix, bool optional, bool is_float, int64_t r_lo, int64_t r_hi,
                              int64_t c_lo, int64_t c_hi, const char *why, const qc_safetensors_tensor **out, qc_err *e);

/* A scale of a packed scales tensor of dtype dt (F16, BF16 or F32), at p. */
static inline float qc_qfmt_scale(const uint8_t *p, qc_dtype dt) {
    if (dt == QC_DT_F16) return qc_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
    float f;
    qc_convert_to_f32(dt, p, 1, &f);
    return f;
}

/* Rows of a quantized linear are decoded QC_QFMT_TILE at a time. */
#define QC_QFMT_TILE 32

/* A format's tile decoder: rows [row0, row0+n) (file order, n <= QC_QFMT_TILE) of the weight
 * aux describes into out (n rows of its width); scratch is the thread's scratch (NULL when the
 * format asked for none). */
typedef void (*qc_qfmt_tile)(const void *aux, int64_t row0, int n, float *scratch, float *out);

/* Decodes rows [row0, row0+nrows) of a weight `cols` wide into out, tile by tile, in parallel
 * when large; each thread gets scratch_floats floats of scratch (0: none). Out of memory is an
 * error naming ck's path and qtype. (qfmt_read.c) */
qc_status qc_qfmt_decode(const qc_checkpoint *ck, const void *aux, const char *qtype, qc_qfmt_tile tile,
                         size_t scratch_floats, int64_t row0, int nrows, int cols, float *out, qc_err *e);

/* ---- bit packing (qpack.c) ------------------------------------------------------------------- */

/* A stream of `bits`-bit codes in 32-bit little-endian words that sit `stride` bytes apart:
 * code k occupies bits [k·bits, (k+1)·bits) of the stream, lowest bits first, and may
 * straddle two words (3-bit). This is AutoGPTQ's layout for every width: its 3-bit packing
 * puts 32 codes in 3 words with codes 10 and 21 split across a word boundary, which is
 * exactly this stream. */
uint32_t qc_qpack_get(const uint8_t *base, size_t stride, int bits, int64_t k);
/* ORs code v (< 2^bits) into the stream (the words start zeroed). */
void qc_qpack_put(uint8_t *base, size_t stride, int bits, int64_t k, uint32_t v);

/* Codes padded to whole 32-bit words as qcalib writes GPTQ tensors: n rounded up to a
 * multiple of 32/bits for 2, 4 and 8 bits, and of 32 for 3 bits (AutoGPTQ's 3-bit layout is
 * defined in blocks of 32 codes in 3 words). Returns the number of words. */
int64_t qc_qpack_words(int64_t n, int bits);
/* The fewest words that hold n codes: ceil(n·bits / 32). */
int64_t qc_qpack_min_words(int64_t n, int bits);

/* AutoAWQ's GEMM order: within each word, nibble i holds column 8·word + qc_awq_order[i]. */
extern const int qc_awq_order[8];
/* The nibble that holds column j (0..7) of its word: the inverse of qc_awq_order. */
extern const int qc_awq_nibble[8];

/* ---- writing (qpack.c) ----------------------------------------------------------------------- */

/* The interleaved (source) row stored at HF row `hf_row` of a Q/K weight: within a head,
 * HF row j·head_dim/2 + i holds interleaved row 2i + j. Rows of other weights map to
 * themselves (heads = 0). */
int qc_qfmt_src_row(int hf_row, int heads, int head_dim);

/* True when every scale of q (rows × ngroups) is finite and exactly an fp16 value; else
 * *row and *group say where the first one that is not sits. */
bool qc_qfmt_scales_fp16(const qc_qweight *q, int *row, int *group);

/* Checks what every zero-point format needs of a quantized linear `name` whose weight is
 * rows × cols: the shape, bits in 2..8, no mins, codes <= maxq, ngroups = ceil(cols/groupsize)
 * (1 per channel), g_idx in [0, ngroups), scales exactly fp16, zero points integral in
 * [zmin, zmax]. `how` names the format in messages ("GPTQ", "AWQ"). */
qc_status qc_qfmt_check_qweight(const qc_qweight *q, const char *name, int rows, int cols, float zmin,
                                float zmax, const char *how, qc_err *e);

/* True when g_idx[c] == c / groupsize for every column (0 for one group per row). */
bool qc_qfmt_gidx_trivial(const qc_qweight *q);

/* ---- the writer both formats share (qfmt_write.c) ------------------------------------------ */

/* One linear of the model being written. */
typedef struct qc_qfmt_module {
    char name[96];        /* "model.layers.L.mlp.down_proj" */
    qc_weight w;
    int layer;
    const qc_qweight *q;  /* NULL: not quantized (stored as PREFIX.weight in F16) */
} qc_qfmt_module;

/* Every linear of the model in file order, and the one whose settings the format's config
 * states: the bits, group size and symmetry most quantized linears have (ties: the first's). */
typedef struct qc_qfmt_plan {
    int n;
    qc_qfmt_module *m;    /* (n) */
    const qc_qweight *base;
} qc_qfmt_plan;

/* Whether q's bits, group size or symmetry differ from base's. */
bool qc_qfmt_differs(const qc_qweight *q, const qc_qweight *base);

/* `,\n<indent>"dynamic": {...}` for the linears of p that are not quantized ("-:" entries,
 * {}) or whose settings differ from p->base's ("+:" entries: bits, group_size, sym), each
 * keyed by a regex matching exactly its module name — or, for a block's q, k, v (gate, up)
 * stored alike, one entry matching their names and vLLM's fused one; nothing when there are
 * none. (gptq_dynamic.c) */
void qc_gptq_dynamic_json(const qc_qfmt_plan *p, const char *indent, qc_sb *b);

/* The sym the GPTQ config states: p->base's, except false when the base setting would send
 * vLLM to its Marlin kernel (4 or 8 bits, symmetric, groups of −1, 32, 64 or 128) and some
 * quantized linear's setting is one Marlin refuses (gptq_dynamic.c). */
bool qc_gptq_config_sym(const qc_qfmt_plan *p);

/* One linear being written: the solver's weight, the order of its HF rows, the options. */
typedef struct qc_qfmt_linear {
    const qc_qweight *q;  /* rows (out) × cols (in), rows in the source's (interleaved) order */
    int heads, head_dim;  /* HF row o is source row qc_qfmt_src_row(o, heads, head_dim) */
    const void *opts;     /* the format's export options, as passed to qc_qfmt_export */
} qc_qfmt_linear;

/* One tensor PREFIX.suffix of a linear, and how it is filled. */
typedef struct qc_qfmt_tensor qc_qfmt_tensor;
struct qc_qfmt_tensor {
    const char *suffix;   /* "qweight", "qzeros", "scales", "g_idx" */
    qc_dtype dtype;       /* I32 or F16 */
    int ndim;             /* 1 or 2 */
    int64_t shape[2];
    /* Packs linear l into buf: this tensor's bytes, zeroed beforehand. */
    void (*pack)(const qc_qfmt_linear *l, const qc_qfmt_tensor *t, uint8_t *buf);
};

#define QC_QFMT_MAX_TENSORS 4

/* A quantized safetensors format as the writer sees it (one static const per format file).
 * opts is what the format's export was given (NULL when it has no options). */
typedef struct qc_qfmt {
    const char *name;         /* "GPTQ", "AWQ": in messages */
    const char *extra_file;   /* the format's own JSON file beside config.json */
    /* Linears may differ in settings from the base and may be unquantized (GPTQ's "dynamic");
     * else every linear must be quantized, and check compares it with the base. */
    bool mixed;
    /* Checks linear `name` (rows × cols, as the config says) against the format (and, unless
     * mixed, against the base linear); a refusal names `name`. */
    qc_status (*check)(const void *opts, const qc_qweight *q, const qc_qweight *base, const char *name, int rows,
                       int cols, qc_err *e);
    /* The tensors of linear q (rows × cols) into t, in file order; returns how many. */
    int (*tensors)(int rows, int cols, const qc_qweight *q, qc_qfmt_tensor t[QC_QFMT_MAX_TENSORS]);
    /* config.json's "quantization_config" object; the extra file's text. */
    void (*quant_config)(const void *opts, const qc_qfmt_plan *p, qc_sb *b);
    void (*extra_json)(const void *opts, const qc_qfmt_plan *p, qc_sb *b);
    /* What the debug log says is written, e.g. "AWQ GEMM 4-bit, group size 128". */
    void (*describe)(const void *opts, const qc_qweight *base, char *buf, size_t size);
    /* Optional: what the user must know about the file planned for folder dir (which readers
     * get it right), said through log before anything is written. */
    void (*notes)(const void *opts, const qc_qfmt_plan *p, const char *dir, const qc_log *log);
} qc_qfmt;

/* Writes src into the folder d in format fmt (layout in qfmt_write.c): every linear is
 * checked before anything is written; then config.json, fmt->extra_file and
 * model.safetensors. A quantized token embedding is refused (both formats keep it in F16).
 * Errors are prefixed with d's path. */
qc_status qc_qfmt_export(const qc_qfmt *fmt, const void *opts, const qc_weight_source *src, const qc_outdir *d,
                         const qc_log *log, qc_err *e);

/* The pack function of scales, F16 [ngroups, out], which both formats store. */
void qc_qfmt_pack_scales(const qc_qfmt_linear *l, const qc_qfmt_tensor *t, uint8_t *buf);

#endif
