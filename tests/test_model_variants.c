/* test_model_variants.c — the Hugging Face configuration variants of the forward pass, each on a
 * synthetic model (random weights the test writes as an HF folder) compared with an independent
 * computation: a naive per-token forward in double precision written here from transformers'
 * definitions, working on the weights as the test wrote them (HF's rotate-half Q/K layout, which
 * qcalib un-permutes on read), with Llama 3's rope_scaling computed in double.
 *   - explicit head_dim (n_heads * head_dim != hidden_size), GQA, rope_theta 500000, untied lm_head;
 *   - tie_word_embeddings: no lm_head tensor, the embedding is the classifier (and bit for bit the
 *     logits of the same model with lm_head written as a copy of the embedding);
 *   - rope_scaling "llama3" (frequencies kept, interpolated and divided all occur), which changes
 *     the logits measurably, and survives an HF export and re-read;
 *   - unsupported options refused naming the config field. */
#include "tests/check.h"

#include <sys/stat.h>

#include "io/io.h"
#include "model/model.h"

enum { DIM = 32, HIDDEN = 48, LAYERS = 2, HEADS = 4, KV_HEADS = 2, HD = 16, VOCAB = 40, SEQ = 48 };
#define QDIM (HEADS * HD)
#define KVDIM (KV_HEADS * HD)
#define LOGIT_TOL 2e-4 /* float pass vs double reference, logits of magnitude ~1 */

typedef struct variant {
    double theta;
    bool tied, lm_head_copy; /* lm_head_copy: untied, lm_head written equal to the embedding */
    double factor, low, high;
    int original; /* rope_scaling llama3 when factor > 0 */
} variant;

/* ---- the synthetic weights, HF layout ---- */

static float *W[QC_W_COUNT][LAYERS];

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float urand(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) / (double)(1 << 24)) - 0.5f;
}

static void make_weights(void) {
    qc_config c = { .dim = DIM, .hidden_dim = HIDDEN, .n_layers = LAYERS, .n_heads = HEADS, .n_kv_heads = KV_HEADS,
                    .head_dim = HD, .vocab_size = VOCAB };
    for (int w = 0; w < QC_W_COUNT; w++)
        for (int l = 0; l < (qc_weight_is_global(w) ? 1 : LAYERS); l++) {
            int rows, cols;
            qc_weight_shape(&c, w, &rows, &cols);
            W[w][l] = malloc((size_t)rows * cols * sizeof(float));
            bool norm = w == QC_W_ATTN_NORM || w == QC_W_FFN_NORM || w == QC_W_FINAL_NORM;
            for (int i = 0; i < rows * cols; i++) W[w][l][i] = norm ? 1.0f + 0.2f * urand() : (w == QC_W_EMBED ? 2.0f : 0.6f) * urand();
        }
}

static void write_model(const char *dir, const variant *v) {
    qc_err e = { "" };
    char path[600];
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"model_type\": \"llama\", \"hidden_size\": %d, \"intermediate_size\": %d, \"num_hidden_layers\": %d,"
               " \"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"head_dim\": %d, \"vocab_size\": %d,"
               " \"max_position_embeddings\": %d, \"rms_norm_eps\": 1e-05, \"rope_theta\": %.1f, \"tie_word_embeddings\": %s",
            DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, HD, VOCAB, SEQ, v->theta, v->tied ? "true" : "false");
    if (v->factor > 0)
        fprintf(f, ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": %g, \"low_freq_factor\": %g, "
                   "\"high_freq_factor\": %g, \"original_max_position_embeddings\": %d}", v->factor, v->low, v->high, v->original);
    fprintf(f, "}\n");
    fclose(f);
    qc_config c = { .dim = DIM, .hidden_dim = HIDDEN, .n_layers = LAYERS, .n_heads = HEADS, .n_kv_heads = KV_HEADS,
                    .head_dim = HD, .vocab_size = VOCAB };
    qc_st_writer *st = qc_st_writer_new(&e);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            snprintf(path, sizeof path, "%s/model.safetensors", dir);
            CHECK_OK(qc_st_writer_begin(st, path, &e), e);
        }
        for (int w = 0; w < QC_W_COUNT; w++)
            for (int l = 0; l < (qc_weight_is_global(w) ? 1 : LAYERS); l++) {
                if (w == QC_W_CLASSIFIER && v->tied) continue;
                int rows, cols;
                qc_weight_shape(&c, w, &rows, &cols);
                char name[128];
                qc_weight_hf_name(w, l, name, sizeof name);
                int64_t shape[2] = { rows, cols };
                const float *data = w == QC_W_CLASSIFIER && v->lm_head_copy ? W[QC_W_EMBED][0] : W[w][l];
                if (pass == 0) CHECK_OK(qc_st_writer_add(st, name, QC_DT_F32, cols == 1 ? 1 : 2, shape, &e), e);
                else CHECK_OK(qc_st_writer_write(st, name, data, (size_t)rows * cols * sizeof(float), &e), e);
            }
    }
    CHECK_OK(qc_st_writer_finish(st, &e), e);
    qc_st_writer_free(st);
}

/* ---- the independent reference: transformers' LlamaModel, one token at a time, doubles ---- */

static double inv_freq(const variant *v, int i) {
    double f = 1.0 / pow(v->theta, 2.0 * i / HD);
    if (v->factor <= 0) return f;
    double wl = 2 * M_PI / f, lo = v->original / v->low, hi = v->original / v->high;
    if (wl < hi) return f;
    if (wl > lo) return f / v->factor;
    double s = (v->original / wl - v->low) / (v->high - v->low);
    return (1 - s) * f / v->factor + s * f;
}

static void rmsnorm(double *o, const double *x, const float *w) {
    double ss = 0;
    for (int j = 0; j < DIM; j++) ss += x[j] * x[j];
    ss = 1.0 / sqrt(ss / DIM + 1e-5);
    for (int j = 0; j < DIM; j++) o[j] = w[j] * x[j] * ss;
}

static void matvec(double *y, const float *w, const double *x, int rows, int cols) {
    for (int i = 0; i < rows; i++) {
        double s = 0;
        for (int j = 0; j < cols; j++) s += (double)w[(size_t)i * cols + j] * x[j];
        y[i] = s;
    }
}

/* rotate-half RoPE of one head (HF layout: pair i is (i, i + HD/2)) */
static void rope_hf(double *h, int pos, const variant *v) {
    for (int i = 0; i < HD / 2; i++) {
        double a = pos * inv_freq(v, i), c = cos(a), s = sin(a), x0 = h[i], x1 = h[i + HD / 2];
        h[i] = x0 * c - x1 * s;
        h[i + HD / 2] = x1 * c + x0 * s;
    }
}

static void reference_logits(const variant *v, const int32_t *tok, int n, double *logits) {
    static double K[LAYERS][SEQ][KVDIM], V[LAYERS][SEQ][KVDIM];
    for (int p = 0; p < n; p++) {
        double x[DIM], xn[DIM], q[QDIM], att[QDIM], o[DIM], g[HIDDEN], u[HIDDEN];
        for (int j = 0; j < DIM; j++) x[j] = W[QC_W_EMBED][0][(size_t)tok[p] * DIM + j];
        for (int l = 0; l < LAYERS; l++) {
            rmsnorm(xn, x, W[QC_W_ATTN_NORM][l]);
            matvec(q, W[QC_W_Q][l], xn, QDIM, DIM);
            matvec(K[l][p], W[QC_W_K][l], xn, KVDIM, DIM);
            matvec(V[l][p], W[QC_W_V][l], xn, KVDIM, DIM);
            for (int h = 0; h < HEADS; h++) rope_hf(q + h * HD, p, v);
            for (int h = 0; h < KV_HEADS; h++) rope_hf(K[l][p] + h * HD, p, v);
            for (int h = 0; h < HEADS; h++) {
                int kh = h / (HEADS / KV_HEADS);
                double sc[SEQ], max = -INFINITY, sum = 0;
                for (int t = 0; t <= p; t++) {
                    double s = 0;
                    for (int i = 0; i < HD; i++) s += q[h * HD + i] * K[l][t][kh * HD + i];
                    sc[t] = s / sqrt((double)HD);
                    max = fmax(max, sc[t]);
                }
                for (int t = 0; t <= p; t++) sum += (sc[t] = exp(sc[t] - max));
                for (int i = 0; i < HD; i++) {
                    double a = 0;
                    for (int t = 0; t <= p; t++) a += sc[t] / sum * V[l][t][kh * HD + i];
                    att[h * HD + i] = a;
                }
            }
            matvec(o, W[QC_W_O][l], att, DIM, QDIM);
            for (int j = 0; j < DIM; j++) x[j] += o[j];
            rmsnorm(xn, x, W[QC_W_FFN_NORM][l]);
            matvec(g, W[QC_W_GATE][l], xn, HIDDEN, DIM);
            matvec(u, W[QC_W_UP][l], xn, HIDDEN, DIM);
            for (int j = 0; j < HIDDEN; j++) g[j] = g[j] / (1 + exp(-g[j])) * u[j];
            matvec(o, W[QC_W_DOWN][l], g, DIM, HIDDEN);
            for (int j = 0; j < DIM; j++) x[j] += o[j];
        }
        rmsnorm(xn, x, W[QC_W_FINAL_NORM][0]);
        matvec(logits + (size_t)p * VOCAB, v->tied || v->lm_head_copy ? W[QC_W_EMBED][0] : W[QC_W_CLASSIFIER][0], xn, VOCAB, DIM);
    }
}

/* ---- qcalib's pass ---- */

static int32_t tokens[SEQ];

static float *qcalib_logits(const char *dir) {
    qc_err e = { "" };
    qc_model *m;
    if (qc_model_open(&m, dir, &e)) {
        CHECK(0, "open %s: %s", dir, e.msg);
        return NULL;
    }
    qc_workspace *ws = qc_workspace_new(&m->cfg, SEQ, SEQ, &e);
    float *lg = malloc((size_t)SEQ * VOCAB * sizeof(float));
    CHECK_OK(qc_model_forward(m, tokens, 1, SEQ, lg, ws, &e), e);
    qc_workspace_free(ws);
    qc_model_free(m);
    return lg;
}

/* Max |qcalib - reference| over every logit of the window. */
static double against_reference(const char *dir, const variant *v, float **keep) {
    static double ref[SEQ * VOCAB];
    reference_logits(v, tokens, SEQ, ref);
    float *lg = qcalib_logits(dir);
    double d = 0;
    for (int i = 0; lg && i < SEQ * VOCAB; i++) d = fmax(d, fabs(lg[i] - ref[i]));
    if (keep) *keep = lg;
    else free(lg);
    return lg ? d : INFINITY;
}

static void test_head_dim_gqa_theta(void) {
    variant v = { .theta = 500000 };
    write_model(tmp_path("v_headdim"), &v);
    double d = against_reference(tmp_path("v_headdim"), &v, NULL);
    printf("    head_dim 16 x 4 heads (hidden 32), 2 KV heads, rope_theta 500000: max |logit diff| %.2e\n", d);
    CHECK(d < LOGIT_TOL, "explicit head_dim / GQA / rope_theta: %.3g", d);
}

static void test_tied(void) {
    variant tied = { .theta = 10000, .tied = true }, copy = { .theta = 10000, .lm_head_copy = true };
    write_model(tmp_path("v_tied"), &tied);
    write_model(tmp_path("v_copy"), &copy);
    float *a, *b;
    double d = against_reference(tmp_path("v_tied"), &tied, &a);
    against_reference(tmp_path("v_copy"), &copy, &b);
    printf("    tie_word_embeddings: max |logit diff| %.2e\n", d);
    CHECK(d < LOGIT_TOL, "tied classifier: %.3g", d);
    CHECK(a && b && memcmp(a, b, (size_t)SEQ * VOCAB * sizeof(float)) == 0, "tied = untied with lm_head a copy of the embedding, bit for bit");
    free(a), free(b);
}

static void test_llama3_rope_scaling(void) {
    variant v = { .theta = 10000, .factor = 8, .low = 1, .high = 4, .original = 256 };
    variant plain = v;
    plain.factor = 0;
    /* wavelengths 2π·10000^(2i/16): 6.3, 20, 63 kept (< 256/4), 199 interpolated, >= 628 divided (> 256/1) */
    int kept = 0, mid = 0, divided = 0;
    for (int i = 0; i < HD / 2; i++) {
        double f0 = 1.0 / pow(10000, 2.0 * i / HD), f = inv_freq(&v, i);
        kept += f == f0, divided += fabs(f - f0 / 8) < 1e-15, mid += f != f0 && fabs(f - f0 / 8) >= 1e-15;
    }
    CHECK(kept == 3 && mid == 1 && divided == 4, "frequency bands %d kept, %d interpolated, %d divided", kept, mid, divided);
    write_model(tmp_path("v_llama3"), &v);
    float *lg;
    double d = against_reference(tmp_path("v_llama3"), &v, &lg);
    static double unscaled[SEQ * VOCAB];
    reference_logits(&plain, tokens, SEQ, unscaled);
    double effect = 0;
    for (int i = 0; lg && i < SEQ * VOCAB; i++) effect = fmax(effect, fabs(lg[i] - unscaled[i]));
    printf("    rope_scaling llama3: max |logit diff| %.2e (the scaling moves logits by up to %.2e)\n", d, effect);
    CHECK(d < LOGIT_TOL, "llama3 rope scaling: %.3g", d);
    CHECK(effect > 100 * LOGIT_TOL, "the scaling changes the logits (%.3g)", effect);

    /* HF export and re-read: rope_scaling kept, the same logits bit for bit */
    qc_err e = { "" };
    qc_checkpoint *ck;
    CHECK_OK(qc_checkpoint_open(&ck, tmp_path("v_llama3"), &e), e);
    qc_weight_source src = qc_checkpoint_source(ck);
    qc_hf_export_opts o = { QC_DT_F32, 0 };
    CHECK_OK(qc_export_hf(&src, tmp_path("v_llama3_out"), &o, true, NULL, &e), e);
    qc_checkpoint_close(ck);
    float *lg2 = qcalib_logits(tmp_path("v_llama3_out"));
    CHECK(lg && lg2 && memcmp(lg, lg2, (size_t)SEQ * VOCAB * sizeof(float)) == 0, "exported HF folder: same logits");
    free(lg), free(lg2);
}

static void test_refusals(void) {
    static const struct { const char *json, *needle; } cases[] = {
        { "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4}", "rope_scaling.rope_type \"yarn\" is not supported" },
        { "\"rope_scaling\": {\"type\": \"llama3\", \"factor\": 8}", "rope_scaling.low_freq_factor must be a number" },
        { "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8, \"low_freq_factor\": 4, \"high_freq_factor\": 1, "
          "\"original_max_position_embeddings\": 8192}", "0 < low_freq_factor < high_freq_factor" },
        { "\"attention_bias\": true", "attention_bias true is not supported" },
    };
    qc_err e = { "" };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[600];
        mkdir(tmp_path("refused"), 0755);
        snprintf(path, sizeof path, "%s/config.json", tmp_path("refused"));
        FILE *f = fopen(path, "w");
        fprintf(f, "{\"model_type\": \"llama\", \"hidden_size\": 32, \"intermediate_size\": 48, \"num_hidden_layers\": 1, "
                   "\"num_attention_heads\": 4, \"vocab_size\": 40, %s}", cases[i].json);
        fclose(f);
        qc_checkpoint *ck = NULL;
        CHECK_FAILS(qc_checkpoint_open(&ck, tmp_path("refused"), &e), e, cases[i].needle);
        qc_checkpoint_close(ck);
    }
}

int main(void) {
    make_weights();
    for (int i = 0; i < SEQ; i++) tokens[i] = (int32_t)((i * 7 + 3) % VOCAB);
    RUN(test_head_dim_gqa_theta);
    RUN(test_tied);
    RUN(test_llama3_rope_scaling);
    RUN(test_refusals);
    for (int w = 0; w < QC_W_COUNT; w++)
        for (int l = 0; l < LAYERS; l++) free(W[w][l]);
    return check_summary();
}
