/* unit/model.c — the fp32 forward pass on the real stories260K:
 *  - against an independent, deliberately naive per-token forward written here after
 *    llama2.c's run.c (loops, no BLAS): logits at every position of real windows;
 *  - the batched pass against itself: several windows at once vs one by one, and the
 *    cached one-token-at-a-time path vs whole windows;
 *  - hooks: each site sees its real input, may stop the block, may modify the input;
 *  - the block's parts (qc_subblock_forward, qc_block_norm, qc_residual_add) are the block;
 *  - Hugging Face copies (F32, sharded F32, F16, BF16) give the llama2.c path's logits. */
#include "datasets/datasets.h"
#include "eval/eval.h"
#include "io/io.h"
#include "model/model.h"
#include "tests/bounds.h"
#include "tests/check.h"

#include <math.h>

static const char *model_file(void) { return shared_path("models/stories260K/stories260K.bin"); }

/* ---- a naive reference: run.c's forward, one token at a time, plain loops ---- */

typedef struct ref_model {
    qc_config c;
    float *embed, *final_norm, *cls;
    qc_block *b;
    float *kc, *vc; /* (layers, seq, kvdim) */
} ref_model;

static void ref_rmsnorm(float *o, const float *x, const float *w, int n, float eps) {
    float ss = 0;
    for (int j = 0; j < n; j++) ss += x[j] * x[j];
    ss = 1.0f / sqrtf(ss / n + eps);
    for (int j = 0; j < n; j++) o[j] = w[j] * (ss * x[j]);
}

static void ref_matmul(float *y, const float *x, const float *w, int rows, int cols) {
    for (int i = 0; i < rows; i++) {
        double v = 0; /* double: an oracle independent of float summation order */
        for (int j = 0; j < cols; j++) v += (double)w[(size_t)i * cols + j] * x[j];
        y[i] = (float)v;
    }
}

/* logits (vocab) of token at pos, caching keys/values */
static void ref_forward(ref_model *r, int token, int pos, float *logits) {
    const qc_config *c = &r->c;
    int dim = c->dim, hd = c->head_dim, kvdim = c->n_kv_heads * hd, qdim = c->n_heads * hd;
    float x[1024], xb[1024], q[1024], att[1024], h1[4096], h3[4096], o[1024], sc[4096];
    memcpy(x, r->embed + (size_t)token * dim, dim * sizeof(float));
    for (int l = 0; l < c->n_layers; l++) {
        qc_block *b = &r->b[l];
        float *kc = r->kc + ((size_t)l * c->seq_len) * kvdim, *vc = r->vc + ((size_t)l * c->seq_len) * kvdim;
        ref_rmsnorm(xb, x, b->attn_norm, dim, c->norm_eps);
        ref_matmul(q, xb, b->w[QC_LIN_Q], qdim, dim);
        ref_matmul(kc + (size_t)pos * kvdim, xb, b->w[QC_LIN_K], kvdim, dim);
        ref_matmul(vc + (size_t)pos * kvdim, xb, b->w[QC_LIN_V], kvdim, dim);
        for (int i = 0; i < qdim; i += 2) { /* RoPE as run.c, on q and on this position's k */
            int hi = i % hd;
            float freq = 1.0f / powf(c->rope_theta, hi / (float)hd), val = pos * freq;
            float fc = cosf(val), fs = sinf(val);
            for (int v = 0; v < (i < kvdim ? 2 : 1); v++) {
                float *vec = v == 0 ? q : kc + (size_t)pos * kvdim;
                float v0 = vec[i], v1 = vec[i + 1];
                vec[i] = v0 * fc - v1 * fs;
                vec[i + 1] = v0 * fs + v1 * fc;
            }
        }
        for (int h = 0; h < c->n_heads; h++) {
            int kvh = h / (c->n_heads / c->n_kv_heads);
            float max = -INFINITY, sum = 0;
            for (int t = 0; t <= pos; t++) {
                double s = 0;
                for (int i = 0; i < hd; i++) s += (double)q[h * hd + i] * kc[(size_t)t * kvdim + kvh * hd + i];
                sc[t] = (float)(s / sqrt((double)hd));
                if (sc[t] > max) max = sc[t];
            }
            for (int t = 0; t <= pos; t++) sum += (sc[t] = expf(sc[t] - max));
            for (int i = 0; i < hd; i++) {
                double a = 0;
                for (int t = 0; t <= pos; t++) a += (double)(sc[t] / sum) * vc[(size_t)t * kvdim + kvh * hd + i];
                att[h * hd + i] = (float)a;
            }
        }
        ref_matmul(o, att, b->w[QC_LIN_O], dim, qdim);
        for (int j = 0; j < dim; j++) x[j] += o[j];
        ref_rmsnorm(xb, x, b->ffn_norm, dim, c->norm_eps);
        ref_matmul(h1, xb, b->w[QC_LIN_GATE], c->hidden_dim, dim);
        ref_matmul(h3, xb, b->w[QC_LIN_UP], c->hidden_dim, dim);
        for (int j = 0; j < c->hidden_dim; j++) h1[j] = h1[j] / (1.0f + expf(-h1[j])) * h3[j];
        ref_matmul(o, h1, b->w[QC_LIN_DOWN], dim, c->hidden_dim);
        for (int j = 0; j < dim; j++) x[j] += o[j];
    }
    ref_rmsnorm(xb, x, r->final_norm, dim, c->norm_eps);
    ref_matmul(logits, xb, r->cls, c->vocab_size, dim);
}

static bool ref_load(ref_model *r, qc_checkpoint *ck, qc_err *e) {
    memset(r, 0, sizeof *r);
    r->c = *qc_checkpoint_config(ck);
    size_t kvn = (size_t)r->c.n_layers * r->c.seq_len * r->c.n_kv_heads * r->c.head_dim;
    r->b = calloc((size_t)r->c.n_layers, sizeof *r->b);
    r->kc = calloc(kvn, sizeof(float));
    r->vc = calloc(kvn, sizeof(float));
    if (qc_weight_load(ck, QC_W_EMBED, 0, &r->embed, e) || qc_weight_load(ck, QC_W_FINAL_NORM, 0, &r->final_norm, e) ||
        qc_weight_load(ck, QC_W_CLASSIFIER, 0, &r->cls, e))
        return false;
    for (int l = 0; l < r->c.n_layers; l++)
        if (qc_block_load(ck, l, &r->b[l], e)) return false;
    return true;
}

static void ref_free(ref_model *r) {
    for (int l = 0; r->b && l < r->c.n_layers; l++) qc_block_free(&r->b[l]);
    free(r->b), free(r->kc), free(r->vc), free(r->embed), free(r->final_norm), free(r->cls);
}

/* ---- shared fixtures: real tokens ---- */

static int32_t *eval_ids;
static size_t eval_n;

static void load_tokens(void) {
    qc_err e = { "" };
    qc_tokenizer t;
    qc_corpus c;
    if (qc_tokenizer_load(&t, shared_path("models/stories260K/tok512.bin"), 512, &e) ||
        qc_corpus_load(&c, shared_path("data/tinystories/tinystories_eval.txt"), &e)) {
        fprintf(stderr, "cannot load fixtures: %s\n", e.msg);
        exit(1);
    }
    if (qc_tokenizer_encode(&t, c.text, c.len, true, false, &eval_ids, &eval_n, &e)) exit(1);
    qc_corpus_free(&c);
    qc_tokenizer_free(&t);
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* logits (nwin*seqlen, vocab) of windows starting at ids + off, from a model file */
static float *logits_of(const char *path, size_t off, int nwin, int seqlen) {
    qc_err e = { "" };
    qc_model *m;
    if (qc_model_open(&m, path, &e)) { CHECK(0, "open %s: %s", path, e.msg); return NULL; }
    qc_workspace *ws = qc_workspace_new(&m->cfg, nwin * seqlen, seqlen, &e);
    float *lg = malloc((size_t)nwin * seqlen * m->cfg.vocab_size * sizeof(float));
    CHECK_OK(qc_model_forward(m, eval_ids + off, nwin, seqlen, lg, ws, &e), e);
    qc_workspace_free(ws);
    qc_model_free(m);
    return lg;
}

/* ---- tests ---- */

static void test_against_naive_reference(void) {
    qc_err e = { "" };
    qc_checkpoint *ck;
    CHECK_OK(qc_checkpoint_open(&ck, model_file(), &e), e);
    ref_model r;
    CHECK(ref_load(&r, ck, &e), "reference load: %s", e.msg);
    int seqlen = 256, vocab = r.c.vocab_size;
    float *lg = logits_of(model_file(), 1000, 2, seqlen);
    float *want = malloc((size_t)vocab * sizeof(float));
    double worst = 0;
    for (int w = 0; w < 2; w++)
        for (int p = 0; p < seqlen; p++) {
            ref_forward(&r, eval_ids[1000 + (size_t)w * seqlen + p], p, want);
            worst = fmax(worst, max_abs_diff(lg + ((size_t)w * seqlen + p) * vocab, want, (size_t)vocab));
        }
    printf("    batched sgemm pass vs naive run.c-style pass: max |dlogit| = %.3g over %d positions\n", worst, 2 * seqlen);
    double bound = fp32_logits_bound(&r.c, seqlen, lg, (size_t)2 * seqlen * vocab);
    CHECK(worst <= bound, "max |dlogit| %g, fp32 bound %g", worst, bound);
    free(want);
    free(lg);
    ref_free(&r);
    qc_checkpoint_close(ck);
}

static void test_windows_batched_equal_single(void) {
    int seqlen = 128, vocab = 512;
    float *all = logits_of(model_file(), 0, 4, seqlen);
    double worst = 0;
    for (int w = 0; w < 4; w++) {
        float *one = logits_of(model_file(), (size_t)w * seqlen, 1, seqlen);
        worst = fmax(worst, max_abs_diff(all + (size_t)w * seqlen * vocab, one, (size_t)seqlen * vocab));
        free(one);
    }
    qc_checkpoint *ck;
    qc_err e = { "" };
    CHECK_OK(qc_checkpoint_open(&ck, model_file(), &e), e);
    double bound = fp32_logits_bound(qc_checkpoint_config(ck), seqlen, all, (size_t)4 * seqlen * vocab);
    qc_checkpoint_close(ck);
    CHECK(worst <= bound, "4 windows at once vs one by one: %g, fp32 bound %g", worst, bound);
    free(all);
}

/* 300 tokens: the window's queries go in two blocks (forward.c's QUERY_BLOCK, 256), the
 * cached path's one at a time. */
static void test_cached_equals_windowed(void) {
    qc_err e = { "" };
    qc_model *m;
    CHECK_OK(qc_model_open(&m, model_file(), &e), e);
    int n = 300, vocab = m->cfg.vocab_size, dim = m->cfg.dim;
    float *full = logits_of(model_file(), 0, 1, n);
    qc_kvcache kv;
    CHECK_OK(qc_kvcache_init(&kv, &m->cfg, n, &e), e);
    qc_workspace *ws = qc_workspace_new(&m->cfg, 1, n, &e);
    float *x = malloc(dim * sizeof(float)), *lg = malloc(vocab * sizeof(float));
    double worst = 0;
    for (int p = 0; p < n; p++) {
        CHECK_OK(qc_model_embed(m, eval_ids + p, 1, x, &e), e);
        for (int l = 0; l < m->cfg.n_layers; l++) {
            const qc_block *b;
            CHECK_OK(qc_model_block(m, l, &b, &e), e);
            CHECK_OK(qc_block_forward_cached(&m->cfg, b, l, x, 1, &kv, ws, &e), e);
        }
        kv.len++;
        CHECK_OK(qc_model_head(m, x, 1, lg, &e), e);
        worst = fmax(worst, max_abs_diff(lg, full + (size_t)p * vocab, (size_t)vocab));
    }
    double bound = fp32_logits_bound(&m->cfg, n, full, (size_t)n * vocab);
    CHECK(worst <= bound, "cached vs windowed: %g, fp32 bound %g", worst, bound);
    free(x), free(lg), free(full);
    qc_workspace_free(ws);
    qc_kvcache_free(&kv);
    qc_model_free(m);
}

/* Hooks record each site's input; the QKV input must be the RMSNorm of the embeddings, the
 * down input must have hidden_dim columns, and a stop at O must leave the rest unrun. */
typedef struct rec { int calls[QC_SITE_COUNT]; float *qkv; int stop_at; int zero_site; } rec;

static qc_status record(void *ctx, qc_hook_call *call, qc_err *e) {
    rec *r = ctx;
    r->calls[call->site]++;
    if (call->site == QC_SITE_QKV && r->qkv) memcpy(r->qkv, call->x, (size_t)call->ntok * call->cols * sizeof(float));
    if ((int)call->site == r->zero_site) memset(call->x, 0, (size_t)call->ntok * call->cols * sizeof(float));
    call->stop = (int)call->site == r->stop_at;
    return QC_OK;
}

static void test_hooks(void) {
    qc_err e = { "" };
    qc_model *m;
    CHECK_OK(qc_model_open(&m, model_file(), &e), e);
    const qc_config *c = &m->cfg;
    int nwin = 2, seqlen = 32, ntok = nwin * seqlen;
    qc_workspace *ws = qc_workspace_new(c, ntok, seqlen, &e);
    const qc_block *b;
    CHECK_OK(qc_model_block(m, 0, &b, &e), e);
    float *x = malloc((size_t)ntok * c->dim * sizeof(float)), *x0 = malloc((size_t)ntok * c->dim * sizeof(float));
    float *y = malloc((size_t)ntok * c->dim * sizeof(float));
    CHECK_OK(qc_model_embed(m, eval_ids, ntok, x0, &e), e);

    rec r = { { 0 }, malloc((size_t)ntok * c->dim * sizeof(float)), -1, -1 };
    qc_hooks hooks = { record, &r };
    memcpy(x, x0, (size_t)ntok * c->dim * sizeof(float));
    CHECK_OK(qc_block_forward(c, b, 0, x, nwin, seqlen, &hooks, ws, &e), e);
    for (int s = 0; s < QC_SITE_COUNT; s++) CHECK(r.calls[s] == 1, "site %s called %d times", qc_site_name(s), r.calls[s]);
    /* the QKV input is RMSNorm(x0) with the block's attention norm */
    /* against a double reference: fp32's sum of squares is off by gamma_dim relative, the
     * square root halves that, and the division, scaling and weight add a rounding each */
    double worst = 0, rel_bound = fp32_gamma(c->dim) + 5 * FP32_U;
    for (int t = 0; t < ntok; t++) {
        double ss = 0;
        for (int j = 0; j < c->dim; j++) ss += (double)x0[t * c->dim + j] * x0[t * c->dim + j];
        double inv = 1 / sqrt(ss / c->dim + c->norm_eps);
        for (int j = 0; j < c->dim; j++) {
            double want = b->attn_norm[j] * x0[t * c->dim + j] * inv;
            worst = fmax(worst, fabs(want - r.qkv[t * c->dim + j]) / (rel_bound * fabs(want) + 1e-300));
        }
    }
    CHECK(worst <= 1, "QKV input is RMSNorm of the block input: off by %g of the fp32 bound", worst);
    /* without hooks: the same output */
    memcpy(y, x0, (size_t)ntok * c->dim * sizeof(float));
    CHECK_OK(qc_block_forward(c, b, 0, y, nwin, seqlen, NULL, ws, &e), e);
    CHECK(max_abs_diff(x, y, (size_t)ntok * c->dim) == 0, "observing hooks change nothing");

    /* stop at O: gate_up and down are never reached */
    rec s = { { 0 }, NULL, QC_SITE_O, -1 };
    hooks.ctx = &s;
    memcpy(x, x0, (size_t)ntok * c->dim * sizeof(float));
    CHECK_OK(qc_block_forward(c, b, 0, x, nwin, seqlen, &hooks, ws, &e), e);
    CHECK(s.calls[QC_SITE_O] == 1 && s.calls[QC_SITE_GATE_UP] == 0 && s.calls[QC_SITE_DOWN] == 0, "stop honoured");

    /* zeroing the down projection's input removes the FFN's contribution: the output is
     * then the block input plus attention, i.e. what the O site stage produced */
    rec z = { { 0 }, NULL, -1, QC_SITE_DOWN };
    hooks.ctx = &z;
    memcpy(x, x0, (size_t)ntok * c->dim * sizeof(float));
    CHECK_OK(qc_block_forward(c, b, 0, x, nwin, seqlen, &hooks, ws, &e), e);
    CHECK(max_abs_diff(x, y, (size_t)ntok * c->dim) > 1e-3, "modified input changes the output");
    free(r.qkv), free(x), free(x0), free(y);
    qc_workspace_free(ws);
    qc_model_free(m);
}

/* The block by parts (norm, ATTEND, O, residual, norm, SWIGLU, DOWN, residual) is the block,
 * bit for bit; ATTEND then O is ATTENTION and SWIGLU then DOWN is MLP; each part's output is
 * the next site's input as a hook sees it. */
typedef struct sites { float *x[QC_SITE_COUNT]; } sites;

static qc_status copy_site(void *ctx, qc_hook_call *call, qc_err *e) {
    (void)e;
    sites *k = ctx;
    memcpy(k->x[call->site], call->x, (size_t)call->ntok * call->cols * sizeof(float));
    return QC_OK;
}

static void test_parts_are_the_block(void) {
    qc_err e = { "" };
    qc_model *m;
    CHECK_OK(qc_model_open(&m, model_file(), &e), e);
    const qc_config *c = &m->cfg;
    int nwin = 3, seqlen = 48, ntok = nwin * seqlen, qdim = c->n_heads * c->head_dim;
    size_t nx = (size_t)ntok * c->dim, nh = (size_t)ntok * c->hidden_dim, f = sizeof(float);
    qc_workspace *ws = qc_workspace_new(c, ntok, seqlen, &e);
    const qc_block *b;
    CHECK_OK(qc_model_block(m, 1, &b, &e), e);
    float *x0 = malloc(nx * f), *x = malloc(nx * f), *x1 = malloc(nx * f), *xn = malloc(nx * f), *y = malloc(nx * f);
    float *y2 = malloc(nx * f), *att = malloc((size_t)ntok * qdim * f), *h = malloc(nh * f);
    sites k = { { malloc(nx * f), malloc((size_t)ntok * qdim * f), malloc(nx * f), malloc(nh * f) } };
    CHECK_OK(qc_model_embed(m, eval_ids + 500, ntok, x0, &e), e);
    memcpy(x, x0, nx * f);
    qc_hooks hooks = { copy_site, &k };
    CHECK_OK(qc_block_forward(c, b, 1, x, nwin, seqlen, &hooks, ws, &e), e);

    memcpy(x1, x0, nx * f);
    qc_block_norm(c, b, QC_SITE_QKV, x1, ntok, xn);
    CHECK(memcmp(xn, k.x[QC_SITE_QKV], nx * f) == 0, "the attention norm is q, k, v's input");
    CHECK_OK(qc_subblock_forward(c, b, 1, QC_SUB_ATTEND, xn, nwin, seqlen, att, ws, &e), e);
    CHECK(memcmp(att, k.x[QC_SITE_O], (size_t)ntok * qdim * f) == 0, "ATTEND gives o's input");
    CHECK_OK(qc_subblock_forward(c, b, 1, QC_SUB_O, att, nwin, seqlen, y, ws, &e), e);
    CHECK_OK(qc_subblock_forward(c, b, 1, QC_SUB_ATTENTION, xn, nwin, seqlen, y2, ws, &e), e);
    CHECK(memcmp(y, y2, nx * f) == 0, "ATTEND then O is ATTENTION");
    qc_residual_add(x1, y, nx);
    qc_block_norm(c, b, QC_SITE_GATE_UP, x1, ntok, xn);
    CHECK(memcmp(xn, k.x[QC_SITE_GATE_UP], nx * f) == 0, "the FFN norm of x + attention is gate and up's input");
    CHECK_OK(qc_subblock_forward(c, b, 1, QC_SUB_SWIGLU, xn, nwin, seqlen, h, ws, &e), e);
    CHECK(memcmp(h, k.x[QC_SITE_DOWN], nh * f) == 0, "SWIGLU gives down's input");
    CHECK_OK(qc_subblock_forward(c, b, 1, QC_SUB_DOWN, h, nwin, seqlen, y, ws, &e), e);
    CHECK_OK(qc_subblock_forward(c, b, 1, QC_SUB_MLP, xn, nwin, seqlen, y2, ws, &e), e);
    CHECK(memcmp(y, y2, nx * f) == 0, "SWIGLU then DOWN is MLP");
    qc_residual_add(x1, y, nx);
    CHECK(memcmp(x1, x, nx * f) == 0, "the parts and residual adds give the block's output");
    CHECK(memcmp(x1, x0, nx * f) != 0, "the block changed its input");
    CHECK_FAILS(qc_subblock_forward(c, b, 1, QC_SUB_DOWN, h, nwin + 1, seqlen, y, ws, &e), e, "exceed the workspace");
    for (int s = 0; s < QC_SITE_COUNT; s++) free(k.x[s]);
    free(x0), free(x), free(x1), free(xn), free(y), free(y2), free(att), free(h);
    qc_workspace_free(ws);
    qc_model_free(m);
}

/* A weight source that rounds every weight of a checkpoint through fp16 or bf16. */
typedef struct rounding { const qc_checkpoint *ck; qc_dtype dt; } rounding;

static qc_status read_rounded(void *ctx, qc_weight w, int layer, float *out, qc_err *e) {
    rounding *r = ctx;
    qc_status st = qc_checkpoint_read(r->ck, w, layer, out, e);
    int rows, cols;
    qc_weight_shape(qc_checkpoint_config(r->ck), w, &rows, &cols);
    for (size_t i = 0; !st && i < (size_t)rows * cols; i++)
        out[i] = r->dt == QC_DT_F16 ? qc_f16_to_f32(qc_f32_to_f16(out[i])) : qc_bf16_to_f32(qc_f32_to_bf16(out[i]));
    return st;
}

static double ppl_of(const char *path, int seqlen) {
    qc_err e = { "" };
    qc_model *m;
    qc_windows w;
    qc_eval_result r = { 0 };
    if (qc_model_open(&m, path, &e)) { CHECK(0, "%s", e.msg); return NAN; }
    /* the first 160 windows of 128 tokens (20k tokens) are plenty to see a rounding effect */
    size_t n = eval_n < 160 * 128 ? eval_n : 160 * 128;
    CHECK_OK(qc_windows_sequential(eval_ids, n, seqlen, &w, &e), e);
    qc_eval_opts o = { 0 };
    CHECK_OK(qc_eval_perplexity(m, &w, &o, &r, &e), e);
    qc_windows_free(&w);
    qc_model_free(m);
    return r.ppl;
}

/* HF copies written by io/ (Q/K rows permuted into rotate-half order) give the llama2.c
 * path's logits: exactly for F32 (single file and sharded); for F16/BF16 the logits of a
 * llama2.c model whose weights were rounded the same way, and a perplexity that moves only
 * by what that rounding costs. */
static void test_hf_matches_llama2c(void) {
    qc_err e = { "" };
    qc_checkpoint *ck;
    CHECK_OK(qc_checkpoint_open(&ck, model_file(), &e), e);
    qc_weight_source src = qc_checkpoint_source(ck);
    int seqlen = 128, nwin = 3;
    size_t n = (size_t)nwin * seqlen * 512;
    float *base = logits_of(model_file(), 0, nwin, seqlen);
    double ppl32 = ppl_of(model_file(), seqlen);
    struct { const char *name; qc_dtype dt; size_t shard; } cases[] = {
        { "hf_f32", QC_DT_F32, 0 }, { "hf_f32_sharded", QC_DT_F32, 300000 },
        { "hf_f16", QC_DT_F16, 0 }, { "hf_bf16", QC_DT_BF16, 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        qc_hf_export_opts o = { cases[i].dt, cases[i].shard };
        const char *dir = tmp_path(cases[i].name);
        CHECK_OK(qc_hf_export(&src, dir, &o, true, NULL, &e), e);
        if (cases[i].shard) CHECK(qc_path_exists(tmp_path("hf_f32_sharded/model.safetensors.index.json")), "index written");
        float *lg = logits_of(dir, 0, nwin, seqlen);
        if (!lg) continue;
        const float *want = base;
        float *rounded = NULL;
        if (cases[i].dt != QC_DT_F32) { /* the same rounding, through the llama2.c path */
            rounding rd = { ck, cases[i].dt };
            qc_weight_source rsrc = { .cfg = qc_checkpoint_config(ck), .read = read_rounded, .ctx = &rd };
            const char *bin = tmp_path("rounded.bin");
            CHECK_OK(qc_llama2c_export(&rsrc, bin, NULL, &e), e);
            want = rounded = logits_of(bin, 0, nwin, seqlen);
        }
        double d = want ? max_abs_diff(lg, want, n) : INFINITY;
        double ppl = ppl_of(dir, seqlen), rel = fabs(ppl - ppl32) / ppl32;
        printf("    %-15s max |dlogit| %.3g vs llama2.c%s; ppl %.4f (fp32 %.4f, %+.3f%%)\n", cases[i].name, d,
               rounded ? " with the same rounding" : "", ppl, ppl32, 100 * (ppl - ppl32) / ppl32);
        /* the same weights through the same code path: the same logits, bit for bit */
        CHECK(d == 0, "%s: max |dlogit| %g", cases[i].name, d);
        /* rounding the weights to 11 (f16) or 8 (bf16) significant bits is a change of model,
         * not of arithmetic: it moves ppl by well under 1% / 3%; F32 does not move it at all */
        CHECK(cases[i].dt == QC_DT_F32 ? rel == 0 : rel < (cases[i].dt == QC_DT_F16 ? 0.01 : 0.03),
              "%s: ppl moved %.4f%%", cases[i].name, 100 * rel);
        free(lg);
        free(rounded);
    }
    free(base);
    qc_checkpoint_close(ck);
}

/* Padding the FFN from 172 to 192 with zeros changes nothing: the logits are the same. */
static void test_ffn_padding_is_exact(void) {
    qc_err e = { "" };
    qc_model *m;
    CHECK_OK(qc_model_open(&m, model_file(), &e), e);
    CHECK_OK(qc_model_pad_ffn(m, 32, &e), e);
    CHECK(m->cfg.hidden_dim == 192, "hidden %d", m->cfg.hidden_dim);
    const qc_block *b;
    CHECK_OK(qc_model_block(m, 1, &b, &e), e);
    float *w2 = NULL;
    CHECK_OK(qc_weight_load(m->ck, QC_W_DOWN, 1, &w2, &e), e);
    CHECK(w2 && w2[191] == 0 && w2[172] == 0 && b->w[QC_LIN_GATE][(size_t)180 * 64 + 5] == 0, "padding is zeros");
    free(w2);
    int seqlen = 128, nwin = 2;
    qc_workspace *ws = qc_workspace_new(&m->cfg, nwin * seqlen, seqlen, &e);
    float *lg = malloc((size_t)nwin * seqlen * 512 * sizeof(float));
    CHECK_OK(qc_model_forward(m, eval_ids, nwin, seqlen, lg, ws, &e), e);
    float *base = logits_of(model_file(), 0, nwin, seqlen);
    double d = max_abs_diff(lg, base, (size_t)nwin * seqlen * 512);
    double bound = fp32_logits_bound(&m->cfg, seqlen, base, (size_t)nwin * seqlen * 512);
    CHECK(d <= bound, "padded vs unpadded logits differ by %g, fp32 bound %g", d, bound);
    free(lg), free(base);
    qc_workspace_free(ws);
    qc_model_free(m);
}

static void test_nan_weight_rejected(void) {
    /* a copy of stories260K with one NaN in block 2's wq */
    qc_err e = { "" };
    qc_map map;
    CHECK_OK(qc_map_open(&map, model_file(), &e), e);
    uint8_t *copy = malloc(map.size);
    memcpy(copy, map.data, map.size);
    size_t wq2 = 28 + 4 * ((size_t)512 * 64 + 5 * 64 + 2 * 64 * 64 + 7 * 64 + 3); /* wq[2][0][3 + 7*64] */
    float nan = NAN;
    memcpy(copy + wq2, &nan, 4);
    const char *path = tmp_path("nan.bin");
    FILE *f = fopen(path, "wb");
    fwrite(copy, 1, map.size, f);
    fclose(f);
    free(copy);
    qc_map_close(&map);
    /* refused when the model is opened, not when block 2 is reached */
    qc_model *m = NULL;
    CHECK_FAILS(qc_model_open(&m, path, &e), e, "model.layers.2.self_attn.q_proj.weight");
    CHECK(strstr(e.msg, "row 7, column 3") && strstr(e.msg, "nan.bin"), "position and file named: %s", e.msg);
    CHECK(m == NULL, "no model on failure");
    /* the checkpoint opens (its layout is valid), but the weight cannot be read */
    qc_checkpoint *ck;
    CHECK_OK(qc_checkpoint_open(&ck, path, &e), e);
    float *w = malloc(64 * 64 * sizeof(float));
    CHECK_FAILS(qc_checkpoint_read(ck, QC_W_Q, 2, w, &e), e, "q_proj.weight has a non-finite value (nan) at row 7, column 3");
    CHECK_OK(qc_checkpoint_read(ck, QC_W_Q, 1, w, &e), e); /* the other blocks read as ever */
    free(w);
    qc_checkpoint_close(ck);
}

int main(void) {
    load_tokens();
    RUN(test_against_naive_reference);
    RUN(test_windows_batched_equal_single);
    RUN(test_cached_equals_windowed);
    RUN(test_hooks);
    RUN(test_parts_are_the_block);
    RUN(test_hf_matches_llama2c);
    RUN(test_ffn_padding_is_exact);
    RUN(test_nan_weight_rejected);
    free(eval_ids);
    return check_summary();
}
