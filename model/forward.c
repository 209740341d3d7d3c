/* forward.c — one Llama block in fp32 over a chunk of tokens, the operations llama2.c's
 * run.c performs per token, here over all tokens at once: every linear is one oneDNN matmul
 * (base/'s qc_matmul, in the run's compute type), the attention products per head are
 * oneDNN fp32 matmuls (cblas_sgemm while generating), and the element-wise steps (RMSNorm, RoPE, softmax, SwiGLU) are OpenMP
 * loops over rows. The element-wise steps are run.c's float expressions, with glibc's vector
 * expf (base.h; it may differ from run.c's scalar one in the last bits), and the pass
 * reproduces its greedy decoding token for token (tests/e2e/cli.sh). */
#include "model/internal.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

/* Below this many element operations a loop runs on one thread: waking the others costs more. */
#define PAR_MIN_WORK (1 << 15)

qc_status qc_matmul_xwt(const float *x, int ntok, const float *w, int rows, int cols, float *y, qc_workspace *ws,
                        qc_err *e) {
    return qc_matmul_kept(qc_get_compute(), false, true, ntok, rows, cols, 1.0f, x, cols, w, cols, 0.0f, y, rows,
                          ws ? &ws->conv : NULL, e);
}

void qc_rmsnorm(const float *x, const float *weight, int ntok, int dim, float eps, float *out) {
#pragma omp parallel for schedule(static) if ((int64_t)ntok * dim > PAR_MIN_WORK)
    for (int t = 0; t < ntok; t++) {
        const float *xr = x + (size_t)t * dim;
        float *o = out + (size_t)t * dim;
        float ss = 0.0f;
        for (int j = 0; j < dim; j++) ss += xr[j] * xr[j];
        ss /= (float)dim;
        ss += eps;
        ss = 1.0f / sqrtf(ss);
        for (int j = 0; j < dim; j++) o[j] = weight[j] * (ss * xr[j]);
    }
}

/* Rotates interleaved pairs of every head of v (ntok, nheads*head_dim); token t sits at
 * position pos0 + t % seqlen. */
static void rope(float *v, int ntok, int nheads, int head_dim, int pos0, int seqlen,
                 const float *cos_t, const float *sin_t) {
    int half = head_dim / 2;
#pragma omp parallel for schedule(static) if ((int64_t)ntok * nheads * head_dim > PAR_MIN_WORK)
    for (int t = 0; t < ntok; t++) {
        int pos = pos0 + t % seqlen;
        const float *fc = cos_t + (size_t)pos * half, *fs = sin_t + (size_t)pos * half;
        float *row = v + (size_t)t * nheads * head_dim;
        for (int h = 0; h < nheads; h++) {
            float *p = row + (size_t)h * head_dim;
            for (int i = 0; i < half; i++) {
                float v0 = p[2 * i], v1 = p[2 * i + 1];
                p[2 * i] = v0 * fc[i] - v1 * fs[i];
                p[2 * i + 1] = v0 * fs[i] + v1 * fc[i];
            }
        }
    }
}

/* One row of attention weights: the first len scores divided by scale and softmax'ed (as
 * run.c does per position), the masked rest zeroed. Separate loops so each vectorizes, expf
 * too (libmvec's, base.h: with glibc's scalar expf, and the max kept in memory across its
 * calls, this row took half of a small model's forward: stories260K, 8-wide heads, one exp
 * per score); the sum stays in run.c's order. */
QC_VECTOR_CLONES
static void softmax_causal(float *s, int len, int n, float scale) {
    for (int j = 0; j < len; j++) s[j] /= scale;
    float max = s[0];
#pragma omp simd reduction(max : max)
    for (int j = 1; j < len; j++) max = s[j] > max ? s[j] : max;
#pragma omp simd
    for (int j = 0; j < len; j++) s[j] = expf(s[j] - max);
    float sum = 0.0f;
    for (int j = 0; j < len; j++) sum += s[j];
    for (int j = 0; j < len; j++) s[j] /= sum;
    memset(s + len, 0, (size_t)(n - len) * sizeof(float));
}

/* scores (nq, nk) = q · kᵀ or out = scores · v for one head: through oneDNN (qc_matmul, fp32
 * operands whatever the run's compute type) over whole windows, whose shapes repeat, and
 * through OpenBLAS while generating, where the keys grow by one each token and oneDNN would
 * make a primitive for every length. */
static qc_status head_product(bool cached, bool b_t, int m, int n, int k, const float *a, int lda, const float *b,
                              int ldb, float *c, int ldc, qc_err *e) {
    if (!cached) return qc_matmul(QC_COMPUTE_F32, false, b_t, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc, e);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, b_t ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c,
                ldc);
    return QC_OK;
}

/* Causal attention of nq queries at positions pos0..pos0+nq-1 over keys/values at
 * positions 0..pos0+nq-1 (cached: the keys and values of earlier calls included). q, out:
 * (nq, n_heads*hd); k, v: (pos0+nq, n_kv_heads*hd). Each query head h reads key/value head
 * h / (n_heads / n_kv_heads). Heads run in parallel, each thread with its own block of
 * scores; the queries go in blocks of QUERY_BLOCK (internal.h), block [i0, i1) against keys
 * [0, pos0+i1) (at 2048 tokens, 56% of the score square is computed instead of all of it).
 * The first error of any head is returned. */
static qc_status attend(const qc_config *c, const float *q, const float *k, const float *v, int nq, int pos0,
                        bool cached, float *out, float *scores, qc_err *e) {
    int hd = c->head_dim, nk = pos0 + nq, group = c->n_heads / c->n_kv_heads;
    int qdim = c->n_heads * hd, kvdim = c->n_kv_heads * hd;
    float scale = sqrtf((float)hd);
    qc_status st = QC_OK;
#pragma omp parallel for schedule(dynamic) if ((int64_t)nq * nk * c->n_heads > PAR_MIN_WORK)
    for (int h = 0; h < c->n_heads; h++) {
        int kvh = h / group;
        float *sc = scores + (size_t)omp_get_thread_num() * (nq < QUERY_BLOCK ? nq : QUERY_BLOCK) * nk;
        qc_err he = { "" };
        qc_status s = QC_OK;
        for (int i0 = 0; i0 < nq && !s; i0 += QUERY_BLOCK) {
            int m = nq - i0 < QUERY_BLOCK ? nq - i0 : QUERY_BLOCK, kl = pos0 + i0 + m;
            s = head_product(cached, true, m, kl, hd, q + (size_t)i0 * qdim + (size_t)h * hd, qdim,
                             k + (size_t)kvh * hd, kvdim, sc, kl, &he);
            for (int i = 0; i < m && !s; i++) softmax_causal(sc + (size_t)i * kl, pos0 + i0 + i + 1, kl, scale);
            if (!s)
                s = head_product(cached, false, m, hd, kl, sc, kl, v + (size_t)kvh * hd, kvdim,
                                 out + (size_t)i0 * qdim + (size_t)h * hd, qdim, &he);
        }
        if (s) {
#pragma omp critical(attend_error)
            if (!st) st = s, *e = he;
        }
    }
    return st;
}

/* y (ntok, rows) = x (ntok, cols) · wᵀ + bias (NULL: no bias), as an nn.Linear computes it. */
static qc_status linear(const float *x, int ntok, const float *w, const float *bias, int rows, int cols, float *y,
                        qc_workspace *ws, qc_err *e) {
    qc_status st = qc_matmul_xwt(x, ntok, w, rows, cols, y, ws, e);
    if (st || !bias) return st;
#pragma omp parallel for schedule(static) if ((int64_t)ntok * rows > PAR_MIN_WORK)
    for (int t = 0; t < ntok; t++)
        for (int r = 0; r < rows; r++) y[(size_t)t * rows + r] += bias[r];
    return QC_OK;
}

void qc_residual_add(float *x, const float *y, size_t n) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

/* h1 = silu(h1) * h3 over n values, in vectors (expf: libmvec's, base.h) */
QC_VECTOR_CLONES
static void swiglu_run(float *h1, const float *h3, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float g = h1[i];
        g *= 1.0f / (1.0f + expf(-g));
        h1[i] = g * h3[i];
    }
}

#define SWIGLU_RUN 4096 /* values per unit of work of the threads */

static void swiglu(float *h1, const float *h3, size_t n) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN_WORK)
    for (size_t i = 0; i < n; i += SWIGLU_RUN) swiglu_run(h1 + i, h3 + i, n - i < SWIGLU_RUN ? n - i : SWIGLU_RUN);
}

/* Calls the hook for a site; *stop tells the caller to end the block. */
static qc_status hook(const qc_hooks *hooks, int layer, qc_site site, float *x, int ntok, int cols,
                      int nwin, int seqlen, bool *stop, qc_err *e) {
    *stop = false;
    if (!hooks || !hooks->fn) return QC_OK;
    qc_hook_call call = { layer, site, x, ntok, cols, nwin, seqlen, false };
    qc_status st = hooks->fn(hooks->ctx, &call, e);
    *stop = call.stop;
    return st;
}

/* q, k, v (with their biases), RoPE and causal attention on xn (ntok, dim), the output of
 * the attention RMSNorm: o's input into att (ntok, n_heads*head_dim). With kv (then
 * nwin == 1), the tokens sit at positions kv->len.. and their keys/values go into the cache,
 * attention spanning it. */
static qc_status attend_all(const qc_config *c, const qc_block *b, int layer, const float *xn, int nwin, int seqlen,
                            qc_kvcache *kv, qc_workspace *ws, float *att, qc_err *e) {
    int ntok = nwin * seqlen, pos0 = kv ? kv->len : 0, dim = c->dim;
    int qdim = c->n_heads * c->head_dim, kvdim = c->n_kv_heads * c->head_dim;
    float *k = ws->k, *v = ws->v;
    if (kv) { /* this layer's cache rows from pos0 on */
        size_t base = ((size_t)layer * kv->max_len) * kvdim;
        k = kv->k + base + (size_t)pos0 * kvdim;
        v = kv->v + base + (size_t)pos0 * kvdim;
    }
    qc_status st = linear(xn, ntok, b->w[QC_LIN_Q], b->bias[QC_LIN_Q], qdim, dim, ws->q, ws, e); /* biases before RoPE, as transformers */
    if (!st) st = linear(xn, ntok, b->w[QC_LIN_K], b->bias[QC_LIN_K], kvdim, dim, k, ws, e);
    if (!st) st = linear(xn, ntok, b->w[QC_LIN_V], b->bias[QC_LIN_V], kvdim, dim, v, ws, e);
    if (st) return st;
    rope(ws->q, ntok, c->n_heads, c->head_dim, pos0, seqlen, ws->rope_cos, ws->rope_sin);
    rope(k, ntok, c->n_kv_heads, c->head_dim, pos0, seqlen, ws->rope_cos, ws->rope_sin);
    if (kv) {
        size_t base = ((size_t)layer * kv->max_len) * kvdim;
        st = attend(c, ws->q, kv->k + base, kv->v + base, ntok, pos0, true, att, ws->scores, e);
    } else {
        for (int w = 0; w < nwin && !st; w++) {
            size_t r = (size_t)w * seqlen;
            st = attend(c, ws->q + r * qdim, k + r * kvdim, v + r * kvdim, seqlen, 0, false, att + r * qdim,
                        ws->scores, e);
        }
    }
    return st;
}

/* Attention on xn, the output of the attention RMSNorm (ntok, dim): attend_all, then o (with
 * its bias); the result (before the residual add) into out. The hook sees o's input. */
static qc_status attention(const qc_config *c, const qc_block *b, int layer, const float *xn, int nwin, int seqlen,
                           qc_kvcache *kv, const qc_hooks *hooks, qc_workspace *ws, float *out, bool *stop,
                           qc_err *e) {
    int ntok = nwin * seqlen, qdim = c->n_heads * c->head_dim;
    qc_status st = attend_all(c, b, layer, xn, nwin, seqlen, kv, ws, ws->att, e);
    if (!st) st = hook(hooks, layer, QC_SITE_O, ws->att, ntok, qdim, nwin, seqlen, stop, e);
    if (st || *stop) return st;
    return linear(ws->att, ntok, b->w[QC_LIN_O], b->bias[QC_LIN_O], c->dim, qdim, out, ws, e);
}

/* gate, up and SwiGLU on xn (ntok, dim), the output of the FFN RMSNorm: down's input into h
 * (ntok, hidden_dim), which must not be ws->h3. */
static qc_status gated(const qc_config *c, const qc_block *b, const float *xn, int ntok, qc_workspace *ws, float *h,
                       qc_err *e) {
    int dim = c->dim, hidden = c->hidden_dim;
    qc_status st = qc_matmul_xwt(xn, ntok, b->w[QC_LIN_GATE], hidden, dim, h, ws, e);
    if (!st) st = qc_matmul_xwt(xn, ntok, b->w[QC_LIN_UP], hidden, dim, ws->h3, ws, e);
    if (!st) swiglu(h, ws->h3, (size_t)ntok * hidden);
    return st;
}

/* The feed-forward network on xn, the output of the FFN RMSNorm (ntok, dim): gated, then
 * down; the result (before the residual add) into out. The hook sees down's input. */
static qc_status mlp(const qc_config *c, const qc_block *b, int layer, const float *xn, int nwin, int seqlen,
                     const qc_hooks *hooks, qc_workspace *ws, float *out, bool *stop, qc_err *e) {
    int ntok = nwin * seqlen, hidden = c->hidden_dim;
    qc_status st = gated(c, b, xn, ntok, ws, ws->h1, e);
    if (!st) st = hook(hooks, layer, QC_SITE_DOWN, ws->h1, ntok, hidden, nwin, seqlen, stop, e);
    if (st || *stop) return st;
    return qc_matmul_xwt(ws->h1, ntok, b->w[QC_LIN_DOWN], c->dim, hidden, out, ws, e);
}

static qc_status check_fits(const qc_workspace *ws, int layer, int ntok, int pos0, int seqlen, qc_err *e) {
    if (ntok > ws->max_tokens || pos0 + seqlen > ws->max_ctx)
        return qc_fail(e, QC_ERR_ARG, "block %d: %d tokens at position %d exceed the workspace (%d tokens, context %d)",
                       layer, ntok, pos0, ws->max_tokens, ws->max_ctx);
    return QC_OK;
}

/* The block over nwin windows of seqlen tokens. With kv (then nwin == 1), the tokens sit at
 * positions kv->len.. and their keys/values go into the cache, attention spanning it. */
static qc_status run_block(const qc_config *c, const qc_block *b, int layer, float *x, int nwin,
                           int seqlen, qc_kvcache *kv, const qc_hooks *hooks, qc_workspace *ws,
                           qc_err *e) {
    int ntok = nwin * seqlen, pos0 = kv ? kv->len : 0, dim = c->dim;
    qc_status st = check_fits(ws, layer, ntok, pos0, seqlen, e);
    if (st) return st;
    if (kv && pos0 + ntok > kv->max_len)
        return qc_fail(e, QC_ERR_ARG, "block %d: position %d beyond the cache (%d)", layer, pos0 + ntok, kv->max_len);
    bool stop;

    qc_rmsnorm(x, b->attn_norm, ntok, dim, c->norm_eps, ws->xb);
    if ((st = hook(hooks, layer, QC_SITE_QKV, ws->xb, ntok, dim, nwin, seqlen, &stop, e)) || stop) return st;
    if ((st = attention(c, b, layer, ws->xb, nwin, seqlen, kv, hooks, ws, ws->out, &stop, e)) || stop) return st;
    qc_residual_add(x, ws->out, (size_t)ntok * dim);

    qc_rmsnorm(x, b->ffn_norm, ntok, dim, c->norm_eps, ws->xb);
    if ((st = hook(hooks, layer, QC_SITE_GATE_UP, ws->xb, ntok, dim, nwin, seqlen, &stop, e)) || stop) return st;
    if ((st = mlp(c, b, layer, ws->xb, nwin, seqlen, hooks, ws, ws->out, &stop, e)) || stop) return st;
    qc_residual_add(x, ws->out, (size_t)ntok * dim);
    return QC_OK;
}

qc_status qc_subblock_forward(const qc_config *c, const qc_block *b, int layer, qc_subblock part, const float *in,
                              int nwin, int seqlen, float *out, qc_workspace *ws, qc_err *e) {
    if (nwin < 1 || seqlen < 1) return qc_fail(e, QC_ERR_ARG, "block %d: %d windows of %d tokens", layer, nwin, seqlen);
    qc_status st = check_fits(ws, layer, nwin * seqlen, 0, seqlen, e);
    if (st) return st;
    int ntok = nwin * seqlen, qdim = c->n_heads * c->head_dim;
    bool stop;
    switch (part) {
    case QC_SUB_ATTENTION: return attention(c, b, layer, in, nwin, seqlen, NULL, NULL, ws, out, &stop, e);
    case QC_SUB_MLP: return mlp(c, b, layer, in, nwin, seqlen, NULL, ws, out, &stop, e);
    case QC_SUB_ATTEND: return attend_all(c, b, layer, in, nwin, seqlen, NULL, ws, out, e);
    case QC_SUB_O: return linear(in, ntok, b->w[QC_LIN_O], b->bias[QC_LIN_O], c->dim, qdim, out, ws, e);
    case QC_SUB_SWIGLU: return gated(c, b, in, ntok, ws, out, e);
    case QC_SUB_DOWN: return qc_matmul_xwt(in, ntok, b->w[QC_LIN_DOWN], c->dim, c->hidden_dim, out, ws, e);
    }
    return qc_fail(e, QC_ERR_ARG, "block %d: no sub-block %d", layer, (int)part);
}

void qc_block_norm(const qc_config *c, const qc_block *b, qc_site site, const float *x, int ntok, float *xn) {
    qc_rmsnorm(x, site == QC_SITE_QKV ? b->attn_norm : b->ffn_norm, ntok, c->dim, c->norm_eps, xn);
}

qc_status qc_block_forward(const qc_config *c, const qc_block *b, int layer, float *x, int nwin,
                           int seqlen, const qc_hooks *hooks, qc_workspace *ws, qc_err *e) {
    if (nwin < 1 || seqlen < 1) return qc_fail(e, QC_ERR_ARG, "block %d: %d windows of %d tokens", layer, nwin, seqlen);
    return run_block(c, b, layer, x, nwin, seqlen, NULL, hooks, ws, e);
}

qc_status qc_block_forward_cached(const qc_config *c, const qc_block *b, int layer, float *x,
                                  int ntok, qc_kvcache *kv, qc_workspace *ws, qc_err *e) {
    if (ntok < 1) return qc_fail(e, QC_ERR_ARG, "block %d: no tokens", layer);
    return run_block(c, b, layer, x, 1, ntok, kv, NULL, ws, e);
}
