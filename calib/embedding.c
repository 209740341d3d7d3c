/* embedding.c — the token embedding quantized after calibration (o->embed): by round-to-nearest,
 * or (o->embed_gptq) by GPTQ against the error its rows cause in the linears that read them.
 *
 * The embedding is a lookup table: it has no inputs to gather statistics of. A row e (dim) is
 * what enters the residual stream for its token, and an error δ of it stays in the stream (to
 * first order, the blocks' own response left out), read by every RMSNorm after it: each block's
 * attention norm (q, k, v) and FFN norm (gate, up), and the final norm (the classifier). A norm
 * with weight g reading x + δ passes δ on as diag(g)·δ / rms(x) (dropping the part along x), so
 * reader c's output moves by W_c·diag(g)·δ / rms(x), and the readers' squared error is
 *
 *     δᵀ H δ / rms(e)²,   H = Σ_n γ_n Σ_{c reads n} diag(g_n) W_cᵀ W_c diag(g_n),
 *     γ_n = mean over tokens of rms(e)² / rms(x_n)²,
 *
 * where x_n is the stream norm n reads; γ = 1 for block 0's attention norm, which reads e
 * itself, and falls as the stream grows. The common 1/rms(e)² scales a whole row's loss and does
 * not change which codes are best for it, so every row is solved against the one H (dim × dim),
 * as GPTQ solves a linear's rows against its inputs' Σxᵀx (a K-quant's scales searched with
 * diag(H) as importances). The gains γ_n are measured on the first chunk of calibration windows
 * through the fp32 model (one forward of a chunk, each block read once more); the W_c and g_n
 * are the checkpoint's (a rescaling pre-step, SmoothQuant's or AWQ's g / s and W_c·diag(s),
 * leaves each product unchanged). Measured end to end (docs/kquant-gptq.md): on
 * tinystories-656K (2 blocks) this lowers the KL divergence well below round-to-nearest's
 * embedding; on stories260K (5 blocks) it is slightly above it, and block 0's q, k, v alone
 * (γ = 1, the rest 0) further above.
 *
 * An input channel no reader reads (H[i,i] = 0) would be a dead input to GPTQ, which zeroes its
 * weights; it gets a small diagonal instead (DEAD_FLOOR of H's mean diagonal) and is rounded
 * like the rest. */
#include "calib/internal.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

/* H[i,i] for a channel no reader reads, relative to mean(diag H). */
#define DEAD_FLOOR 1e-6

/* h (dim, dim; upper triangle) += scale · (w·diag(g))ᵀ (w·diag(g)) for w (rows, dim); tmp (rows, dim). */
static void add_reader(float *h, const float *g, const float *w, int rows, int dim, float scale, float *tmp) {
    for (size_t r = 0; r < (size_t)rows; r++)
        for (int j = 0; j < dim; j++) tmp[r * dim + j] = w[r * dim + j] * g[j];
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, dim, rows, scale, tmp, dim, 1.0f, h, dim);
}

/* The mean over the ntok rows of x (ntok, dim) of ms_e[t] / (mean(x_t²) + eps): how much
 * smaller an error of the embedding row of token t weighs at an RMSNorm reading x than at
 * block 0's attention norm, squared. */
static double gain(const float *x, const double *ms_e, int ntok, int dim, float eps) {
    double sum = 0;
    for (int t = 0; t < ntok; t++) {
        double ms = 0;
        for (int j = 0; j < dim; j++) ms += (double)x[(size_t)t * dim + j] * x[(size_t)t * dim + j];
        sum += ms_e[t] / (ms / dim + eps);
    }
    return sum / ntok;
}

/* h (dim, dim; upper triangle, zeroed by the caller) = H above, its readers' gains measured on
 * the first chunk of windows of w through the fp32 model m. */
static qc_status readers_hessian(const qc_model *m, const qc_windows *w, const qc_calib_opts *o, float *h, qc_err *e) {
    const qc_config *c = &m->cfg;
    int dim = c->dim, nw = qc_calib_chunk_windows(o, w->n, w->seqlen), ntok = nw * w->seqlen;
    size_t most = (size_t)c->vocab_size > (size_t)c->hidden_dim ? (size_t)c->vocab_size : (size_t)c->hidden_dim;
    if ((size_t)ntok > most) most = (size_t)ntok; /* tmp: a reader's scaled rows, or a sub-block's outputs */
    float *x = qc_malloc((size_t)ntok, (size_t)dim * 2 * sizeof(float), e, "the token embedding's Hessian");
    float *tmp = x ? qc_malloc(most, (size_t)dim * sizeof(float), e, "the token embedding's Hessian") : NULL;
    double *ms_e = tmp ? qc_malloc((size_t)ntok, sizeof(double), e, "the token embedding's Hessian") : NULL;
    qc_workspace *ws = ms_e ? qc_workspace_new(c, ntok, w->seqlen, e) : NULL;
    qc_status st = ws ? qc_model_embed(m, w->tokens, ntok, x, e) : QC_ERR_NOMEM;
    float *xn = x ? x + (size_t)ntok * dim : NULL;
    for (int t = 0; t < ntok && !st; t++) {
        double ms = 0;
        for (int j = 0; j < dim; j++) ms += (double)x[(size_t)t * dim + j] * x[(size_t)t * dim + j];
        ms_e[t] = ms / dim + c->norm_eps;
    }
    for (int l = 0; l < c->n_layers && !st; l++) {
        qc_block b;
        if ((st = qc_block_load(m->ck, l, &b, e))) break;
        for (int s = 0; s < 2 && !st; s++) { /* the attention's readers, then the MLP's */
            qc_site site = s ? QC_SITE_GATE_UP : QC_SITE_QKV;
            float g = (float)gain(x, ms_e, ntok, dim, c->norm_eps);
            for (int lin = 0; lin < QC_LIN_COUNT; lin++) {
                int rows, cols;
                qc_weight_shape(c, qc_linear_weight(lin), &rows, &cols);
                if (qc_linear_site(lin) == site) add_reader(h, s ? b.ffn_norm : b.attn_norm, b.w[lin], rows, dim, g, tmp);
            }
            qc_block_norm(c, &b, site, x, ntok, xn);
            st = qc_subblock_forward(c, &b, l, s ? QC_SUB_MLP : QC_SUB_ATTENTION, xn, nw, w->seqlen, tmp, ws, e);
            if (!st) qc_residual_add(x, tmp, (size_t)ntok * dim);
        }
        qc_block_free(&b);
    }
    float *cls = NULL;
    if (!st) st = qc_weight_load(m->ck, QC_W_CLASSIFIER, 0, &cls, e);
    if (!st) add_reader(h, m->final_norm, cls, c->vocab_size, dim, (float)gain(x, ms_e, ntok, dim, c->norm_eps), tmp);
    free(cls);
    qc_workspace_free(ws);
    free(ms_e);
    free(tmp);
    free(x);
    if (st) return st;
    double mean = 0;
    for (int i = 0; i < dim; i++) mean += h[(size_t)i * dim + i];
    mean /= dim;
    for (int i = 0; i < dim; i++)
        if (h[(size_t)i * dim + i] == 0.0f) h[(size_t)i * dim + i] = (float)(DEAD_FLOOR * mean);
    return QC_OK;
}

qc_status qc_calib_embedding(const qc_model *m, const qc_windows *win, const qc_calib_opts *o, qc_qweight *q, qc_err *e) {
    const qc_checkpoint *ck = m->ck;
    const qc_config *c = qc_checkpoint_config(ck);
    float *w = qc_malloc((size_t)c->vocab_size * c->dim, sizeof(float), e, "token embedding");
    if (!w) return QC_ERR_NOMEM;
    qc_status st = qc_checkpoint_read(ck, QC_W_EMBED, 0, w, e);
    if (!st && !o->embed_gptq) st = qc_quant_rtn(w, c->vocab_size, c->dim, &o->embed, q, e);
    if (!st && o->embed_gptq) {
        float *h = qc_calloc((size_t)c->dim * c->dim, sizeof(float), e, "the token embedding's Hessian");
        qc_gptq_info info = { 0 };
        st = h ? readers_hessian(m, win, o, h, e) : QC_ERR_NOMEM;
        if (!st) st = qc_gptq_quantize(w, h, c->vocab_size, c->dim, &o->embed, &o->gptq, q, &info, e);
        if (!st && info.fallback)
            qc_logf(o->log, QC_LOG_WARN, "the token embedding: its Hessian could not be factorized even with damping "
                    "%.3g; used round-to-nearest", info.damp);
        free(h);
    }
    free(w);
    return st ? qc_fail_prefix(e, st, "the token embedding") : QC_OK;
}
