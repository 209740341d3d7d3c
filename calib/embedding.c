/* embedding.c — the token embedding quantized after calibration (o->embed): by round-to-nearest,
 * or (o->embed_gptq) by GPTQ against the error its rows cause in block 0's q, k and v.
 *
 * The embedding is a lookup table: it has no inputs to gather statistics of. A row e (dim) is
 * what enters the residual stream for its token; the first linears to read it are block 0's q,
 * k and v, after the attention RMSNorm (weight g). To first order the norm passes an error δ of
 * the row on as diag(g)·δ / rms(e) (dropping the part along e itself), so linear c's output
 * moves by W_c·diag(g)·δ / rms(e), and the three outputs' squared error is
 *
 *     Σ_c ‖W_c diag(g) δ‖² / rms(e)²  =  δᵀ H δ / rms(e)²,   H = Σ_c diag(g) W_cᵀ W_c diag(g).
 *
 * 1/rms(e)² scales a whole row's loss, so it does not change which codes are best for that row:
 * every row is solved against the one H (dim × dim), as GPTQ solves a linear's rows against its
 * inputs' Σxᵀx, and a K-quant's scales are searched with diag(H) as importances. H is the
 * weights' alone, the same for any calibration text, and a rescaling pre-step (SmoothQuant, AWQ:
 * g / s and W_c·diag(s)) leaves it unchanged, so it is built from block 0 as the checkpoint holds
 * it. The error that travels on along the residual stream, to later blocks and the classifier,
 * is not in H: adding those readers unweighted (every block's q, k, v, gate and up, and the
 * classifier) gave a larger KL divergence than block 0's alone (docs/kquant-gptq.md).
 *
 * An input channel block 0 does not read (H[i,i] = 0, e.g. g_i = 0) would be a dead input to
 * GPTQ, which zeroes its weights; the residual stream still carries it to later blocks, so it
 * gets a small diagonal instead (DEAD_FLOOR of H's mean diagonal) and is rounded like the rest. */
#include "calib/internal.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

/* H[i,i] for a channel block 0 does not read, relative to mean(diag H). */
#define DEAD_FLOOR 1e-6

/* h (dim, dim; upper triangle) += (w·diag(g))ᵀ (w·diag(g)) for w (rows, dim); tmp (rows, dim). */
static void add_reader(float *h, const float *g, const float *w, int rows, int dim, float *tmp) {
    for (size_t r = 0; r < (size_t)rows; r++)
        for (int j = 0; j < dim; j++) tmp[r * dim + j] = w[r * dim + j] * g[j];
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, dim, rows, 1.0f, tmp, dim, 1.0f, h, dim);
}

/* h (dim, dim; upper triangle, zeroed by the caller) = block 0's H above. */
static qc_status block0_hessian(const qc_checkpoint *ck, float *h, qc_err *e) {
    const qc_config *c = qc_checkpoint_config(ck);
    int dim = c->dim;
    qc_block b;
    qc_status st = qc_block_load(ck, 0, &b, e);
    if (st) return st;
    int most = 0;
    for (int lin = 0; lin < QC_LIN_COUNT; lin++) {
        int rows, cols;
        qc_weight_shape(c, qc_linear_weight(lin), &rows, &cols);
        if (qc_linear_site(lin) == QC_SITE_QKV && rows > most) most = rows;
    }
    float *tmp = qc_malloc((size_t)most * dim, sizeof(float), e, "the token embedding's Hessian");
    for (int lin = 0; lin < QC_LIN_COUNT && tmp; lin++) {
        int rows, cols;
        qc_weight_shape(c, qc_linear_weight(lin), &rows, &cols);
        if (qc_linear_site(lin) == QC_SITE_QKV) add_reader(h, b.attn_norm, b.w[lin], rows, dim, tmp);
    }
    qc_block_free(&b);
    if (!tmp) return QC_ERR_NOMEM;
    free(tmp);
    double mean = 0;
    for (int i = 0; i < dim; i++) mean += h[(size_t)i * dim + i];
    mean /= dim;
    for (int i = 0; i < dim; i++)
        if (h[(size_t)i * dim + i] == 0.0f) h[(size_t)i * dim + i] = (float)(DEAD_FLOOR * mean);
    return QC_OK;
}

qc_status qc_calib_embedding(const qc_checkpoint *ck, const qc_calib_opts *o, qc_qweight *q, qc_err *e) {
    const qc_config *c = qc_checkpoint_config(ck);
    float *w = qc_malloc((size_t)c->vocab_size * c->dim, sizeof(float), e, "token embedding");
    if (!w) return QC_ERR_NOMEM;
    qc_status st = qc_checkpoint_read(ck, QC_W_EMBED, 0, w, e);
    if (!st && !o->embed_gptq) st = qc_quant_rtn(w, c->vocab_size, c->dim, &o->embed, q, e);
    if (!st && o->embed_gptq) {
        float *h = qc_calloc((size_t)c->dim * c->dim, sizeof(float), e, "the token embedding's Hessian");
        qc_gptq_info info = { 0 };
        st = h ? block0_hessian(ck, h, e) : QC_ERR_NOMEM;
        if (!st) st = qc_gptq_quantize(w, h, c->vocab_size, c->dim, &o->embed, &o->gptq, q, &info, e);
        if (!st && info.fallback)
            qc_logf(o->log, QC_LOG_WARN, "the token embedding: its Hessian could not be factorized even with damping "
                    "%.3g; used round-to-nearest", info.damp);
        free(h);
    }
    free(w);
    return st ? qc_fail_prefix(e, st, "the token embedding") : QC_OK;
}
