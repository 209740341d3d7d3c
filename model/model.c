/* model.c — a model as the rest of qcalib sees it: a checkpoint, the weights brought into
 * memory so far, and the embedding → blocks → head pipeline over windows of tokens.
 * Blocks are loaded on first use; the embedding stays in the mapped file and is read row
 * by row; the classifier is loaded on the first call of the head. Opening reads every weight
 * once (qc_checkpoint_check_finite): a model holding a NaN or an Inf is refused at once. */
#include "model/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

qc_status qc_model_open(qc_model **out, const char *path, qc_err *e) {
    *out = NULL;
    qc_model *m = qc_calloc(1, sizeof *m, e, "model");
    if (!m) return QC_ERR_NOMEM;
    qc_status st = qc_checkpoint_open(&m->ck, path, e);
    if (st) { free(m); return st; }
    m->cfg = *qc_checkpoint_config(m->ck);
    m->blocks = qc_calloc((size_t)m->cfg.n_layers, sizeof *m->blocks, e, "blocks");
    m->block_hash = qc_calloc((size_t)m->cfg.n_layers, sizeof *m->block_hash, e, "blocks");
    m->hashed = qc_calloc((size_t)m->cfg.n_layers, sizeof *m->hashed, e, "blocks");
    if (!m->blocks || !m->block_hash || !m->hashed) { qc_model_free(m); return QC_ERR_NOMEM; }
    st = qc_checkpoint_check_finite(m->ck, e); /* a NaN or Inf anywhere: refused now, not when reached */
    if (!st) st = qc_weight_load(m->ck, QC_W_FINAL_NORM, 0, &m->final_norm, e);
    if (st) { qc_model_free(m); return st; }
    *out = m;
    return QC_OK;
}

void qc_model_free(qc_model *m) {
    if (!m) return;
    if (m->blocks)
        for (int i = 0; i < m->cfg.n_layers; i++) qc_block_free(&m->blocks[i]);
    free(m->blocks);
    free(m->block_hash);
    free(m->hashed);
    free(m->final_norm);
    free(m->classifier);
    qc_checkpoint_close(m->ck);
    free(m);
}

qc_status qc_model_pad_ffn(qc_model *m, int multiple, qc_err *e) {
    for (int l = 0; l < m->cfg.n_layers; l++) QC_ASSERT(!m->blocks[l].w[0]);
    qc_status st = qc_checkpoint_pad_ffn(m->ck, multiple, e);
    if (!st) m->cfg = *qc_checkpoint_config(m->ck);
    return st;
}

void qc_model_set_linears(qc_model *m, const qc_weight_source *src) {
    for (int l = 0; l < m->cfg.n_layers; l++) QC_ASSERT(!m->blocks[l].w[0]);
    m->linears = src;
}

qc_status qc_model_block(qc_model *m, int layer, const qc_block **b, qc_err *e) {
    QC_ASSERT(layer >= 0 && layer < m->cfg.n_layers);
    qc_block *blk = &m->blocks[layer];
    if (!blk->w[0]) {
        qc_status st = qc_model_load_block(m, layer, blk, e);
        for (int l = 0; !st && m->linears && l < QC_LIN_COUNT; l++)
            st = m->linears->read(m->linears->ctx, qc_linear_weight(l), layer, blk->w[l], e);
        if (st) {
            qc_block_free(blk);
            return st;
        }
    }
    *b = blk;
    return QC_OK;
}

void qc_model_release_block(qc_model *m, int layer) { qc_block_free(&m->blocks[layer]); }

qc_status qc_model_load_block(qc_model *m, int layer, qc_block *b, qc_err *e) {
    QC_ASSERT(layer >= 0 && layer < m->cfg.n_layers);
    qc_status st = qc_block_load(m->ck, layer, b, e);
    if (!st) m->block_hash[layer] = b->hash, m->hashed[layer] = true;
    return st;
}

qc_status qc_model_block_hash(qc_model *m, int layer, uint64_t *h, qc_err *e) {
    QC_ASSERT(layer >= 0 && layer < m->cfg.n_layers);
    if (!m->hashed[layer]) {
        qc_block b;
        qc_status st = qc_block_load(m->ck, layer, &b, e);
        if (st) return st;
        m->block_hash[layer] = b.hash, m->hashed[layer] = true;
        qc_block_free(&b);
    }
    *h = m->block_hash[layer];
    return QC_OK;
}

qc_status qc_model_embed_hash(const qc_model *m, uint64_t *h, qc_err *e) {
    enum { CHUNK = 256 };
    float *rows = qc_malloc((size_t)CHUNK * m->cfg.dim, sizeof(float), e, "embedding");
    if (!rows) return QC_ERR_NOMEM;
    qc_status st = QC_OK;
    *h = QC_HASH64_SEED;
    for (int r = 0; r < m->cfg.vocab_size && !st; r += CHUNK) {
        int n = m->cfg.vocab_size - r < CHUNK ? m->cfg.vocab_size - r : CHUNK;
        st = qc_checkpoint_read_rows(m->ck, QC_W_EMBED, r, n, rows, e);
        if (!st) *h = qc_hash64(*h, rows, (size_t)n * m->cfg.dim * sizeof(float));
    }
    free(rows);
    return st;
}

qc_status qc_model_embed(const qc_model *m, const int32_t *tokens, int ntok, float *x, qc_err *e) {
    for (int t = 0; t < ntok; t++)
        if (tokens[t] < 0 || tokens[t] >= m->cfg.vocab_size)
            return qc_fail(e, QC_ERR_ARG, "token id %d at position %d is outside the vocabulary (0..%d)",
                           tokens[t], t, m->cfg.vocab_size - 1);
    return qc_checkpoint_gather_rows(m->ck, QC_W_EMBED, tokens, ntok, x, e);
}

void qc_model_final_norm(const qc_model *m, const float *x, int ntok, float *xn) {
    qc_rmsnorm(x, m->final_norm, ntok, m->cfg.dim, m->cfg.norm_eps, xn);
}

qc_status qc_model_head(qc_model *m, float *x, int ntok, float *logits, qc_err *e) {
    const qc_config *c = &m->cfg;
    if (!m->classifier) {
        qc_status st = qc_weight_load(m->ck, QC_W_CLASSIFIER, 0, &m->classifier, e);
        if (st) return st;
    }
    qc_model_final_norm(m, x, ntok, x);
    return qc_matmul_xwt(x, ntok, m->classifier, c->vocab_size, c->dim, logits, NULL, e);
}

/* Both in vectors, exp too (libmvec's, base.h), the sums in double over the lanes: a vocabulary's
 * worth of scalar exp calls cost as much as a small model's whole block. */
QC_VECTOR_CLONES
double qc_log_softmax(const float *logits, int n, float *lp) {
    float max = logits[0];
#pragma omp simd reduction(max : max)
    for (int j = 1; j < n; j++) max = logits[j] > max ? logits[j] : max;
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < n; j++) sum += exp((double)logits[j] - max);
    double lse = max + log(sum);
    if (lp)
        for (int j = 0; j < n; j++) lp[j] = (float)((double)logits[j] - lse);
    return lse;
}

QC_VECTOR_CLONES
double qc_kl_logprobs(const float *lp, const float *lq, int n) {
    double kl = 0.0;
#pragma omp simd reduction(+ : kl)
    for (int j = 0; j < n; j++) {
        double p = exp((double)lp[j]), t = p * ((double)lp[j] - (double)lq[j]);
        kl += p > 0 ? t : 0.0; /* p = 0 (lp = −inf) adds nothing, not 0·inf */
    }
    return kl > 0 ? kl : 0; /* rounding can make a zero divergence negative */
}

qc_status qc_model_forward(qc_model *m, const int32_t *tokens, int nwin, int seqlen, float *logits,
                           qc_workspace *ws, qc_err *e) {
    int ntok = nwin * seqlen;
    float *x = qc_malloc((size_t)ntok, (size_t)m->cfg.dim * sizeof(float), e, "residual stream");
    if (!x) return QC_ERR_NOMEM;
    qc_status st = qc_model_embed(m, tokens, ntok, x, e);
    for (int l = 0; l < m->cfg.n_layers && !st; l++) {
        const qc_block *b;
        st = qc_model_block(m, l, &b, e);
        if (!st) st = qc_block_forward(&m->cfg, b, l, x, nwin, seqlen, m->hooks, ws, e);
    }
    if (!st) st = qc_model_head(m, x, ntok, logits, e);
    free(x);
    return st;
}
