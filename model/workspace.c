/* workspace.c — the scratch buffers of the forward pass, its RoPE table, and the key/value
 * cache of incremental decoding. Sized once for the largest chunk so the pass itself never
 * allocates (but for the bf16 conversions' buffers, grown by the first products). */
#include "model/internal.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* The rotation frequency of pair i of a head: run.c's float expression, divided by the
 * config's per-frequency factor when RoPE is scaled (Llama 3's rope_scaling, as config.json's
 * parameters give it or a GGUF's rope_freqs tensor holds it: io/rope_freqs.c). */
static float rope_freq(const qc_config *c, size_t i) {
    float freq = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)c->head_dim);
    return c->rope_nfreqs ? freq / c->rope_freqs[i] : freq;
}

size_t qc_workspace_bytes(const qc_config *c, int max_tokens, int max_ctx, int threads) {
    size_t t = (size_t)max_tokens, qdim = (size_t)c->n_heads * c->head_dim, kvdim = (size_t)c->n_kv_heads * c->head_dim;
    size_t rows = t * (2 * (size_t)c->dim + 2 * qdim + 2 * kvdim + 2 * (size_t)c->hidden_dim);
    size_t scores = (size_t)threads * (t < QUERY_BLOCK ? t : QUERY_BLOCK) * (size_t)max_ctx;
    /* bf16: the largest linear input converted, and the weights: the largest linear, or
     * held, the linears of one part of the block (q, k and v; gate and up; o or down) */
    qc_compute ct = qc_get_compute();
    size_t in = (size_t)c->dim > qdim ? (size_t)c->dim : qdim, wt = 0, part[QC_SITE_COUNT] = { 0 };
    in = (size_t)c->hidden_dim > in ? (size_t)c->hidden_dim : in;
    for (int l = 0; l < QC_LIN_COUNT; l++) {
        int r, k;
        qc_weight_shape(c, qc_linear_weight(l), &r, &k);
        size_t b = qc_matmul_operand_bytes(ct, r, k);
        qc_site s = qc_linear_site((qc_linear)l);
        part[s] += b;
        wt = part[s] > wt ? part[s] : wt;
    }
    size_t conv = qc_matmul_operand_bytes(ct, (int64_t)t, (int64_t)in) + wt;
    return (rows + scores + (size_t)max_ctx * (size_t)(c->head_dim / 2) * 2) * sizeof(float) + conv;
}

qc_workspace *qc_workspace_new(const qc_config *c, int max_tokens, int max_ctx, qc_err *e) {
    if (max_tokens < 1 || max_ctx < 1) {
        qc_fail(e, QC_ERR_ARG, "workspace: %d tokens, context %d", max_tokens, max_ctx);
        return NULL;
    }
    qc_workspace *ws = qc_calloc(1, sizeof *ws, e, "workspace");
    if (!ws) return NULL;
    size_t t = (size_t)max_tokens, qdim = (size_t)c->n_heads * c->head_dim;
    size_t kvdim = (size_t)c->n_kv_heads * c->head_dim, half = (size_t)c->head_dim / 2;
    ws->max_tokens = max_tokens;
    ws->max_ctx = max_ctx;
    ws->xb = qc_malloc(t, (size_t)c->dim * sizeof(float), e, "activations");
    ws->out = ws->xb ? qc_malloc(t, (size_t)c->dim * sizeof(float), e, "activations") : NULL;
    ws->q = ws->out ? qc_malloc(t, qdim * sizeof(float), e, "queries") : NULL;
    ws->k = ws->q ? qc_malloc(t, kvdim * sizeof(float), e, "keys") : NULL;
    ws->v = ws->k ? qc_malloc(t, kvdim * sizeof(float), e, "values") : NULL;
    ws->att = ws->v ? qc_malloc(t, qdim * sizeof(float), e, "attention output") : NULL;
    ws->h1 = ws->att ? qc_malloc(t, (size_t)c->hidden_dim * sizeof(float), e, "FFN activations") : NULL;
    ws->h3 = ws->h1 ? qc_malloc(t, (size_t)c->hidden_dim * sizeof(float), e, "FFN activations") : NULL;
    size_t per_thread = (t < QUERY_BLOCK ? t : QUERY_BLOCK) * (size_t)max_ctx; /* one head per thread */
    ws->scores = ws->h3 ? qc_malloc((size_t)omp_get_max_threads(), per_thread * sizeof(float), e, "attention scores") : NULL;
    ws->rope_cos = ws->scores ? qc_malloc((size_t)max_ctx, half * sizeof(float), e, "RoPE table") : NULL;
    ws->rope_sin = ws->rope_cos ? qc_malloc((size_t)max_ctx, half * sizeof(float), e, "RoPE table") : NULL;
    if (!ws->rope_sin) {
        qc_workspace_free(ws);
        return NULL;
    }
    /* llama2.c's run.c computes exactly these float expressions per position (without rope_scaling). */
    for (int pos = 0; pos < max_ctx; pos++) {
        for (size_t i = 0; i < half; i++) {
            float freq = rope_freq(c, i);
            float val = (float)pos * freq;
            ws->rope_cos[(size_t)pos * half + i] = cosf(val);
            ws->rope_sin[(size_t)pos * half + i] = sinf(val);
        }
    }
    return ws;
}

void qc_workspace_free(qc_workspace *ws) {
    if (!ws) return;
    free(ws->xb);
    free(ws->out);
    free(ws->q);
    free(ws->k);
    free(ws->v);
    free(ws->att);
    free(ws->h1);
    free(ws->h3);
    free(ws->scores);
    free(ws->rope_cos);
    free(ws->rope_sin);
    qc_matmul_scratch_free(&ws->conv);
    free(ws);
}

void qc_workspace_hold_weights(qc_workspace *ws, bool on) { qc_matmul_scratch_hold(&ws->conv, on); }

qc_status qc_kvcache_init(qc_kvcache *kv, const qc_config *c, int max_len, qc_err *e) {
    memset(kv, 0, sizeof *kv);
    size_t n = (size_t)c->n_layers * (size_t)max_len * (size_t)c->n_kv_heads * (size_t)c->head_dim;
    kv->k = qc_calloc(n, sizeof(float), e, "key cache");
    kv->v = kv->k ? qc_calloc(n, sizeof(float), e, "value cache") : NULL;
    if (!kv->v) {
        qc_kvcache_free(kv);
        return QC_ERR_NOMEM;
    }
    kv->max_len = max_len;
    return QC_OK;
}

void qc_kvcache_free(qc_kvcache *kv) {
    if (!kv) return;
    free(kv->k);
    free(kv->v);
    memset(kv, 0, sizeof *kv);
}
