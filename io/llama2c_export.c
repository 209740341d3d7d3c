/* llama2c_export.c — writing a llama2.c legacy checkpoint (layout in llama2c_checkpoint.c) from any
 * weight source, through an atomic output file.
 *
 * What llama2.c's run.c cannot represent is refused rather than written wrongly: it
 * derives head_dim as dim / n_heads and hard-codes rope_theta 10000 and norm_eps 1e-5, so
 * a model with other values is an error. vocab_size is written negative when the
 * classifier is stored separately. freq_cis_real/imag are written as llama2.c's export.py
 * computes them (run.c ignores them): freq_k = 1 / theta^(2k/hd) and angle = t * freq_k in
 * fp32, then cos and sin, here correctly rounded by the C library; torch's vectorised
 * cos/sin differ from that in the last bit for about 5% of stories260K's values, so those
 * two arrays are not byte-identical to a file written by export.py. */
#include "io/internal.h"
#include "io/llama2c.h"

#include <math.h>
#include <stdlib.h>

static qc_status write_f32(qc_outfile *o, const float *x, size_t n, uint8_t *bytes, qc_err *e) {
    qc_convert_from_f32(QC_DT_F32, x, n, bytes);
    return qc_out_write(o, bytes, n * sizeof(float), e);
}

/* freq_cis_real then freq_cis_imag, (seq_len, hd/2) each, into buf (seq_len*hd floats). */
static void freq_cis(const qc_config *c, float *buf) {
    int half = c->head_dim / 2;
    float *re = buf, *im = buf + (size_t)c->seq_len * half;
    for (int k = 0; k < half; k++) {
        float freq = 1.0f / powf(c->rope_theta, (float)(2 * k) / (float)c->head_dim);
        for (int t = 0; t < c->seq_len; t++) {
            float a = (float)t * freq;
            re[(size_t)t * half + k] = cosf(a);
            im[(size_t)t * half + k] = sinf(a);
        }
    }
}

qc_status qc_llama2c_export(const qc_weight_source *src, const char *path, const qc_log *log,
                            qc_err *e) {
    const qc_config *c = src->cfg;
    qc_status st = qc_llama2c_check_config(c, path, "run.c", e);
    if (st) return st;
    size_t most = (size_t)c->seq_len * (size_t)c->head_dim; /* the freq_cis pair */
    for (int w = 0; w < QC_W_COUNT; w++) {
        int rows, cols;
        qc_weight_shape(c, (qc_weight)w, &rows, &cols);
        if ((size_t)rows * (size_t)cols > most) most = (size_t)rows * (size_t)cols;
    }
    float *buf = qc_malloc(most, sizeof(float), e, "export buffer");
    uint8_t *bytes = buf ? qc_malloc(most, sizeof(float), e, "export buffer") : NULL;
    qc_outfile o = { 0 };
    if (!bytes) st = QC_ERR_NOMEM;
    if (!st) st = qc_out_open(&o, path, e);
    if (!st) {
        int32_t h[7] = { c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                         c->tied_classifier ? c->vocab_size : -c->vocab_size, c->seq_len };
        uint8_t hb[QC_LLAMA2C_HEADER_BYTES];
        for (int i = 0; i < 7; i++)
            for (int k = 0; k < 4; k++) hb[4 * i + k] = (uint8_t)((uint32_t)h[i] >> 8 * k);
        st = qc_out_write(&o, hb, sizeof hb, e);
    }
    int total = 0, done = 0; /* progress, in weights */
    for (int i = 0; i < QC_LLAMA2C_NORDER; i++) total += qc_weight_is_global(qc_llama2c_order[i]) ? 1 : c->n_layers;
    for (int i = 0; i < QC_LLAMA2C_NORDER && !st; i++) {
        qc_weight w = qc_llama2c_order[i];
        int rows, cols, nl = qc_weight_is_global(w) ? 1 : c->n_layers;
        qc_weight_shape(c, w, &rows, &cols);
        for (int l = 0; l < nl && !st; l++) {
            if ((st = src->read(src->ctx, w, l, buf, e))) {
                st = qc_fail_prefix(e, st, "%s: reading %s of layer %d", path, qc_weight_short_name(w), l);
                break;
            }
            st = write_f32(&o, buf, (size_t)rows * (size_t)cols, bytes, e);
            qc_progress(log, "export", ++done, total, qc_weight_short_name(w));
        }
    }
    if (!st) {
        freq_cis(c, buf);
        st = write_f32(&o, buf, (size_t)c->seq_len * (size_t)c->head_dim, bytes, e);
    }
    if (!st && !c->tied_classifier) {
        if ((st = src->read(src->ctx, QC_W_CLASSIFIER, 0, buf, e)))
            st = qc_fail_prefix(e, st, "%s: reading the classifier", path);
        else
            st = write_f32(&o, buf, (size_t)c->vocab_size * (size_t)c->dim, bytes, e);
    }
    if (!st) st = qc_out_commit(&o, e);
    else qc_out_abort(&o);
    if (!st) qc_logf(log, QC_LOG_DEBUG, "wrote %s (llama2.c legacy fp32)", path);
    free(buf);
    free(bytes);
    return st;
}
