/* qformat.h — internal to io/ (callers use io/io.h): what the GPTQ and AWQ safetensors
 * formats share between their writers (gptq_format.c, awq_format.c), the bit packing both use
 * (qpack.c), and the Hugging Face reader that opens such folders (hf.c, hf_config.c).
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

typedef struct qc_hf_quant {
    qc_hfq_method method;
    int bits;              /* GPTQ 2, 3, 4, 8; AWQ 4 */
    int group_size;        /* > 0, or -1: one group per output row */
    bool sym;              /* GPTQ: informational (zero points are stored either way) */
    bool desc_act;         /* GPTQ: act-order; with it g_idx is required */
    int checkpoint_format; /* GPTQ: 1 ("gptq": qzeros hold zero − 1) or 2 ("gptq_v2"); AWQ: 0 */
} qc_hf_quant;

/* qc_hf_config_load, plus the quantization_config (q->method QC_HFQ_NONE when there is
 * none). Accepted: quant_method "gptq" (bits, group_size required; sym default true,
 * desc_act default false, checkpoint_format "gptq" (default) or "gptq_v2") and "awq"
 * (bits or w_bit = 4, group_size or q_group_size, zero_point true, version "gemm");
 * anything else is refused with a message naming the file and the field. */
qc_status qc_hf_config_load_quant(const char *path, qc_config *c, qc_hf_quant *q, qc_err *e);

/* ---- reading --------------------------------------------------------------------------------- */

/* Looks a tensor up by name in the checkpoint's shard(s); NULL when absent. `where` receives
 * the file to name in messages (the shard holding it, or the file it should be in). */
typedef const qc_st_tensor *(*qc_hfq_find)(const void *files, const qc_checkpoint *ck, const char *name,
                                           const char **where);

/* Locates the tensors of the quantized linear `prefix` (rows × cols as the config implies,
 * file-order rows), validates their dtypes, shapes and g_idx values, and sets *loc
 * (decode, aux and qtype owned by ck; hf_rope_heads is left to the caller). */
qc_status qc_gptq_locate(qc_checkpoint *ck, const qc_hf_quant *q, const char *prefix, int rows, int cols,
                         qc_hfq_find find, const void *files, qc_ck_loc *loc, qc_err *e);
qc_status qc_awq_locate(qc_checkpoint *ck, const qc_hf_quant *q, const char *prefix, int rows, int cols,
                        qc_hfq_find find, const void *files, qc_ck_loc *loc, qc_err *e);

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

/* config.json of a quantized export: the fields qc_export_hf writes with torch_dtype
 * "float16", plus "quantization_config": quant_json (an object's JSON text). */
void qc_qfmt_config_json(const qc_config *c, const char *quant_json, qc_sb *b);

/* Writes text to file `name` inside the folder being built. */
qc_status qc_qfmt_write_text(const qc_outdir *d, const char *name, const qc_sb *b, qc_err *e);

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

/* A float (non-quantized) tensor written as F16 from src->read (Q/K never go this way: they
 * are linears). buf holds rows*cols floats and as many F16 bytes. */
qc_status qc_qfmt_write_f16(const qc_weight_source *src, qc_st_writer *w, qc_weight wt, int layer,
                            const char *name, size_t n, float *f32, uint8_t *bytes, qc_err *e);

#endif
