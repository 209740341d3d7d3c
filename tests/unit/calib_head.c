/* unit/calib_head.c — the classifier and the token embedding calibrated by GPTQ after the
 * blocks (calib/classifier.c, calib/embedding.c), on the real stories260K and TinyStories-656K
 * padded to 256 (qcalib convert --pad-to 256's padding), as a GPTQ --gguf-type q4_k_m run
 * quantizes them: linears Q4_K, the classifier Q6_K, the embedding Q4_K.
 *
 * Each error is computed here, independently of the library's solvers and error routine:
 *   - the classifier's inputs: the calibration windows run through the model with the solved
 *     linears (as the runner propagates them), then the final RMSNorm; H = Σ xᵀx in double;
 *     the output error tr(ΔW H ΔWᵀ) of GPTQ's classifier is below round-to-nearest's (llama.cpp's
 *     reference quantizer) at the same type;
 *   - the embedding's: H = Σ_n γ_n Σ_c diag(g_n) W_cᵀ W_c diag(g_n) over every RMSNorm n and
 *     the linears c reading it, γ_n the mean of rms(e)² / rms(x_n)² over the windows' tokens
 *     through the fp32 model (embedding.c's objective: the first-order error its rows cause in
 *     those outputs); GPTQ's embedding below round-to-nearest's at the same type under it;
 *   - the GGUF written from the result holds both as solved: output.weight and token_embd.weight
 *     read back equal the dequantized results bit for bit (the classifier, tied to the
 *     embedding in both models, is stored apart from it). */
#include "calib/calib.h"
#include "tests/check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NWIN 8
#define SEQLEN 64

typedef struct model_case {
    const char *model, *tokenizer, *dir;
} model_case;

static const model_case models[] = {
    { "models/stories260K/stories260K.bin", "models/stories260K/tok512.bin", "head260k" },
    { "models/tinystories-656K", "models/tinystories-656K/tokenizer.json", "head656k" },
};

/* A K-quant type's spec as the gguf format row makes it (job/formats.c's gguf_block_spec). */
static qc_quant_spec kspec(int bits) {
    bool mins = qc_kquant_has_mins(bits);
    return (qc_quant_spec){ .bits = bits, .groupsize = qc_kquant_sub(bits), .sym = !mins, .f16_scales = true,
                            .store_min = mins, .kquant = qc_gguf_kquant_fit };
}

/* Σ_r (w_r − q_r) h (w_r − q_r)ᵀ over rows of n, in double; h (n, n) full. */
static double output_error(const float *w, const float *q, int rows, int n, const double *h) {
    double sum = 0;
    double *d = malloc((size_t)n * sizeof *d);
    for (int r = 0; r < rows; r++) {
        for (int j = 0; j < n; j++) d[j] = (double)w[(size_t)r * n + j] - q[(size_t)r * n + j];
        for (int i = 0; i < n; i++) {
            if (d[i] == 0) continue;
            double hi = 0;
            for (int j = 0; j < n; j++) hi += h[(size_t)i * n + j] * d[j];
            sum += d[i] * hi;
        }
    }
    free(d);
    return sum;
}

/* The dequantized values of round-to-nearest by spec s of w (rows, cols). */
static float *rtn_of(const float *w, int rows, int cols, const qc_quant_spec *s) {
    qc_err e = { "" };
    qc_qweight r = { 0 };
    float *out = malloc((size_t)rows * cols * sizeof *out);
    CHECK_OK(qc_quant_rtn(w, rows, cols, s, &r, &e), e);
    qc_qweight_dequantize(&r, out);
    qc_qweight_free(&r);
    return out;
}

static float *dequantized(const qc_qweight *q) {
    float *out = malloc((size_t)q->rows * q->cols * sizeof *out);
    qc_qweight_dequantize(q, out);
    return out;
}

/* The model padded to 256, written as an HF folder (F32) in the scratch folder. */
static void write_padded(const model_case *mc, char *dir, size_t size) {
    qc_err e = { "" };
    qc_checkpoint *ck = NULL;
    snprintf(dir, size, "%s", tmp_path(mc->dir));
    CHECK_OK(qc_checkpoint_open(&ck, shared_path(mc->model), &e), e);
    if (!ck) return;
    qc_weight_source in = qc_checkpoint_source(ck), src;
    qc_pad p;
    CHECK_OK(qc_pad_init(&p, &in, 256, &e), e);
    src = qc_pad_source(&p);
    qc_hf_export_opts ho = { QC_DT_F32, 0 };
    CHECK_OK(qc_hf_export(&src, dir, &ho, true, NULL, &e), e);
    qc_checkpoint_close(ck);
}

/* H (dim, dim) of the classifier's input: the windows through the model with q's linears,
 * then the final RMSNorm, Σ xᵀx in double. */
static double *classifier_hessian(const char *dir, const qc_quantized *q, const qc_windows *w) {
    qc_err e = { "" };
    qc_model *m = NULL;
    CHECK_OK(qc_model_open(&m, dir, &e), e);
    if (!m) return NULL;
    qc_weight_source src = qc_quantized_source(q);
    qc_model_set_linears(m, &src);
    const qc_config *c = &m->cfg;
    int ntok = w->n * w->seqlen, dim = c->dim;
    float *x = malloc((size_t)ntok * dim * sizeof *x);
    qc_workspace *ws = qc_workspace_new(c, ntok, w->seqlen, &e);
    CHECK_OK(qc_model_embed(m, w->tokens, ntok, x, &e), e);
    for (int l = 0; l < c->n_layers; l++) {
        const qc_block *b = NULL;
        CHECK_OK(qc_model_block(m, l, &b, &e), e);
        if (b) CHECK_OK(qc_block_forward(c, b, l, x, w->n, w->seqlen, NULL, ws, &e), e);
    }
    qc_model_final_norm(m, x, ntok, x);
    double *h = calloc((size_t)dim * dim, sizeof *h);
    for (int t = 0; t < ntok; t++)
        for (int i = 0; i < dim; i++) {
            double xi = x[(size_t)t * dim + i];
            if (xi != 0)
                for (int j = 0; j < dim; j++) h[(size_t)i * dim + j] += xi * x[(size_t)t * dim + j];
        }
    qc_workspace_free(ws);
    free(x);
    qc_model_free(m);
    return h;
}

/* h (dim, dim) += gain · (W diag(g))ᵀ (W diag(g)) for W (rows, dim), in double. */
static void add_reader(double *h, const float *g, const float *wc, int rows, int dim, double gain) {
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < dim; i++) {
            double a = gain * wc[(size_t)r * dim + i] * g[i];
            if (a != 0)
                for (int j = 0; j < dim; j++) h[(size_t)i * dim + j] += a * wc[(size_t)r * dim + j] * g[j];
        }
}

/* mean over tokens of ms(e_t) / ms(x_t), ms = mean square + eps. */
static double gain_of(const float *x, const double *ms_e, int ntok, int dim, double eps) {
    double sum = 0;
    for (int t = 0; t < ntok; t++) {
        double ms = 0;
        for (int j = 0; j < dim; j++) ms += (double)x[(size_t)t * dim + j] * x[(size_t)t * dim + j];
        sum += ms_e[t] / (ms / dim + eps);
    }
    return sum / ntok;
}

/* H (dim, dim) of the embedding's readers, in double: every RMSNorm n after it (each block's
 * attention and FFN norms, the final norm) with its linears, weighted by the mean over the
 * windows' tokens of rms(e)² / rms(x_n)², the stream through the fp32 model. */
static double *embedding_hessian(qc_model *m, const qc_windows *w) {
    qc_err e = { "" };
    const qc_config *c = &m->cfg;
    int ntok = w->n * w->seqlen, dim = c->dim;
    float *x = malloc((size_t)ntok * dim * sizeof *x), *xn = malloc((size_t)ntok * dim * sizeof *xn);
    float *y = malloc((size_t)ntok * dim * sizeof *y);
    double *ms_e = malloc((size_t)ntok * sizeof *ms_e), *h = calloc((size_t)dim * dim, sizeof *h);
    qc_workspace *ws = qc_workspace_new(c, ntok, w->seqlen, &e);
    CHECK_OK(qc_model_embed(m, w->tokens, ntok, x, &e), e);
    for (int t = 0; t < ntok; t++) {
        double ms = 0;
        for (int j = 0; j < dim; j++) ms += (double)x[(size_t)t * dim + j] * x[(size_t)t * dim + j];
        ms_e[t] = ms / dim + c->norm_eps;
    }
    for (int l = 0; l < c->n_layers; l++) {
        qc_block b;
        CHECK_OK(qc_block_load(m->ck, l, &b, &e), e);
        const qc_linear attn[3] = { QC_LIN_Q, QC_LIN_K, QC_LIN_V }, ffn[2] = { QC_LIN_GATE, QC_LIN_UP };
        double g = gain_of(x, ms_e, ntok, dim, c->norm_eps);
        for (int k = 0; k < 3; k++) {
            int rows, cols;
            qc_weight_shape(c, qc_linear_weight(attn[k]), &rows, &cols);
            add_reader(h, b.attn_norm, b.w[attn[k]], rows, dim, g);
        }
        qc_block_norm(c, &b, QC_SITE_QKV, x, ntok, xn);
        CHECK_OK(qc_subblock_forward(c, &b, l, QC_SUB_ATTENTION, xn, w->n, w->seqlen, y, ws, &e), e);
        for (size_t k = 0; k < (size_t)ntok * dim; k++) x[k] += y[k];
        g = gain_of(x, ms_e, ntok, dim, c->norm_eps);
        for (int k = 0; k < 2; k++) {
            int rows, cols;
            qc_weight_shape(c, qc_linear_weight(ffn[k]), &rows, &cols);
            add_reader(h, b.ffn_norm, b.w[ffn[k]], rows, dim, g);
        }
        qc_block_norm(c, &b, QC_SITE_GATE_UP, x, ntok, xn);
        CHECK_OK(qc_subblock_forward(c, &b, l, QC_SUB_MLP, xn, w->n, w->seqlen, y, ws, &e), e);
        for (size_t k = 0; k < (size_t)ntok * dim; k++) x[k] += y[k];
        qc_block_free(&b);
    }
    float *cls = malloc((size_t)c->vocab_size * dim * sizeof *cls);
    CHECK_OK(qc_checkpoint_read(m->ck, QC_W_CLASSIFIER, 0, cls, &e), e);
    add_reader(h, m->final_norm, cls, c->vocab_size, dim, gain_of(x, ms_e, ntok, dim, c->norm_eps));
    qc_workspace_free(ws);
    free(cls), free(x), free(xn), free(y), free(ms_e);
    return h;
}

static void test_head(void) {
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        const model_case *mc = &models[i];
        qc_err e = { "" };
        char dir[1024];
        write_padded(mc, dir, sizeof dir);
        qc_model *m = NULL;
        CHECK_OK(qc_model_open(&m, dir, &e), e);
        if (!m) continue;
        const qc_config *c = &m->cfg;
        qc_tokenizer tok = { 0 };
        CHECK_OK(qc_tokenizer_load(&tok, shared_path(mc->tokenizer), c->vocab_size, &e), e);
        qc_windows w = { 0 };
        const char *src[1] = { shared_path("data/tinystories/tinystories_calib.txt") };
        CHECK_OK(qc_windows_draw(&tok, src, 1, NWIN, SEQLEN, 0, &w, &e), e);
        qc_calib_opts o = { .method = QC_METHOD_GPTQ, .spec = kspec(4), .gptq = qc_gptq_defaults(),
                            .true_sequential = true, .embed = kspec(4), .embed_gptq = true, .classifier = kspec(6) };
        qc_quantized q = { 0 };
        CHECK_OK(qc_calibrate(m, &w, &o, &q, &e), e);
        CHECK(q.classifier.codes && q.classifier.rows == c->vocab_size && q.classifier.cols == c->dim &&
              q.classifier.bits == 6, "%s: no Q6_K classifier in the result", mc->model);
        CHECK(q.embed.codes && q.embed.bits == 4, "%s: no Q4_K embedding in the result", mc->model);
        if (!q.classifier.codes || !q.embed.codes) {
            qc_quantized_free(&q);
            continue;
        }
        CHECK(c->tied_classifier, "%s: expected a classifier tied to the embedding", mc->model);
        size_t n = (size_t)c->vocab_size * c->dim;
        float *wt = malloc(n * sizeof *wt), *emb = malloc(n * sizeof *emb);
        CHECK_OK(qc_checkpoint_read(m->ck, QC_W_CLASSIFIER, 0, wt, &e), e);
        CHECK_OK(qc_checkpoint_read(m->ck, QC_W_EMBED, 0, emb, &e), e);

        /* the classifier on its calibration inputs */
        double *hc = classifier_hessian(dir, &q, &w);
        float *gq = dequantized(&q.classifier), *rq = rtn_of(wt, c->vocab_size, c->dim, &o.classifier);
        double eg = output_error(wt, gq, c->vocab_size, c->dim, hc), er = output_error(wt, rq, c->vocab_size, c->dim, hc);
        CHECK(eg < er, "%s: the calibrated classifier's output error %.6g is not below round-to-nearest's %.6g",
              mc->model, eg, er);
        printf("    %s: classifier (Q6_K) output error on its calibration inputs: GPTQ %.6g, round-to-nearest %.6g "
               "(%.3f)\n", mc->model, eg, er, eg / er);

        /* the embedding under its readers */
        double *he = embedding_hessian(m, &w);
        float *ge = dequantized(&q.embed), *re = rtn_of(emb, c->vocab_size, c->dim, &o.embed);
        double fg = output_error(emb, ge, c->vocab_size, c->dim, he), fr = output_error(emb, re, c->vocab_size, c->dim, he);
        CHECK(fg < fr, "%s: the calibrated embedding's error in its readers' outputs %.6g is not below "
              "round-to-nearest's %.6g", mc->model, fg, fr);
        printf("    %s: embedding (Q4_K) error in its readers' outputs: GPTQ %.6g, round-to-nearest %.6g (%.3f)\n",
               mc->model, fg, fr, fg / fr);

        /* written and read back: both as solved, the classifier apart from the embedding */
        char gguf[1100];
        snprintf(gguf, sizeof gguf, "%s.gguf", dir);
        qc_weight_source qs = qc_quantized_source(&q);
        qc_gguf_export_opts go = { .float_type = QC_GGUF_F16, .embed_type = QC_GGUF_Q4_K, .output_type = QC_GGUF_Q6_K,
                                   .tok = &tok, .name = mc->model };
        CHECK_OK(qc_gguf_export(&qs, gguf, &go, NULL, &e), e);
        qc_checkpoint *gk = NULL;
        CHECK_OK(qc_checkpoint_open(&gk, gguf, &e), e);
        if (gk) {
            float *back = malloc(n * sizeof *back);
            CHECK_OK(qc_checkpoint_read(gk, QC_W_CLASSIFIER, 0, back, &e), e);
            CHECK(memcmp(back, gq, n * sizeof *back) == 0, "%s: output.weight read back is not the solved classifier",
                  mc->model);
            CHECK_OK(qc_checkpoint_read(gk, QC_W_EMBED, 0, back, &e), e);
            CHECK(memcmp(back, ge, n * sizeof *back) == 0, "%s: token_embd.weight read back is not the solved embedding",
                  mc->model);
            free(back);
            qc_checkpoint_close(gk);
        }
        free(hc), free(gq), free(rq), free(he), free(ge), free(re), free(wt), free(emb);
        qc_quantized_free(&q);
        qc_windows_free(&w);
        qc_tokenizer_free(&tok);
        qc_model_free(m);
    }
}

int main(void) {
    RUN(test_head);
    return check_summary();
}
