/* llama2c_checkpoint.c — the llama2.c legacy ("version 0") checkpoint reader. The file is mapped and
 * each weight addressed in place; nothing is copied at open time. A file that begins with
 * the magic number "ak42" is one of export.py's later versions (1: fp32, 2: Q8_0 int8) and
 * goes to llama2c_q8.c, which has its layout.
 *
 * Layout (little endian; L = n_layers, hd = head_dim = dim / n_heads, kv = n_kv_heads):
 *   int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len   (28 bytes)
 *     vocab_size < 0: the classifier is stored separately (|vocab_size| tokens)
 *   fp32 token_embedding (vocab, dim)
 *   fp32 rms_att         (L, dim)
 *   fp32 wq              (L, n_heads*hd, dim)
 *   fp32 wk              (L, kv*hd, dim)
 *   fp32 wv              (L, kv*hd, dim)
 *   fp32 wo              (L, dim, n_heads*hd)
 *   fp32 rms_ffn         (L, dim)
 *   fp32 w1              (L, hidden_dim, dim)    gate
 *   fp32 w2              (L, dim, hidden_dim)    down
 *   fp32 w3              (L, hidden_dim, dim)    up
 *   fp32 rms_final       (dim)
 *   fp32 freq_cis_real   (seq_len, hd/2)         unused (RoPE is recomputed)
 *   fp32 freq_cis_imag   (seq_len, hd/2)         unused
 *   fp32 wcls            (vocab, dim)            only when vocab_size < 0
 * and nothing after. Q/K rows are interleaved pairs (Meta's layout). llama2.c's run.c fixes
 * norm_eps = 1e-5 and rope_theta = 10000, which the file does not store.
 *
 * The header is validated (ranges, divisibility) before any size is computed from it; sizes
 * are computed with overflow checks; the file must be exactly the size the header implies. */
#include "io/internal.h"
#include "io/llama2c.h"

#include <limits.h>
#include <string.h>

const qc_weight qc_llama2c_order[QC_LLAMA2C_NORDER] = {
    QC_W_EMBED, QC_W_ATTN_NORM, QC_W_Q, QC_W_K,    QC_W_V,  QC_W_O,
    QC_W_FFN_NORM, QC_W_GATE,   QC_W_DOWN, QC_W_UP, QC_W_FINAL_NORM,
};

qc_status qc_llama2c_config(const char *path, const int32_t h[7], bool tied, qc_config *c, qc_err *e) {
    memset(c, 0, sizeof *c);
    c->dim = h[0];
    c->hidden_dim = h[1];
    c->n_layers = h[2];
    c->n_heads = h[3];
    c->n_kv_heads = h[4];
    c->vocab_size = h[5];
    c->seq_len = h[6];
    c->tied_classifier = tied;
    c->norm_eps = 1e-5f;     /* run.c's constants */
    c->rope_theta = 10000.0f;
    if (c->dim > 0 && c->n_heads > 0 && c->dim % c->n_heads != 0)
        return qc_fail(e, QC_ERR_FORMAT, "%s: dim %d is not a multiple of n_heads %d", path, c->dim,
                       c->n_heads);
    c->head_dim = c->n_heads > 0 ? c->dim / c->n_heads : 0;
    return qc_config_validate(c, path, e);
}

qc_status qc_llama2c_check_config(const qc_config *c, const char *path, const char *runtime, qc_err *e) {
    qc_status st = qc_config_validate(c, path, e);
    if (st) return st;
    if (c->attn_qkv_bias)
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: llama2.c's %s has no attention biases; this model has %s biases", path,
                       runtime, c->attn_o_bias ? "q, k, v and o" : "q, k and v");
    if (c->head_dim * c->n_heads != c->dim)
        return qc_fail(e, QC_ERR_UNSUPPORTED,
                       "%s: llama2.c requires head_dim = dim / n_heads; this model has head_dim %d, dim %d, n_heads %d",
                       path, c->head_dim, c->dim, c->n_heads);
    if (c->rope_theta != 10000.0f)
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: llama2.c's %s hard-codes rope_theta 10000; this model has %g",
                       path, runtime, (double)c->rope_theta);
    if (c->norm_eps != 1e-5f)
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: llama2.c's %s hard-codes norm_eps 1e-5; this model has %g",
                       path, runtime, (double)c->norm_eps);
    if (c->rope_nfreqs > 0)
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: llama2.c's %s has no rope_scaling; this model has Llama 3's", path, runtime);
    return QC_OK;
}

static qc_status parse_header(const char *path, const uint8_t *p, qc_config *c, qc_err *e) {
    int32_t h[7];
    for (int i = 0; i < 7; i++) h[i] = (int32_t)qc_le32(p + 4 * i);
    bool tied = h[5] > 0;
    if (h[5] < 0 && h[5] != INT32_MIN) h[5] = -h[5]; /* INT32_MIN: refused as out of range */
    return qc_llama2c_config(path, h, tied, c, e);
}

/* Lays the weights out in file order: the total size the header implies into *size (false
 * on overflow) and, when locs is not NULL, each weight's place relative to base. */
static bool layout(const qc_config *c, const uint8_t *base, qc_ck_loc *locs, size_t *size) {
    size_t off = QC_LLAMA2C_HEADER_BYTES;
    for (int i = 0; i < QC_LLAMA2C_NORDER; i++) {
        qc_weight w = qc_llama2c_order[i];
        int rows, cols;
        qc_weight_shape(c, w, &rows, &cols);
        size_t bytes;
        if (!qc_mul_size((size_t)rows * (size_t)cols, sizeof(float), &bytes)) return false;
        int nl = qc_weight_is_global(w) ? 1 : c->n_layers;
        for (int l = 0; l < nl; l++) {
            if (locs) locs[qc_ck_slot(w, l)] = (qc_ck_loc){ .data = base + off, .dtype = QC_DT_F32 };
            if (!qc_add_size(off, bytes, &off)) return false;
        }
    }
    size_t freq_bytes, cls_bytes; /* freq_cis_real and _imag: (seq_len, hd/2) each */
    if (!qc_mul_size((size_t)c->seq_len * (size_t)(c->head_dim / 2), 2 * sizeof(float), &freq_bytes) ||
        !qc_add_size(off, freq_bytes, &off))
        return false;
    if (locs) locs[QC_W_CLASSIFIER] = locs[QC_W_EMBED];
    if (!c->tied_classifier) {
        if (locs) locs[QC_W_CLASSIFIER] = (qc_ck_loc){ .data = base + off, .dtype = QC_DT_F32 };
        if (!qc_mul_size((size_t)c->vocab_size * (size_t)c->dim, sizeof(float), &cls_bytes) ||
            !qc_add_size(off, cls_bytes, &off))
            return false;
    }
    *size = off;
    return true;
}

qc_status qc_llama2c_checkpoint_open(qc_checkpoint *ck, const char *path, qc_err *e) {
    ck->format = "llama2.c";
    qc_status st = qc_map_open(&ck->bin, path, e);
    if (!st) st = qc_ck_add_file(ck, path, false, 0, e);
    if (st) return st;
    const qc_map *m = &ck->bin;
    if (m->size >= 4 && qc_le32(m->data) == QC_AK42_MAGIC) return qc_llama2c_ak42_open(ck, path, e);
    if (m->size < QC_LLAMA2C_HEADER_BYTES)
        return qc_fail(e, QC_ERR_FORMAT, "%s: truncated: %zu bytes, the llama2.c header alone needs %d",
                       path, m->size, QC_LLAMA2C_HEADER_BYTES);
    if ((st = parse_header(path, m->data, &ck->cfg, e))) {
        if (e) { /* say how the bytes were read: a damaged magic number lands here */
            size_t len = strlen(e->msg);
            snprintf(e->msg + len, sizeof e->msg - len,
                     " (read as a legacy header: the file does not begin with the \"ak42\" magic of llama2.c's later exports)");
        }
        return st;
    }
    size_t want;
    if (!layout(&ck->cfg, NULL, NULL, &want))
        return qc_fail(e, QC_ERR_FORMAT, "%s: the sizes in the header overflow", path);
    if (m->size < want)
        return qc_fail(e, QC_ERR_FORMAT, "%s: truncated: the header implies %zu bytes, the file has %zu",
                       path, want, m->size);
    if (m->size > want)
        return qc_fail(e, QC_ERR_FORMAT,
                       "%s: %zu extra bytes after the weights: the header implies %zu bytes, the file has %zu",
                       path, m->size - want, want, m->size);
    if ((st = qc_ck_alloc_locs(ck, e))) return st;
    layout(&ck->cfg, m->data, ck->locs, &want);
    return QC_OK;
}
