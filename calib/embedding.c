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

/* mean(x²) + eps of one row x (dim): the square of what an RMSNorm divides it by. */
static double mean_square(const float *x, int dim, float eps) {
    double ms = 0;
    for (int j = 0; j < dim; j++) ms += (double)x[j] * x[j];
    return ms / dim + eps;
}

/* The sum over the ntok rows of x (ntok, dim) of ms_e[t] / (mean(x_t²) + eps): how much
 * smaller an error of the embedding row of token t weighs at an RMSNorm reading x than at
 * block 0's attention norm, squared (its mean over the tokens is the reader's gain). */
static double gain_sum(const float *x, const double *ms_e, int ntok, int dim, float eps) {
    double sum = 0;
    for (int t = 0; t < ntok; t++) sum += ms_e[t] / mean_square(x + (size_t)t * dim, dim, eps);
    return sum;
}

/* The readers' gains: sums (2·n_layers + 1: each block's attention norm and FFN norm, then the
 * final norm) over this rank's tokens among the first chunk of windows of the whole set (a
 * prefix of its share; all of the chunk for one process), through the fp32 model m. */
static qc_status gain_sums(const qc_model *m, const qc_windows *w, const qc_calib_opts *o, double *sums, qc_err *e) {
    const qc_config *c = &m->cfg;
    int dim = c->dim, nw = qc_calib_chunk_windows(o, qc_windows_total(w), w->seqlen) - w->first;
    nw = nw < 0 ? 0 : nw > w->n ? w->n : nw;
    int ntok = nw * w->seqlen;
    if (!ntok) return QC_OK;
    size_t most = (size_t)ntok > (size_t)c->hidden_dim ? (size_t)ntok : (size_t)c->hidden_dim;
    float *x = qc_malloc((size_t)ntok, (size_t)dim * 2 * sizeof(float), e, "the token embedding's gains");
    float *tmp = x ? qc_malloc(most, (size_t)dim * sizeof(float), e, "the token embedding's gains") : NULL;
    double *ms_e = tmp ? qc_malloc((size_t)ntok, sizeof(double), e, "the token embedding's gains") : NULL;
    qc_workspace *ws = ms_e ? qc_workspace_new(c, ntok, w->seqlen, e) : NULL;
    qc_status st = ws ? qc_model_embed(m, w->tokens, ntok, x, e) : QC_ERR_NOMEM;
    float *xn = x ? x + (size_t)ntok * dim : NULL;
    for (int t = 0; t < ntok && !st; t++) ms_e[t] = mean_square(x + (size_t)t * dim, dim, c->norm_eps);
    for (int l = 0; l < c->n_layers && !st; l++) {
        qc_block b;
        if ((st = qc_block_load(m->ck, l, &b, e))) break;
        for (int s = 0; s < 2 && !st; s++) { /* the attention's readers, then the MLP's */
            qc_site site = s ? QC_SITE_GATE_UP : QC_SITE_QKV;
            sums[2 * l + s] = gain_sum(x, ms_e, ntok, dim, c->norm_eps);
            qc_block_norm(c, &b, site, x, ntok, xn);
            st = qc_subblock_forward(c, &b, l, s ? QC_SUB_MLP : QC_SUB_ATTENTION, xn, nw, w->seqlen, tmp, ws, e);
            if (!st) qc_residual_add(x, tmp, (size_t)ntok * dim);
        }
        qc_block_free(&b);
    }
    if (!st) sums[2 * c->n_layers] = gain_sum(x, ms_e, ntok, dim, c->norm_eps);
    qc_workspace_free(ws);
    free(ms_e);
    free(tmp);
    free(x);
    return st;
}

/* h (dim, dim; upper triangle, zeroed by the caller) = H above, from the readers' gains. */
static qc_status readers_hessian(const qc_model *m, const double *gains, float *h, qc_err *e) {
    const qc_config *c = &m->cfg;
    int dim = c->dim;
    size_t most = (size_t)c->vocab_size > (size_t)c->hidden_dim ? (size_t)c->vocab_size : (size_t)c->hidden_dim;
    float *tmp = qc_malloc(most, (size_t)dim * sizeof(float), e, "the token embedding's Hessian");
    qc_status st = tmp ? QC_OK : QC_ERR_NOMEM;
    for (int l = 0; l < c->n_layers && !st; l++) {
        qc_block b;
        if ((st = qc_block_load(m->ck, l, &b, e))) break;
        for (int lin = 0; lin < QC_LIN_COUNT; lin++) {
            int rows, cols, s = qc_linear_site(lin) == QC_SITE_GATE_UP;
            qc_weight_shape(c, qc_linear_weight(lin), &rows, &cols);
            if (qc_linear_site(lin) == QC_SITE_QKV || s)
                add_reader(h, s ? b.ffn_norm : b.attn_norm, b.w[lin], rows, dim, (float)gains[2 * l + s], tmp);
        }
        qc_block_free(&b);
    }
    float *cls = NULL;
    if (!st) st = qc_weight_load(m->ck, QC_W_CLASSIFIER, 0, &cls, e);
    if (!st) add_reader(h, m->final_norm, cls, c->vocab_size, dim, (float)gains[2 * c->n_layers], tmp);
    free(cls);
    free(tmp);
    if (st) return st;
    double mean = 0;
    for (int i = 0; i < dim; i++) mean += h[(size_t)i * dim + i];
    mean /= dim;
    for (int i = 0; i < dim; i++)
        if (h[(size_t)i * dim + i] == 0.0f) h[(size_t)i * dim + i] = (float)(DEAD_FLOOR * mean);
    return QC_OK;
}

/* GPTQ against the readers' error (after st, this rank's status so far): the gains summed over
 * every rank's tokens, rank 0 solving w (NULL on the other ranks). */
static qc_status calibrated(const qc_model *m, const qc_windows *win, const qc_calib_opts *o, float *w, qc_status st,
                            qc_qweight *q, qc_err *e) {
    const qc_config *c = &m->cfg;
    size_t ng = 2 * (size_t)c->n_layers + 1;
    double *gains = st ? NULL : qc_calloc(ng, sizeof(double), e, "the token embedding's gains");
    if (!st) st = gains ? gain_sums(m, win, o, gains, e) : QC_ERR_NOMEM;
    st = qc_dist_agree(o->dist, st, e);
    if (!st) st = qc_dist_sum_f64(o->dist, gains, ng, e);
    int nfirst = qc_calib_chunk_windows(o, qc_windows_total(win), win->seqlen);
    for (size_t i = 0; i < ng && !st; i++) gains[i] /= (double)nfirst * win->seqlen;
    float *h = st || qc_dist_rank(o->dist) != 0 ? NULL : qc_calloc((size_t)c->dim * c->dim, sizeof(float), e, "the token embedding's Hessian");
    if (!st && qc_dist_rank(o->dist) == 0) st = h ? readers_hessian(m, gains, h, e) : QC_ERR_NOMEM;
    qc_gptq_info info = { 0 };
    if (!st && h) st = qc_gptq_quantize(w, h, c->vocab_size, c->dim, &o->embed, &o->gptq, q, &info, e);
    if (!st && info.fallback)
        qc_logf(o->log, QC_LOG_WARN, "the token embedding: its Hessian could not be factorized even with damping "
                "%.3g; used round-to-nearest", info.damp);
    free(h);
    free(gains);
    return st;
}

qc_status qc_calib_embedding(const qc_model *m, const qc_windows *win, const qc_calib_opts *o, qc_qweight *q, qc_err *e) {
    const qc_checkpoint *ck = m->ck;
    const qc_config *c = qc_checkpoint_config(ck);
    bool root = qc_dist_rank(o->dist) == 0; /* the only rank that keeps results */
    float *w = root ? qc_malloc((size_t)c->vocab_size * c->dim, sizeof(float), e, "token embedding") : NULL;
    qc_status st = root && !w ? QC_ERR_NOMEM : QC_OK;
    if (!st && root) st = qc_checkpoint_read(ck, QC_W_EMBED, 0, w, e);
    if (!st && root && !o->embed_gptq) st = qc_quant_rtn(w, c->vocab_size, c->dim, &o->embed, q, e);
    if (o->embed_gptq) st = calibrated(m, win, o, w, st, q, e); /* every rank: the gains are summed */
    free(w);
    return st ? qc_fail_prefix(e, st, "the token embedding") : QC_OK;
}
