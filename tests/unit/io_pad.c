/* unit/io_pad.c — `convert --pad-to`'s widening (io/pad.c) on the two real models: the padded
 * shapes, the padded weights against the originals, and the logits of the padded model, written
 * as a Hugging Face folder and as a GGUF and read back, against the original's.
 *
 * The logits' bound (bounds.h): the two passes differ in the order their kernels add the real
 * terms of each sum (the padded terms are exact zeros, which add exactly 0 to any partial sum),
 * which bounds.h's fp32_logits_bound covers for the original's chain of reductions, and in two
 * more roundings per RMSNorm (w' = w·sqrt(d/d') and eps' = eps·d/d' each rounded once to fp32):
 * two more terms per norm in the chain (2 per block and the final one). */
#include "datasets/datasets.h"
#include "io/io.h"
#include "model/model.h"
#include "tests/bounds.h"
#include "tests/check.h"

#include <stdint.h>

typedef struct real_model {
    const char *path, *tokenizer;
} real_model;

static const real_model models[2] = {
    { "models/stories260K/stories260K.bin", "models/stories260K/tok512.bin" },
    { "models/tinystories-656K", "models/tinystories-656K/tokenizer.json" },
};

/* The eval text's first tokens under the model's tokenizer. */
static int32_t *eval_tokens(const real_model *rm, int vocab, size_t need) {
    qc_err e = { "" };
    qc_tokenizer t;
    qc_corpus c;
    int32_t *ids = NULL;
    size_t n = 0;
    if (qc_tokenizer_load(&t, shared_path(rm->tokenizer), vocab, &e) ||
        qc_corpus_load(&c, shared_path("data/tinystories/tinystories_eval.txt"), &e)) {
        fprintf(stderr, "cannot load fixtures: %s\n", e.msg);
        exit(1);
    }
    CHECK_OK(qc_tokenizer_encode(&t, c.text, c.len, true, false, &ids, &n, &e), e);
    CHECK(n >= need, "%zu tokens, need %zu", n, need);
    qc_corpus_free(&c);
    qc_tokenizer_free(&t);
    return ids;
}

/* A real model opened, and its padding to multiples of 256 (p borrows in: x stays put). */
typedef struct padded {
    qc_checkpoint *ck;
    qc_weight_source in, src;
    qc_pad p;
} padded;

static bool open_padded(int i, padded *x) {
    qc_err e = { "" };
    memset(x, 0, sizeof *x);
    CHECK_OK(qc_checkpoint_open(&x->ck, shared_path(models[i].path), &e), e);
    if (!x->ck) return false;
    x->in = qc_checkpoint_source(x->ck);
    CHECK_OK(qc_pad_init(&x->p, &x->in, 256, &e), e);
    x->src = qc_pad_source(&x->p);
    return true;
}

static float *logits_of(const char *path, const int32_t *ids, int nwin, int seqlen, int *vocab) {
    qc_err e = { "" };
    qc_model *m;
    if (qc_model_open(&m, path, &e)) {
        CHECK(0, "open %s: %s", path, e.msg);
        return NULL;
    }
    *vocab = m->cfg.vocab_size;
    qc_workspace *ws = qc_workspace_new(&m->cfg, nwin * seqlen, seqlen, &e);
    float *lg = malloc((size_t)nwin * seqlen * m->cfg.vocab_size * sizeof(float));
    CHECK_OK(qc_model_forward(m, ids, nwin, seqlen, lg, ws, &e), e);
    qc_workspace_free(ws);
    qc_model_free(m);
    return lg;
}

/* An attention width whole groups of heads cannot tile within qcalib's limits: 129 heads of
 * 1000 (129000 wide) need 160 heads (160000 > QC_MAX_DIM) to reach a multiple of 256. */
static void test_refused_heads(void) {
    qc_err e = { "" };
    qc_config c = { .dim = 4096, .hidden_dim = 4096, .n_layers = 1, .n_heads = 129, .n_kv_heads = 129, .head_dim = 1000,
                    .vocab_size = 32, .seq_len = 16, .norm_eps = 1e-5f, .rope_theta = 10000 };
    qc_weight_source in = { .cfg = &c };
    qc_pad p;
    CHECK_OK(qc_config_validate(&c, "the test config", &e), e);
    CHECK_FAILS(qc_pad_init(&p, &in, 256, &e), e, "the attention width n_heads·head_dim = 129·1000");
}

static void test_shapes(void) {
    for (int i = 0; i < 2; i++) {
        qc_err e = { "" };
        padded x;
        if (!open_padded(i, &x)) continue;
        const qc_config *c = x.in.cfg, *o = &x.p.cfg;
        qc_pad p;
        CHECK(o->dim % 256 == 0 && o->dim >= c->dim && o->dim - c->dim < 256, "dim %d → %d", c->dim, o->dim);
        CHECK(o->hidden_dim % 256 == 0 && o->hidden_dim >= c->hidden_dim && o->hidden_dim - c->hidden_dim < 256,
              "FFN %d → %d", c->hidden_dim, o->hidden_dim);
        CHECK(o->head_dim == c->head_dim, "head_dim %d → %d", c->head_dim, o->head_dim);
        CHECK(o->n_heads * o->head_dim % 256 == 0, "attention width %d", o->n_heads * o->head_dim);
        CHECK(o->n_heads / o->n_kv_heads == c->n_heads / c->n_kv_heads && o->n_heads % o->n_kv_heads == 0,
              "GQA ratio %d/%d → %d/%d", c->n_heads, c->n_kv_heads, o->n_heads, o->n_kv_heads);
        /* the least whole number of groups: no fewer would tile */
        int r = c->n_heads / c->n_kv_heads;
        for (int kv = c->n_kv_heads; kv < o->n_kv_heads; kv++)
            CHECK(r * kv * c->head_dim % 256 != 0, "%d kv heads would do; padded to %d", kv, o->n_kv_heads);
        CHECK(o->norm_eps == (float)((double)c->norm_eps * c->dim / o->dim), "eps %g → %g", (double)c->norm_eps,
              (double)o->norm_eps);
        CHECK(o->vocab_size == c->vocab_size && o->n_layers == c->n_layers && o->rope_theta == c->rope_theta,
              "vocabulary, layers and RoPE unchanged");
        CHECK_FAILS(qc_pad_init(&p, &x.in, 0, &e), e, "--pad-to 0");
        CHECK_FAILS(qc_pad_init(&p, &x.in, 100, &e), e, "multiple of 32");
        CHECK_FAILS(qc_pad_init(&p, &x.in, -256, &e), e, "--pad-to -256");
        qc_checkpoint_close(x.ck);
    }
}

/* Every padded weight: the original in its top-left corner, zeros elsewhere; norms times
 * sqrt(d/d') rounded once (exactly w/2 for stories260K, where d/d' = 1/4). */
static void test_weights(void) {
    for (int i = 0; i < 2; i++) {
        qc_err e = { "" };
        padded x;
        if (!open_padded(i, &x)) continue;
        const qc_weight_source *in = &x.in, *src = &x.src;
        double scale = sqrt((double)in->cfg->dim / x.p.cfg.dim);
        int bad = 0;
        for (int w = 0; w < QC_W_COUNT; w++) {
            if (!qc_weight_present(in->cfg, (qc_weight)w)) continue;
            int r0, c0, rows, cols;
            qc_weight_shape(in->cfg, (qc_weight)w, &r0, &c0);
            qc_weight_shape(&x.p.cfg, (qc_weight)w, &rows, &cols);
            float *a = malloc((size_t)r0 * c0 * sizeof(float)), *b = malloc((size_t)rows * cols * sizeof(float));
            int nl = qc_weight_is_global((qc_weight)w) ? 1 : in->cfg->n_layers;
            bool norm = w == QC_W_ATTN_NORM || w == QC_W_FFN_NORM || w == QC_W_FINAL_NORM;
            for (int l = 0; l < nl; l++) {
                CHECK_OK(qc_checkpoint_read(x.ck, (qc_weight)w, l, a, &e), e);
                CHECK_OK(src->read(src->ctx, (qc_weight)w, l, b, &e), e);
                for (int r = 0; r < rows; r++)
                    for (int k = 0; k < cols; k++) {
                        float want = r < r0 && k < c0 ? a[(size_t)r * c0 + k] : 0.0f;
                        if (norm) want = (float)(want * scale);
                        bad += b[(size_t)r * cols + k] != want;
                    }
                if (norm && i == 0) bad += b[0] != a[0] / 2; /* the power-of-4 case is exact */
            }
            free(a), free(b);
        }
        CHECK(bad == 0, "%s: %d padded values differ from the original's", models[i].path, bad);
        qc_checkpoint_close(x.ck);
    }
}

/* The padded model written as a Hugging Face folder (F32) and a GGUF (F32), read back by
 * qcalib: its logits against the original's, within the bound in the header. */
static void test_logits(void) {
    const int nwin = 2, seqlen = 128;
    for (int i = 0; i < 2; i++) {
        qc_err e = { "" };
        padded x;
        if (!open_padded(i, &x)) continue;
        const qc_config *c = x.in.cfg;
        char hf[4096], gguf[4096];
        snprintf(hf, sizeof hf, "%s", tmp_path(i ? "pad656k-hf" : "pad260k-hf"));
        snprintf(gguf, sizeof gguf, "%s", tmp_path(i ? "pad656k.gguf" : "pad260k.gguf"));
        qc_hf_export_opts ho = { QC_DT_F32, 0 };
        CHECK_OK(qc_hf_export(&x.src, hf, &ho, true, NULL, &e), e);
        qc_tokenizer tok;
        CHECK_OK(qc_tokenizer_load(&tok, shared_path(models[i].tokenizer), c->vocab_size, &e), e);
        qc_gguf_export_opts go = { .float_type = QC_GGUF_F32, .embed_type = QC_GGUF_F32, .output_type = QC_GGUF_F32,
                                   .tok = &tok, .name = models[i].path };
        CHECK_OK(qc_gguf_export(&x.src, gguf, &go, NULL, &e), e);
        qc_tokenizer_free(&tok);

        int32_t *ids = eval_tokens(&models[i], c->vocab_size, (size_t)nwin * seqlen);
        int vocab, v2, v3;
        float *base = logits_of(shared_path(models[i].path), ids, nwin, seqlen, &vocab);
        float *from_hf = logits_of(hf, ids, nwin, seqlen, &v2);
        float *from_gguf = logits_of(gguf, ids, nwin, seqlen, &v3);
        size_t n = (size_t)nwin * seqlen * vocab;
        double norms = 2.0 * c->n_layers + 1;
        double K = forward_chain_length(c, seqlen) + 2 * norms;
        double bound = 2 * fp32_gamma_prob(K) * max_abs(base, n);
        double dh = 0, dg = 0;
        for (size_t k = 0; k < n; k++) {
            dh = fmax(dh, fabs((double)from_hf[k] - base[k]));
            dg = fmax(dg, fabs((double)from_gguf[k] - base[k]));
        }
        CHECK(v2 == vocab && v3 == vocab, "vocabulary %d %d %d", vocab, v2, v3);
        CHECK(dh <= bound, "%s padded (hf): logits differ by %g, fp32 bound %g", models[i].path, dh, bound);
        CHECK(dg <= bound, "%s padded (gguf): logits differ by %g, fp32 bound %g", models[i].path, dg, bound);
        printf("    %s: padded logits within %.3g (hf), %.3g (gguf) of the original's; bound %.3g\n", models[i].path,
               dh, dg, bound);
        free(base), free(from_hf), free(from_gguf), free(ids);
        qc_checkpoint_close(x.ck);
    }
}

int main(void) {
    RUN(test_shapes);
    RUN(test_refused_heads);
    RUN(test_weights);
    RUN(test_logits);
    return check_summary();
}
