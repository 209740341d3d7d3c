/* unit/model_variants.c — the Hugging Face configuration variants of the forward pass, each on a
 * synthetic model (random weights the test writes as an HF folder) compared with an independent
 * computation: a naive per-token forward in double precision written here from transformers'
 * definitions, working on the weights as the test wrote them (HF's rotate-half Q/K layout, which
 * qcalib un-permutes on read), with Llama 3's rope_scaling computed in double.
 *   - explicit head_dim (n_heads * head_dim != hidden_size), GQA, rope_theta 500000, untied lm_head;
 *   - tie_word_embeddings: no lm_head tensor, the embedding is the classifier (and bit for bit the
 *     logits of the same model with lm_head written as a copy of the embedding);
 *   - rope_scaling "llama3" (frequencies kept, interpolated and divided all occur), which changes
 *     the logits measurably, and survives an HF export and re-read;
 *   - attention biases: Qwen2's q/k/v and Llama's attention_bias (q/k/v/o), against the reference;
 *     two properties of attention checked on the block itself (a v bias alone adds W_o·b_v to
 *     every output, as the attention weights sum to 1; a k bias alone changes the output, as it is
 *     rotated with the key: added after RoPE it would shift all of a query's scores by the same
 *     q·b_k, which softmax ignores); quantized (RTN, GPTQ) and written as GPTQ, GGUF and fake
 *     (F32 HF) files, the biases read back as written and the files' logits equal the solver's
 *     in-memory model; llama2.c's formats refuse them;
 *   - unsupported options refused naming the config field. */
#include "tests/bounds.h"
#include "tests/check.h"

#include <sys/stat.h>

#include "calib/calib.h"
#include "gptq/gptq.h"
#include "io/io.h"
#include "model/model.h"

enum { DIM = 32, HIDDEN = 48, LAYERS = 2, HEADS = 4, KV_HEADS = 2, HD = 16, VOCAB = 40, SEQ = 48 };
#define QDIM (HEADS * HD)
#define KVDIM (KV_HEADS * HD)

typedef struct variant {
    double theta;
    bool tied, lm_head_copy; /* lm_head_copy: untied, lm_head written equal to the embedding */
    double factor, low, high;
    int original; /* rope_scaling llama3 when factor > 0 */
    bool qkv_bias, o_bias; /* qkv only: model_type qwen2; all four: llama's attention_bias */
} variant;

/* ---- the synthetic weights, HF layout ---- */

static float *W[QC_W_COUNT][LAYERS];

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float urand(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) / (double)(1 << 24)) - 0.5f;
}

/* The test model's config; with every bias when biases is set. */
static qc_config test_config(bool biases) {
    return (qc_config){ .dim = DIM, .hidden_dim = HIDDEN, .n_layers = LAYERS, .n_heads = HEADS, .n_kv_heads = KV_HEADS,
                        .head_dim = HD, .vocab_size = VOCAB, .attn_qkv_bias = biases, .attn_o_bias = biases };
}

static void make_weights(void) {
    qc_config c = test_config(true);
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
    fprintf(f, "{\"model_type\": \"%s\", \"hidden_size\": %d, \"intermediate_size\": %d, \"num_hidden_layers\": %d,"
               " \"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"head_dim\": %d, \"vocab_size\": %d,"
               " \"max_position_embeddings\": %d, \"rms_norm_eps\": 1e-05, \"rope_theta\": %.1f, \"tie_word_embeddings\": %s",
            v->qkv_bias && !v->o_bias ? "qwen2" : "llama", DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, HD, VOCAB, SEQ, v->theta,
            v->tied ? "true" : "false");
    if (v->o_bias) fprintf(f, ", \"attention_bias\": true");
    if (v->factor > 0)
        fprintf(f, ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": %g, \"low_freq_factor\": %g, "
                   "\"high_freq_factor\": %g, \"original_max_position_embeddings\": %d}", v->factor, v->low, v->high, v->original);
    fprintf(f, "}\n");
    fclose(f);
    qc_config c = test_config(false);
    c.attn_qkv_bias = v->qkv_bias;
    c.attn_o_bias = v->o_bias;
    qc_safetensors_writer *st = qc_safetensors_writer_new(&e);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            snprintf(path, sizeof path, "%s/model.safetensors", dir);
            CHECK_OK(qc_safetensors_writer_begin(st, path, &e), e);
        }
        for (int w = 0; w < QC_W_COUNT; w++)
            for (int l = 0; l < (qc_weight_is_global(w) ? 1 : LAYERS); l++) {
                if ((w == QC_W_CLASSIFIER && v->tied) || !qc_weight_present(&c, w)) continue;
                int rows, cols;
                qc_weight_shape(&c, w, &rows, &cols);
                char name[128];
                qc_weight_hf_name(w, l, name, sizeof name);
                int64_t shape[2] = { rows, cols };
                const float *data = w == QC_W_CLASSIFIER && v->lm_head_copy ? W[QC_W_EMBED][0] : W[w][l];
                if (pass == 0) CHECK_OK(qc_safetensors_writer_add(st, name, QC_DT_F32, cols == 1 ? 1 : 2, shape, &e), e);
                else CHECK_OK(qc_safetensors_writer_write(st, name, data, (size_t)rows * cols * sizeof(float), &e), e);
            }
    }
    CHECK_OK(qc_safetensors_writer_finish(st, &e), e);
    qc_safetensors_writer_free(st);
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
            for (int i = 0; i < QDIM && v->qkv_bias; i++) q[i] += W[QC_W_Q_BIAS][l][i]; /* before RoPE */
            for (int i = 0; i < KVDIM && v->qkv_bias; i++)
                K[l][p][i] += W[QC_W_K_BIAS][l][i], V[l][p][i] += W[QC_W_V_BIAS][l][i];
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
            for (int j = 0; j < DIM; j++) x[j] += o[j] + (v->o_bias ? W[QC_W_O_BIAS][l][j] : 0.0);
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

/* The logits of the model in dir over tokens, with its linears from src when not NULL and,
 * with pad, its FFN padded to a multiple of 32 as for a model quantized to GGUF. */
static float *qcalib_logits(const char *dir, const qc_weight_source *src, bool pad) {
    qc_err e = { "" };
    qc_model *m;
    if (qc_model_open(&m, dir, &e)) {
        CHECK(0, "open %s: %s", dir, e.msg);
        return NULL;
    }
    if (pad) CHECK_OK(qc_model_pad_ffn(m, 32, &e), e);
    if (src) qc_model_set_linears(m, src);
    qc_workspace *ws = qc_workspace_new(&m->cfg, SEQ, SEQ, &e);
    float *lg = malloc((size_t)SEQ * VOCAB * sizeof(float));
    CHECK_OK(qc_model_forward(m, tokens, 1, SEQ, lg, ws, &e), e);
    qc_workspace_free(ws);
    qc_model_free(m);
    return lg;
}

/* Max |qcalib - reference| over every logit of the window; *tol, how far the fp32 pass may lie
 * from the double reference (bounds.h: gamma of the forward's chain of sums, times the largest
 * |logit|). */
static double against_reference(const char *dir, const variant *v, float **keep, double *tol) {
    static double ref[SEQ * VOCAB];
    reference_logits(v, tokens, SEQ, ref);
    float *lg = qcalib_logits(dir, NULL, false);
    double d = 0, scale = 0;
    for (int i = 0; i < SEQ * VOCAB; i++) scale = fmax(scale, fabs(ref[i]));
    qc_config c = test_config(v->qkv_bias);
    *tol = fp32_gamma_prob(forward_chain_length(&c, SEQ)) * scale;
    for (int i = 0; lg && i < SEQ * VOCAB; i++) d = fmax(d, fabs(lg[i] - ref[i]));
    if (keep) *keep = lg;
    else free(lg);
    return lg ? d : INFINITY;
}

static void test_head_dim_gqa_theta(void) {
    variant v = { .theta = 500000 };
    write_model(tmp_path("v_headdim"), &v);
    double tol, d = against_reference(tmp_path("v_headdim"), &v, NULL, &tol);
    printf("    head_dim 16 x 4 heads (hidden 32), 2 KV heads, rope_theta 500000: max |logit diff| %.2e\n", d);
    CHECK(d <= tol, "explicit head_dim / GQA / rope_theta: %.3g, fp32 bound %.3g", d, tol);
}

static void test_tied(void) {
    variant tied = { .theta = 10000, .tied = true }, copy = { .theta = 10000, .lm_head_copy = true };
    write_model(tmp_path("v_tied"), &tied);
    write_model(tmp_path("v_copy"), &copy);
    float *a, *b;
    double tol, tol_copy, d = against_reference(tmp_path("v_tied"), &tied, &a, &tol);
    against_reference(tmp_path("v_copy"), &copy, &b, &tol_copy);
    printf("    tie_word_embeddings: max |logit diff| %.2e\n", d);
    CHECK(d <= tol, "tied classifier: %.3g, fp32 bound %.3g", d, tol);
    CHECK(a && b && memcmp(a, b, (size_t)SEQ * VOCAB * sizeof(float)) == 0, "tied = untied with lm_head a copy of the embedding, bit for bit");
    free(a), free(b);
}

/* How far logits lg (NULL: none) are from the reference logits of variant `without` (the
 * same weights without the option under test): the option's effect. */
static double effect_against(const variant *without, const float *lg) {
    static double ref[SEQ * VOCAB];
    reference_logits(without, tokens, SEQ, ref);
    double effect = 0;
    for (int i = 0; lg && i < SEQ * VOCAB; i++) effect = fmax(effect, fabs(lg[i] - ref[i]));
    return effect;
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
    double tol, d = against_reference(tmp_path("v_llama3"), &v, &lg, &tol);
    double effect = effect_against(&plain, lg);
    printf("    rope_scaling llama3: max |logit diff| %.2e (the scaling moves logits by up to %.2e)\n", d, effect);
    CHECK(d <= tol, "llama3 rope scaling: %.3g, fp32 bound %.3g", d, tol);
    CHECK(effect > 100 * tol, "the scaling changes the logits (%.3g) far beyond rounding (%.3g)", effect, tol);

    /* HF export and re-read: rope_scaling kept, the same logits bit for bit */
    qc_err e = { "" };
    qc_checkpoint *ck;
    CHECK_OK(qc_checkpoint_open(&ck, tmp_path("v_llama3"), &e), e);
    qc_weight_source src = qc_checkpoint_source(ck);
    qc_hf_export_opts o = { QC_DT_F32, 0 };
    CHECK_OK(qc_hf_export(&src, tmp_path("v_llama3_out"), &o, true, NULL, &e), e);
    qc_checkpoint_close(ck);
    float *lg2 = qcalib_logits(tmp_path("v_llama3_out"), NULL, false);
    CHECK(lg && lg2 && memcmp(lg, lg2, (size_t)SEQ * VOCAB * sizeof(float)) == 0, "exported HF folder: same logits");
    free(lg), free(lg2);
}

static void test_attention_biases(void) {
    variant qwen2 = { .theta = 10000, .qkv_bias = true }, all = { .theta = 10000, .qkv_bias = true, .o_bias = true };
    variant plain = { .theta = 10000 };
    write_model(tmp_path("v_qwen2"), &qwen2);
    write_model(tmp_path("v_attn_bias"), &all);
    double tq, ta, dq = against_reference(tmp_path("v_qwen2"), &qwen2, NULL, &tq);
    float *lg;
    double da = against_reference(tmp_path("v_attn_bias"), &all, &lg, &ta);
    double effect = effect_against(&plain, lg);
    free(lg);
    printf("    qwen2 q/k/v biases: max |logit diff| %.2e; attention_bias q/k/v/o: %.2e (the biases move logits by up to %.2e)\n",
           dq, da, effect);
    CHECK(dq <= tq, "qwen2 biases: %.3g, fp32 bound %.3g", dq, tq);
    CHECK(da <= ta, "attention_bias: %.3g, fp32 bound %.3g", da, ta);
    CHECK(effect > 100 * ta, "the biases change the logits (%.3g) far beyond rounding (%.3g)", effect, ta);
}

/* Max |a - b| over n values. */
static double max_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

/* Two properties of attention, on block 0's attention sub-block with one bias at a time: a v
 * bias adds b_v to every value, so (attention weights summing to 1) W_o·b_v to every output; a
 * k bias goes in before RoPE (as transformers' k_proj(x) includes it), so the key's rotation
 * turns it into a position-dependent term that changes the output. Added after RoPE it would
 * add the same q·b_k to all of a query's scores and change nothing (softmax): that is the
 * mistake the check catches. */
static void test_bias_properties(void) {
    qc_err e = { "" };
    qc_checkpoint *ck;
    CHECK_OK(qc_checkpoint_open(&ck, tmp_path("v_attn_bias"), &e), e);
    if (!ck) return;
    const qc_config *c = qc_checkpoint_config(ck);
    qc_block full;
    CHECK_OK(qc_block_load(ck, 0, &full, &e), e);
    qc_workspace *ws = qc_workspace_new(c, SEQ, SEQ, &e);
    static float xn[SEQ * DIM], none[SEQ * DIM], with[SEQ * DIM];
    for (int i = 0; i < SEQ * DIM; i++) xn[i] = 2.0f * urand();
    qc_block b = full;
    memset(b.bias, 0, sizeof b.bias);
    CHECK_OK(qc_subblock_forward(c, &b, 0, QC_SUB_ATTENTION, xn, 1, SEQ, none, ws, &e), e);

    b.bias[QC_LIN_K] = full.bias[QC_LIN_K];
    CHECK_OK(qc_subblock_forward(c, &b, 0, QC_SUB_ATTENTION, xn, 1, SEQ, with, ws, &e), e);
    double dk = max_diff(with, none, SEQ * DIM);

    b.bias[QC_LIN_K] = NULL, b.bias[QC_LIN_V] = full.bias[QC_LIN_V];
    CHECK_OK(qc_subblock_forward(c, &b, 0, QC_SUB_ATTENTION, xn, 1, SEQ, with, ws, &e), e);
    double wo_bv[DIM], dv = 0; /* V and O rows are in the same order in HF's layout and qcalib's */
    for (int j = 0; j < DIM; j++) {
        wo_bv[j] = 0;
        for (int i = 0; i < QDIM; i++) /* query head i / HD reads key/value head i / HD / (HEADS / KV_HEADS) */
            wo_bv[j] += (double)W[QC_W_O][0][(size_t)j * QDIM + i] * W[QC_W_V_BIAS][0][i / HD / (HEADS / KV_HEADS) * HD + i % HD];
    }
    for (int t = 0; t < SEQ; t++)
        for (int j = 0; j < DIM; j++) dv = fmax(dv, fabs(with[t * DIM + j] - (none[t * DIM + j] + wo_bv[j])));
    /* Two fp32 routes through v (DIM), the scores (HD), softmax's sum and the weighted values
     * (SEQ each) and o (QDIM), on outputs of these magnitudes (bounds.h). */
    double tol = 2 * fp32_gamma(DIM + HD + 2.0 * SEQ + QDIM) * (max_abs(with, SEQ * DIM) + max_abs(none, SEQ * DIM));

    b.bias[QC_LIN_V] = NULL, b.bias[QC_LIN_Q] = full.bias[QC_LIN_Q];
    CHECK_OK(qc_subblock_forward(c, &b, 0, QC_SUB_ATTENTION, xn, 1, SEQ, with, ws, &e), e);
    double dq = max_diff(with, none, SEQ * DIM);
    printf("    v bias alone: %.2e from the output + W_o·b_v; k bias alone (rotated with the key) moves the output by "
           "%.2e, q bias alone by %.2e\n", dv, dk, dq);
    CHECK(dk > 100 * tol, "a k bias before RoPE changes attention (%.3g) far beyond rounding (%.3g)", dk, tol);
    CHECK(dv <= tol, "a v bias adds W_o·b_v: off by %.3g, fp32 bound %.3g", dv, tol);
    CHECK(dq > 100 * tol, "a q bias changes attention (%.3g) far beyond rounding (%.3g)", dq, tol);
    qc_workspace_free(ws);
    qc_block_free(&full);
    qc_checkpoint_close(ck);
}

/* ---- quantized, written, read back ---- */

/* The logits of a model padded as the quantized one is (its FFN padded for GGUF). */
static float *model_logits(const char *dir, const qc_weight_source *src) { return qcalib_logits(dir, src, true); }

/* Every bias of the written model equals the original's, rounded to F16 when f16. */
static void check_biases(const char *orig, const char *written, bool f16, const char *what) {
    qc_err e = { "" };
    qc_checkpoint *a, *b;
    CHECK_OK(qc_checkpoint_open(&a, orig, &e), e);
    CHECK_OK(qc_checkpoint_open(&b, written, &e), e);
    if (!a || !b) {
        qc_checkpoint_close(a), qc_checkpoint_close(b);
        return;
    }
    const qc_config *c = qc_checkpoint_config(a), *d = qc_checkpoint_config(b);
    CHECK(d->attn_qkv_bias == c->attn_qkv_bias && d->attn_o_bias == c->attn_o_bias, "%s: the config keeps the biases", what);
    int bad = 0, n = 0;
    for (qc_weight w = QC_W_Q_BIAS; w <= QC_W_O_BIAS; w++)
        for (int l = 0; l < LAYERS && qc_weight_present(c, w) && qc_weight_present(d, w); l++, n++) {
            float x[QDIM], y[QDIM];
            int rows, cols;
            qc_weight_shape(c, w, &rows, &cols);
            CHECK_OK(qc_checkpoint_read(a, w, l, x, &e), e);
            CHECK_OK(qc_checkpoint_read(b, w, l, y, &e), e);
            for (int i = 0; i < rows; i++) {
                float want = f16 ? qc_f16_to_f32(qc_f32_to_f16(x[i])) : x[i];
                bad += memcmp(&want, &y[i], sizeof want) != 0;
            }
        }
    CHECK(bad == 0 && n == (c->attn_o_bias ? 4 : 3) * LAYERS, "%s: %d of %d biases' values differ", what, bad, n);
    qc_checkpoint_close(a);
    qc_checkpoint_close(b);
}

/* A llama2.c-style vocabulary of VOCAB distinct pieces, for the GGUF writer. */
static void test_tokenizer(qc_tokenizer *t) {
    char text[VOCAB][8];
    const char *pieces[VOCAB];
    int lens[VOCAB];
    qc_err e = { "" };
    for (int i = 0; i < VOCAB; i++) {
        snprintf(text[i], sizeof text[i], i == 0 ? "<unk>" : i == 1 ? "<s>" : i == 2 ? "</s>" : "%c", '0' + i);
        pieces[i] = text[i], lens[i] = (int)strlen(text[i]);
    }
    CHECK_OK(qc_tokenizer_from_vocab(t, VOCAB, pieces, lens, NULL, 1, 2, "test vocabulary", &e), e);
}

/* The written model `out` (of the model in dir) gives exactly the in-memory logits mem. */
static void same_logits(const char *dir, const char *out, const char *what, const float *mem) {
    float *lg = model_logits(out, NULL);
    double d = mem && lg ? max_diff(lg, mem, (size_t)SEQ * VOCAB) : INFINITY;
    printf("    %s -> %s: max |logit diff| to the in-memory model %.2e\n", dir, what, d);
    CHECK(d == 0, "%s: the file's logits differ from the in-memory model's by %.3g", what, d);
    free(lg);
}

/* The model at dir quantized by method with spec, written in each format that can hold spec's
 * weights; each file's logits equal the in-memory model's (the original file with the solver's
 * linears) bit for bit, and its biases are the original's. */
static void round_trip(const char *dir, qc_method method, qc_quant_spec spec, bool gguf) {
    qc_err e = { "" };
    qc_model *m;
    CHECK_OK(qc_model_open(&m, dir, &e), e);
    if (!m) return;
    CHECK_OK(qc_model_pad_ffn(m, 32, &e), e);
    static int32_t calib[4 * SEQ];
    for (int i = 0; i < 4 * SEQ; i++) calib[i] = (int32_t)((i * 13 + 5) % VOCAB);
    qc_windows w = { .n = 4, .seqlen = SEQ, .tokens = calib };
    qc_calib_opts o = { .method = method, .spec = spec, .gptq = qc_gptq_defaults(), .true_sequential = true };
    qc_quantized q, rq;
    CHECK_OK(qc_calibrate(m, &w, &o, &q, &e), e);
    /* recomputing each site's inputs instead of keeping the block's activations between sites
     * gives the same bits (tests/unit/calib_stages.c), here with biases and heads wider than dim */
    o.recompute = true;
    CHECK_OK(qc_calibrate(m, &w, &o, &rq, &e), e);
    int differ = 0;
    for (int i = 0; q.res && rq.res && i < LAYERS * QC_LIN_COUNT; i++) {
        const qc_qweight *a = &q.res[i], *b = &rq.res[i];
        size_t ng = (size_t)a->rows * a->ngroups * sizeof(float);
        differ += memcmp(a->codes, b->codes, (size_t)a->rows * a->cols) || memcmp(a->scales, b->scales, ng) ||
                  memcmp(a->zeros, b->zeros, ng);
    }
    CHECK(q.res && rq.res && differ == 0, "%s: %d results differ between kept and recomputed stages",
          qc_method_name(method), differ);
    qc_quantized_free(&rq);
    qc_weight_source src = qc_quantized_source(&q);
    float *mem = model_logits(dir, &src);
    char out[700], what[64];
    const char *name = qc_method_name(method);
    if (gguf) {
        qc_tokenizer tok;
        test_tokenizer(&tok);
        snprintf(out, sizeof out, "%s_%s.gguf", dir, name);
        qc_gguf_export_opts go = { .float_type = QC_GGUF_F32, .embed_type = QC_GGUF_F32, .output_type = QC_GGUF_F32,
                                   .tok = &tok, .name = "bias test" };
        CHECK_OK(qc_gguf_export(&src, out, &go, NULL, &e), e);
        snprintf(what, sizeof what, "%s, GGUF", name);
        check_biases(dir, out, false, what);
        same_logits(dir, out, what, mem);
        qc_tokenizer_free(&tok);
    } else {
        snprintf(out, sizeof out, "%s_%s_fake", dir, name);
        qc_hf_export_opts ho = { QC_DT_F32, 0 };
        CHECK_OK(qc_hf_export(&src, out, &ho, true, NULL, &e), e);
        snprintf(what, sizeof what, "%s, fake (F32 HF)", name);
        check_biases(dir, out, false, what);
        same_logits(dir, out, what, mem);

        /* GPTQ stores every other tensor in F16: the biases as F16, the logits as --verify checks them */
        snprintf(out, sizeof out, "%s_%s_gptq", dir, name);
        qc_outdir od;
        qc_gptq_export_opts go = { 1, 0.01f, false, false, true };
        CHECK_OK(qc_outdir_open(&od, out, true, &e), e);
        CHECK_OK(qc_gptq_export_into(&src, &od, &go, NULL, &e), e);
        CHECK_OK(qc_outdir_commit(&od, &e), e);
        snprintf(what, sizeof what, "%s, GPTQ", name);
        check_biases(dir, out, true, what);
        float *file = model_logits(out, NULL), *linears = model_logits(out, &src);
        double d = file && linears ? max_diff(file, linears, (size_t)SEQ * VOCAB) : INFINITY;
        double near = file && mem ? max_diff(file, mem, (size_t)SEQ * VOCAB) : INFINITY;
        printf("    %s -> %s: max |logit diff| to its own tensors with the solver's linears %.2e, to the in-memory "
               "model (F32 biases, norms, embedding) %.2e\n", dir, what, d, near);
        CHECK(d == 0, "%s: the file's linears differ from the solver's (%.3g)", what, d);
        /* F16 moves each stored value by at most 2^-11 of it: the embedding, per layer two
         * norms and four biases, the final norm; to first order each rounding moves the logits
         * by at most that fraction of their scale */
        double f16_tol = (2 + 6.0 * LAYERS) * 0x1p-11 * (mem ? max_abs(mem, (size_t)SEQ * VOCAB) : 0);
        CHECK(near <= f16_tol, "%s: F16 rounding moves the logits by %.3g (bound %.3g)", what, near, f16_tol);
        free(file), free(linears);

        snprintf(out, sizeof out, "%s_%s.bin", dir, name);
        CHECK_FAILS(qc_llama2c_q8_export(&src, out, 32, NULL, &e), e, "runq.c has no attention biases");
        CHECK_FAILS(qc_llama2c_export(&src, out, NULL, &e), e, "run.c has no attention biases");
    }
    free(mem);
    qc_quantized_free(&q);
    qc_model_free(m);
}

static void test_bias_round_trips(void) {
    const qc_quant_spec hf = { .bits = 4, .groupsize = 32, .f16_scales = true };
    const qc_quant_spec q4_0 = { .bits = 4, .groupsize = 32, .sym = true, .f16_scales = true, .signed_scale = true };
    const char *dirs[2] = { tmp_path("v_qwen2"), tmp_path("v_attn_bias") };
    for (int i = 0; i < 2; i++) {
        char dir[600];
        snprintf(dir, sizeof dir, "%s", dirs[i]);
        for (int k = 0; k < 2; k++) {
            qc_method method = k ? QC_METHOD_GPTQ : QC_METHOD_RTN;
            round_trip(dir, method, hf, false);
            round_trip(dir, method, q4_0, true);
        }
    }
}

static void test_refusals(void) {
    static const struct { const char *json, *needle; } cases[] = {
        { "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4}", "rope_scaling.rope_type \"yarn\" is not supported" },
        { "\"rope_scaling\": {\"type\": \"llama3\", \"factor\": 8}", "rope_scaling.low_freq_factor must be a number" },
        { "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8, \"low_freq_factor\": 4, \"high_freq_factor\": 1, "
          "\"original_max_position_embeddings\": 8192}", "0 < low_freq_factor < high_freq_factor" },
        { "\"mlp_bias\": true", "mlp_bias true is not supported" },
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
    RUN(test_attention_biases);
    RUN(test_bias_properties);
    RUN(test_bias_round_trips);
    RUN(test_refusals);
    for (int w = 0; w < QC_W_COUNT; w++)
        for (int l = 0; l < LAYERS; l++) free(W[w][l]);
    return check_summary();
}
