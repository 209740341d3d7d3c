/* block.c — one transformer block's weights: which linears a block has, where their
 * inputs come from, which may have a bias, and loading them from a checkpoint (whose reads
 * reject NaN/Inf). */
#include "model/model.h"

#include <stdlib.h>
#include <string.h>

static const qc_weight linear_weight[QC_LIN_COUNT] = {
    QC_W_Q, QC_W_K, QC_W_V, QC_W_O, QC_W_GATE, QC_W_UP, QC_W_DOWN,
};
static const qc_weight linear_bias[QC_LIN_COUNT] = {
    QC_W_Q_BIAS, QC_W_K_BIAS, QC_W_V_BIAS, QC_W_O_BIAS, QC_W_COUNT, QC_W_COUNT, QC_W_COUNT,
};
static const qc_site linear_site[QC_LIN_COUNT] = {
    QC_SITE_QKV, QC_SITE_QKV, QC_SITE_QKV, QC_SITE_O, QC_SITE_GATE_UP, QC_SITE_GATE_UP, QC_SITE_DOWN,
};

qc_weight qc_linear_weight(qc_linear l) { return linear_weight[l]; }
qc_weight qc_linear_bias(qc_linear l) { return linear_bias[l]; }
qc_site qc_linear_site(qc_linear l) { return linear_site[l]; }

int qc_site_width(const qc_config *c, qc_site s) {
    return s == QC_SITE_O ? c->n_heads * c->head_dim : s == QC_SITE_DOWN ? c->hidden_dim : c->dim;
}

const char *qc_site_name(qc_site s) {
    static const char *names[QC_SITE_COUNT] = { "qkv", "o", "gate_up", "down" };
    return names[s];
}

qc_status qc_weight_load(const qc_checkpoint *ck, qc_weight w, int layer, float **out, qc_err *e) {
    int rows, cols;
    qc_weight_shape(qc_checkpoint_config(ck), w, &rows, &cols);
    float *buf = qc_malloc((size_t)rows * (size_t)cols, sizeof(float), e, qc_weight_short_name(w));
    if (!buf) return QC_ERR_NOMEM;
    qc_status st = qc_checkpoint_read(ck, w, layer, buf, e); /* refuses NaN/Inf, naming the tensor and position */
    if (st) { free(buf); return st; }
    *out = buf;
    return QC_OK;
}

/* qc_weight_load, and the values read into the hash *h (while they are in cache). */
static qc_status load_hashed(const qc_checkpoint *ck, qc_weight w, int layer, float **out, uint64_t *h, qc_err *e) {
    qc_status st = qc_weight_load(ck, w, layer, out, e);
    int rows, cols;
    qc_weight_shape(qc_checkpoint_config(ck), w, &rows, &cols);
    if (!st) *h = qc_hash64(*h, *out, (size_t)rows * (size_t)cols * sizeof(float));
    return st;
}

qc_status qc_block_load(const qc_checkpoint *ck, int layer, qc_block *b, qc_err *e) {
    memset(b, 0, sizeof *b);
    const qc_config *c = qc_checkpoint_config(ck);
    b->hash = QC_HASH64_SEED;
    qc_status st = load_hashed(ck, QC_W_ATTN_NORM, layer, &b->attn_norm, &b->hash, e);
    if (!st) st = load_hashed(ck, QC_W_FFN_NORM, layer, &b->ffn_norm, &b->hash, e);
    for (int l = 0; l < QC_LIN_COUNT && !st; l++) {
        st = load_hashed(ck, linear_weight[l], layer, &b->w[l], &b->hash, e);
        if (!st && linear_bias[l] != QC_W_COUNT && qc_weight_present(c, linear_bias[l]))
            st = load_hashed(ck, linear_bias[l], layer, &b->bias[l], &b->hash, e);
    }
    if (st) qc_block_free(b);
    return st;
}

void qc_block_free(qc_block *b) {
    if (!b) return;
    free(b->attn_norm);
    free(b->ffn_norm);
    for (int l = 0; l < QC_LIN_COUNT; l++) free(b->w[l]), free(b->bias[l]);
    memset(b, 0, sizeof *b);
}
