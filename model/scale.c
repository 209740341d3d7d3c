/* scale.c — function-preserving rescaling of a block (SmoothQuant's smoothing, AWQ's
 * scales): a site's input divided by s, its linears' input columns multiplied by s, and 1/s
 * folded into the RMSNorm weight or the linear rows (and bias) that produce the input. One
 * routine per weight, used both on a loaded block and on a weight read back from the
 * checkpoint by a writer, so the two agree bit for bit. */
#include "model/model.h"

static void scale_cols(float *w, int rows, int cols, const float *s) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) w[(size_t)r * cols + c] *= s[c];
}

static void unscale_rows(float *w, int rows, int cols, const float *s) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) w[(size_t)r * cols + c] /= s[r];
}

void qc_weight_scale(const qc_config *c, qc_weight w, const float *const s[QC_SITE_COUNT], float *buf) {
    int rows, cols;
    qc_weight_shape(c, w, &rows, &cols);
    const float *in = NULL, *out = NULL; /* the scales of w's input columns, of its output rows */
    switch (w) {
    case QC_W_ATTN_NORM: out = s[QC_SITE_QKV]; break;
    case QC_W_FFN_NORM: out = s[QC_SITE_GATE_UP]; break;
    case QC_W_Q: case QC_W_K: in = s[QC_SITE_QKV]; break;
    case QC_W_V: in = s[QC_SITE_QKV], out = s[QC_SITE_O]; break;
    case QC_W_O: in = s[QC_SITE_O]; break;
    case QC_W_GATE: in = s[QC_SITE_GATE_UP]; break;
    case QC_W_UP: in = s[QC_SITE_GATE_UP], out = s[QC_SITE_DOWN]; break;
    case QC_W_DOWN: in = s[QC_SITE_DOWN]; break;
    case QC_W_V_BIAS: out = s[QC_SITE_O]; break; /* v's output rows, bias included */
    default: return;
    }
    QC_ASSERT(!((w == QC_W_V || w == QC_W_V_BIAS) && out) || c->n_kv_heads == c->n_heads);
    if (in) scale_cols(buf, rows, cols, in);
    if (out) unscale_rows(buf, rows, cols, out);
}

void qc_block_scale(const qc_config *c, qc_block *b, const float *const s[QC_SITE_COUNT]) {
    qc_weight_scale(c, QC_W_ATTN_NORM, s, b->attn_norm);
    qc_weight_scale(c, QC_W_FFN_NORM, s, b->ffn_norm);
    for (int l = 0; l < QC_LIN_COUNT; l++) {
        qc_weight_scale(c, qc_linear_weight(l), s, b->w[l]);
        if (b->bias[l]) qc_weight_scale(c, qc_linear_bias(l), s, b->bias[l]);
    }
}
