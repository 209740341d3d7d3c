/* unit/io_gguf_mix.c — GGUF K-quant output: llama.cpp's mixes as io/gguf_mix.c's table gives
 * them (each mix's attn_v, ffn_down, attn_output, output and token_embd types on model shapes,
 * derived here from llama.cpp's rules as its llama-quant.cpp states them, and its shape
 * fallbacks); a K-quant solver result (quant.h's qc_qweight with super-blocks) on real
 * weights: round-to-nearest gives exactly the reference quantizer's blocks, and
 * qc_qweight_dequantize exactly what the GGUF decoder gives, bit for bit (and --target-bpw
 * counts each K-quant at its blocks' bytes); the writer's
 * refusal of NaN / Inf factors and of inconsistent groups, naming the tensor; and whole runs
 * through job/: a synthetic 256-wide model as Q4_K_M with a recipe rule overriding one
 * tensor (every K tensor the reference quantizer's bytes of the weights read), stories260K
 * (64/172 wide) as Q3_K_S falling back to Q4_0 and Q8_0 (reported in summary.json) and as
 * Q4_K_M falling back to Q5_0 and Q8_0, by round-to-nearest and by AWQ; a synthetic 80-wide
 * model, whose rows not even the fallback's 32-blocks tile, refused naming the tensor and
 * `qcalib convert --pad-to 256`, leaving nothing behind. */
#include "io/gguf.h"
#include "io/gguf_kquants.h"
#include "job/job.h"
#include "tests/check.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <unistd.h>

/* ---- the mix table ---- */

/* llama.cpp's use_more_bits, written again from its source's statement. */
static bool more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* What llama_tensor_get_type_impl gives a dense Llama's attn_v / ffn_down / attn_output of
 * layer i of n under the mix (K-quant ftypes only), before shape fallbacks. */
static qc_gguf_type expected(const char *mix, qc_weight w, int i, const qc_config *c) {
    int n = c->n_layers, gqa = c->n_heads / c->n_kv_heads;
    bool is70b = n == 80 && c->n_heads != c->n_kv_heads;
    qc_gguf_type def = !strncmp(mix, "Q2", 2) ? QC_GGUF_Q2_K : !strncmp(mix, "Q3", 2) ? QC_GGUF_Q3_K
                     : !strncmp(mix, "Q4", 2) ? QC_GGUF_Q4_K : !strncmp(mix, "Q5", 2) ? QC_GGUF_Q5_K : QC_GGUF_Q6_K;
    qc_gguf_type t = def;
    if (w == QC_W_V) {
        if (!strcmp(mix, "Q2_K")) t = gqa >= 4 ? QC_GGUF_Q4_K : QC_GGUF_Q3_K;
        else if (!strcmp(mix, "Q3_K_M")) t = i < 2 ? QC_GGUF_Q5_K : QC_GGUF_Q4_K;
        else if (!strcmp(mix, "Q3_K_L")) t = QC_GGUF_Q5_K;
        else if ((!strcmp(mix, "Q4_K_M") || !strcmp(mix, "Q5_K_M")) && more_bits(i, n)) t = QC_GGUF_Q6_K;
        else if (!strcmp(mix, "Q4_K_S") && i < 4) t = QC_GGUF_Q5_K;
        if (is70b && (t == QC_GGUF_Q3_K || t == QC_GGUF_Q4_K)) t = QC_GGUF_Q5_K;
    } else if (w == QC_W_DOWN) {
        if (!strcmp(mix, "Q2_K")) t = QC_GGUF_Q3_K;
        else if (!strcmp(mix, "Q3_K_M")) t = i < n / 16 ? QC_GGUF_Q5_K : QC_GGUF_Q4_K;
        else if (!strcmp(mix, "Q3_K_L")) t = QC_GGUF_Q5_K;
        else if (!strcmp(mix, "Q4_K_M") && more_bits(i, n)) t = QC_GGUF_Q6_K;
        else if (!strcmp(mix, "Q5_K_M") && more_bits(i, n)) t = QC_GGUF_Q6_K;
        else if (!strcmp(mix, "Q4_K_S") && i < n / 8) t = QC_GGUF_Q5_K;
    } else if (w == QC_W_O) {
        if (!strcmp(mix, "Q2_K")) t = QC_GGUF_Q3_K;
        else if (!strcmp(mix, "Q3_K_M")) t = QC_GGUF_Q4_K;
        else if (!strcmp(mix, "Q3_K_L")) t = QC_GGUF_Q5_K;
    }
    return t;
}

static void check_shape(const qc_config *c, const char *label) {
    static const char *const mixes[] = { "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K" };
    static const int ftypes[] = { 10, 11, 12, 13, 14, 15, 16, 17, 18 };
    for (size_t k = 0; k < sizeof mixes / sizeof *mixes; k++) {
        char lower[16];
        for (size_t i = 0; i <= strlen(mixes[k]); i++) lower[i] = (char)tolower((unsigned char)mixes[k][i]);
        const qc_gguf_mix *m = qc_gguf_mix_find(lower);
        CHECK(m && !strcmp(qc_gguf_mix_name(m), mixes[k]) && qc_gguf_mix_ftype(m) == ftypes[k], "%s: found as %s",
              mixes[k], lower);
        if (!m) continue;
        qc_gguf_type def = expected(mixes[k], QC_W_Q, 0, c);
        CHECK(qc_gguf_mix_default(m) == def, "%s's default", mixes[k]);
        qc_gguf_type out = c->dim % 256 ? QC_GGUF_Q8_0 : QC_GGUF_Q6_K;
        CHECK(qc_gguf_mix_type(m, c, QC_W_CLASSIFIER, 0) == out, "%s %s: output %s", label, mixes[k],
              qc_gguf_type_name(qc_gguf_mix_type(m, c, QC_W_CLASSIFIER, 0)));
        CHECK(qc_gguf_mix_type(m, c, QC_W_EMBED, 0) == def, "%s %s: token_embd", label, mixes[k]);
        for (int l = 0; l < c->n_layers; l++)
            for (int lin = 0; lin < QC_LIN_COUNT; lin++) {
                qc_weight w = qc_linear_weight((qc_linear)lin);
                qc_gguf_type got = qc_gguf_mix_type(m, c, w, l), want = expected(mixes[k], w, l, c);
                CHECK(got == want, "%s %s: block %d %s is %s, llama.cpp's rule gives %s", label, mixes[k], l,
                      qc_weight_short_name(w), qc_gguf_type_name(got), qc_gguf_type_name(want));
            }
    }
}

static void test_mix_table(void) {
    /* Llama-2-7B-like (multi-head), Llama-3-8B-like (n_gqa 4), a 70B (80 blocks, n_gqa 8), and a
     * 64-wide model whose output cannot be Q6_K */
    qc_config a = { .dim = 4096, .hidden_dim = 11008, .n_layers = 32, .n_heads = 32, .n_kv_heads = 32, .head_dim = 128 };
    qc_config b = a, big = a, narrow = a;
    b.n_kv_heads = 8, b.hidden_dim = 14336;
    big.n_layers = 80, big.n_heads = 64, big.n_kv_heads = 8, big.dim = 8192, big.hidden_dim = 28672;
    narrow.dim = 64, narrow.hidden_dim = 172, narrow.n_layers = 5, narrow.n_heads = 8, narrow.n_kv_heads = 4;
    check_shape(&a, "7B");
    check_shape(&b, "8B");
    check_shape(&big, "70B");
    check_shape(&narrow, "stories260K");
    /* the single types are --pure: every tensor, output too */
    const qc_gguf_mix *q4 = qc_gguf_mix_find("q4_k");
    CHECK(q4 && qc_gguf_mix_type(q4, &a, QC_W_CLASSIFIER, 0) == QC_GGUF_Q4_K &&
          qc_gguf_mix_type(q4, &a, QC_W_V, 0) == QC_GGUF_Q4_K && qc_gguf_mix_type(q4, &a, QC_W_DOWN, 0) == QC_GGUF_Q4_K,
          "q4_k: one type");
    CHECK(!qc_gguf_mix_find("q4_0") && !qc_gguf_mix_find("q4_k_x") && !qc_gguf_mix_find(NULL), "not mixes");
    /* fallbacks (tensor_type_fallback) */
    const char *name = NULL;
    CHECK(qc_gguf_fallback(QC_GGUF_Q4_K, 512, &name) == QC_GGUF_Q4_K && !strcmp(name, "Q4_K"), "fits");
    CHECK(qc_gguf_fallback(QC_GGUF_Q4_K, 64, &name) == 6 && !strcmp(name, "Q5_0"), "Q4_K -> Q5_0");
    CHECK(qc_gguf_fallback(QC_GGUF_Q5_K, 64, &name) == 7 && !strcmp(name, "Q5_1"), "Q5_K -> Q5_1");
    CHECK(qc_gguf_fallback(QC_GGUF_Q2_K, 64, &name) == QC_GGUF_Q4_0 && qc_gguf_fallback(QC_GGUF_Q3_K, 96, &name) == QC_GGUF_Q4_0,
          "Q2_K, Q3_K -> Q4_0");
    CHECK(qc_gguf_fallback(QC_GGUF_Q6_K, 192, &name) == QC_GGUF_Q8_0, "Q6_K -> Q8_0");
    CHECK(qc_gguf_fallback(QC_GGUF_Q6_K, 172, &name) == -1 && !strcmp(name, "Q8_0"), "172 wide: F16 in llama.cpp");
}

/* ---- a K-quant solver result on real weights ---- */

static qc_quant_spec kspec(int bits) {
    bool mins = bits == 2 || bits == 4 || bits == 5;
    return (qc_quant_spec){ .bits = bits, .groupsize = bits == 4 || bits == 5 ? 32 : 16, .sym = !mins, .f16_scales = true,
                            .store_min = mins, .kquant = qc_gguf_kquant_fit };
}

/* tinystories-656K's linears of block 0, each reshaped into rows of 256 (its rows are 128 and
 * 384 wide: whole rows concatenated), into w (rows, 256); the number of rows. */
static int real_rows(qc_checkpoint *ck, qc_weight wt, float **w) {
    int rows, cols;
    qc_weight_shape(qc_checkpoint_config(ck), wt, &rows, &cols);
    size_t n = (size_t)rows * cols;
    *w = malloc(n * sizeof **w);
    qc_err e = { "" };
    CHECK_OK(qc_checkpoint_read(ck, wt, 0, *w, &e), e);
    CHECK(n % 256 == 0, "%zu values", n);
    return (int)(n / 256);
}

static void test_rtn_blocks(void) {
    qc_err e = { "" };
    qc_checkpoint *ck = NULL;
    CHECK_OK(qc_checkpoint_open(&ck, shared_path("models/tinystories-656K"), &e), e);
    if (!ck) return;
    const qc_weight ws[] = { QC_W_Q, QC_W_V, QC_W_DOWN };
    for (size_t k = 0; k < sizeof ws / sizeof *ws; k++) {
        float *w = NULL;
        int rows = real_rows(ck, ws[k], &w);
        float *deq = malloc((size_t)rows * 256 * sizeof *deq), *dec = malloc((size_t)rows * 256 * sizeof *dec);
        for (int bits = 2; bits <= 6; bits++) {
            qc_quant_spec s = kspec(bits);
            qc_qweight q;
            CHECK_OK(qc_quant_rtn(w, rows, 256, &s, &q, &e), e);
            qc_gguf_type t;
            CHECK_OK(qc_gguf_qweight_type(&q, "real", &t, &e), e);
            CHECK((int)t == QC_GGUF_Q2_K + bits - 2, "Q%d_K's qweight is type %d", bits, (int)t);
            const qc_gguf_type_info *ti = qc_gguf_type_info_of((uint32_t)(QC_GGUF_Q2_K + bits - 2));
            size_t rb = qc_gguf_row_bytes(ti, 256);
            uint8_t *mine = malloc(rb), *ref = malloc(rb);
            int same = 0;
            qc_qweight_dequantize(&q, deq);
            for (int r = 0; r < rows; r++) {
                qc_gguf_encode_qweight_row(&q, t, r, mine);
                ti->from_float(w + (size_t)r * 256, ref, 256);
                same += !memcmp(mine, ref, rb);
                ti->to_float(mine, dec + (size_t)r * 256, 256);
            }
            CHECK(same == rows, "%s block 0 %s: %d of %d rows are the reference quantizer's bytes", ti->name,
                  qc_weight_short_name(ws[k]), same, rows);
            CHECK(!memcmp(deq, dec, (size_t)rows * 256 * sizeof *deq), "%s %s: dequantized != decoded", ti->name,
                  qc_weight_short_name(ws[k]));
            /* the writer refuses what the file cannot hold, naming the tensor */
            size_t sbf = QC_KQ_SB_FLOATS(s.groupsize);
            float keep = q.super[sbf];
            q.super[sbf] = NAN; /* row 1's d */
            CHECK_FAILS(qc_gguf_qweight_type(&q, "blk.0.attn_q.weight", &t, &e), e, "blk.0.attn_q.weight: row 1, super-block 0: d nan is not finite");
            q.super[sbf] = INFINITY;
            CHECK(qc_gguf_qweight_type(&q, "blk.0.attn_q.weight", &t, &e) == QC_ERR_NUMERIC, "Inf d: numeric error");
            q.super[sbf] = keep;
            q.scales[3] = nextafterf(q.scales[3], INFINITY);
            CHECK_FAILS(qc_gguf_qweight_type(&q, "blk.0.attn_q.weight", &t, &e), e, "sub-block 3: the group's scale");
            free(mine), free(ref);
            qc_qweight_free(&q);
        }
        if (k == 0) /* --target-bpw counts a K-quant candidate at its blocks' bytes */
            for (int bits = 2; bits <= 6; bits++) {
                qc_quant_spec s = kspec(bits);
                const qc_gguf_type_info *ti = qc_gguf_type_info_of((uint32_t)(QC_GGUF_Q2_K + bits - 2));
                CHECK(qc_spec_storage_bits(&s, 3, 512) == 8.0 * (double)qc_gguf_row_bytes(ti, 512) * 3,
                      "%s: storage bits %g", ti->name, qc_spec_storage_bits(&s, 3, 512));
            }
        /* a row that is not whole super-blocks */
        qc_qweight q;
        qc_quant_spec s = kspec(4);
        CHECK_FAILS(qc_quant_rtn(w, 1, 128, &s, &q, &e), e, "rows of 128 values are not whole super-blocks of 256");
        free(w), free(deq), free(dec);
    }
    qc_checkpoint_close(ck);
}

/* The K-quants' fallbacks Q5_0 and Q5_1 as solver results on real weights: their blocks
 * decode to exactly the dequantized weights; and ggml's reference quantizers' blocks decode
 * to values within half a step d of the weights (the rounding's bound), a whole step for
 * Q5_0 (its top level, 15, clips a value of the sign opposite the largest magnitude's, −16),
 * plus what fp16's rounding of d (and m) moves a code of at most 32 steps. */
static void test_q5_blocks(void) {
    qc_err e = { "" };
    qc_checkpoint *ck = NULL;
    CHECK_OK(qc_checkpoint_open(&ck, shared_path("models/tinystories-656K"), &e), e);
    if (!ck) return;
    float *w = NULL;
    int rows = real_rows(ck, QC_W_DOWN, &w), cols = 256;
    float *deq = malloc((size_t)rows * cols * sizeof *deq), *dec = malloc((size_t)cols * sizeof *dec);
    for (int k = 0; k < 2; k++) {
        qc_gguf_type t = k ? QC_GGUF_Q5_1 : QC_GGUF_Q5_0;
        qc_quant_spec s = { .bits = 5, .groupsize = 32, .sym = !k, .f16_scales = true, .store_min = k, .signed_scale = !k };
        qc_qweight q;
        CHECK_OK(qc_quant_rtn(w, rows, cols, &s, &q, &e), e);
        qc_gguf_type got;
        CHECK_OK(qc_gguf_qweight_type(&q, "q5", &got, &e), e);
        CHECK(got == t, "5-bit %s groups are %s", k ? "asymmetric" : "symmetric", qc_gguf_type_name(got));
        const qc_gguf_type_info *ti = qc_gguf_type_info_of((uint32_t)t);
        size_t rb = qc_gguf_row_bytes(ti, cols);
        uint8_t *blocks = malloc(rb);
        qc_qweight_dequantize(&q, deq);
        int same = 0, near = 0;
        for (int r = 0; r < rows; r++) {
            qc_gguf_encode_qweight_row(&q, t, r, blocks);
            ti->to_float(blocks, dec, cols);
            same += !memcmp(dec, deq + (size_t)r * cols, (size_t)cols * sizeof *dec);
            ti->from_float(w + (size_t)r * cols, blocks, cols);
            ti->to_float(blocks, dec, cols);
            bool ok = true;
            for (int c = 0; c < cols; c++) {
                float d = qc_gguf_get_f16((const uint16_t *)(blocks + (size_t)(c / 32) * ti->block_bytes));
                float x = w[(size_t)r * cols + c];
                ok &= fabsf(dec[c] - x) <= fabsf(d) * ((k ? 0.5f : 1.0f) + 32.0f * 0x1p-11f) + 0x1p-11f * fabsf(x) + 1e-7f;
            }
            near += ok;
        }
        CHECK(same == rows, "%s: %d of %d rows decode to the dequantized weights", ti->name, same, rows);
        CHECK(near == rows, "%s reference: %d of %d rows within half a step", ti->name, near, rows);
        free(blocks);
        qc_qweight_free(&q);
    }
    free(w), free(deq), free(dec);
    qc_checkpoint_close(ck);
}

/* ---- whole runs ---- */

static const char *calib_texts[1];

static void settings(qc_job_settings *s, const char *model, const char *out, const char *type) {
    qc_job_settings_init(s);
    calib_texts[0] = shared_path("data/tinystories/tinystories_calib.txt");
    s->model = model, s->out = out;
    s->calib = calib_texts, s->ncalib = 1;
    s->nsamples = 2, s->seqlen = 32;
    s->method = "rtn", s->format = "gguf", s->gguf_type = type;
}

/* The type of tensor `name` in the GGUF file f (-1: absent). */
static int type_of(const qc_gguf_file *f, const char *name) {
    const qc_gguf_tensor *t = qc_gguf_find_tensor(f, name);
    return t ? (int)t->type->id : -1;
}

static void test_run_q4_k_m(void) {
    qc_err e = { "" };
    qc_synth syn = { .seed = 7 };
    CHECK(qc_synth_shape("tiny256", &syn.cfg), "tiny256");
    const char *model = tmp_path("kmix-synth");
    qc_outdir d = { 0 };
    CHECK_OK(qc_outdir_open(&d, model, true, &e), e);
    CHECK_OK(qc_synth_export_into(&syn, "tiny256", &d, QC_DT_F16, NULL, &e), e);
    char *tok = qc_outdir_file(&d, "tokenizer.bin");
    CHECK_OK(qc_tokenizer_write_synthetic(tok, syn.cfg.vocab_size, &e), e);
    free(tok);
    CHECK_OK(qc_outdir_commit(&d, &e), e);
    const char *out = tmp_path("kmix-q4km");
    qc_job_settings s;
    settings(&s, model, out, "q4_k_m");
    s.recipe = "{\"model.layers.1.self_attn.q_proj\": {\"bits\": 6}, \"model.layers.2.mlp.up_proj\": {\"bits\": 8}}";
    qc_job *j = NULL;
    CHECK_OK(qc_job_open(&s, &j, &e), e);
    CHECK_OK(qc_job_plan(j, &e), e);
    CHECK_OK(qc_job_run(j, NULL, &e), e);
    qc_job_free(j);
    char path[1200];
    snprintf(path, sizeof path, "%s/model.gguf", out);
    qc_gguf_file f = { 0 };
    CHECK_OK(qc_gguf_file_open(&f, path, &e), e);
    const qc_gguf_kv *ft = qc_gguf_find_kv(&f, "general.file_type");
    int64_t v = -1;
    CHECK(ft && qc_gguf_kv_int(ft, 0, &v) && v == 15, "general.file_type %lld, want 15 (Q4_K_M)", (long long)v);
    qc_checkpoint *ck = NULL;
    CHECK_OK(qc_checkpoint_open(&ck, model, &e), e);
    const qc_gguf_mix *m = qc_gguf_mix_find("q4_k_m");
    const qc_config *c = &syn.cfg;
    float *w = malloc((size_t)(c->vocab_size > c->hidden_dim ? c->vocab_size : c->hidden_dim) * c->dim * sizeof *w);
    for (int l = 0; l < c->n_layers; l++)
        for (int lin = 0; lin < QC_LIN_COUNT; lin++) {
            qc_weight wt = qc_linear_weight((qc_linear)lin);
            char name[96];
            qc_gguf_tensor_name(wt, l, name, sizeof name);
            int want = l == 1 && wt == QC_W_Q ? QC_GGUF_Q6_K : l == 2 && wt == QC_W_UP ? QC_GGUF_Q8_0
                                                                                          : (int)qc_gguf_mix_type(m, c, wt, l);
            CHECK(type_of(&f, name) == want, "%s is type %d, want %d", name, type_of(&f, name), want);
            const qc_gguf_tensor *t = qc_gguf_find_tensor(&f, name);
            if (!t || !qc_gguf_type_is_k((qc_gguf_type)t->type->id)) continue;
            int rows, cols;
            qc_weight_shape(c, wt, &rows, &cols);
            CHECK_OK(qc_checkpoint_read(ck, wt, l, w, &e), e);
            size_t rb = qc_gguf_row_bytes(t->type, cols);
            uint8_t *ref = malloc(rb * rows);
            for (int r = 0; r < rows; r++) t->type->from_float(w + (size_t)r * cols, ref + (size_t)r * rb, cols);
            CHECK(t->nbytes == rb * rows && !memcmp(t->data, ref, rb * rows),
                  "%s: not the reference quantizer's bytes of the weight read", name);
            free(ref);
        }
    CHECK(type_of(&f, "output.weight") == QC_GGUF_Q6_K && type_of(&f, "token_embd.weight") == QC_GGUF_Q4_K,
          "output %d, token_embd %d", type_of(&f, "output.weight"), type_of(&f, "token_embd.weight"));
    free(w);
    qc_checkpoint_close(ck);
    qc_gguf_file_close(&f);
}

static void test_run_stories260k(void) {
    qc_err e = { "" };
    const char *model = shared_path("models/stories260K/stories260K.bin");
    /* Q3_K_S: every linear and the embedding fall back to Q4_0 (rows of 64 and, padded, 192),
     * the output to Q8_0 (llama.cpp's output rule for a width that is not whole blocks) */
    const char *out = tmp_path("kmix-q3ks");
    qc_job_settings s;
    settings(&s, model, out, "q3_k_s");
    qc_job *j = NULL;
    CHECK_OK(qc_job_open(&s, &j, &e), e);
    CHECK_OK(qc_job_plan(j, &e), e);
    CHECK_OK(qc_job_run(j, NULL, &e), e);
    const qc_job_summary *r = qc_job_summary_of(j);
    const cJSON *fb = r ? cJSON_GetObjectItemCaseSensitive(r->json, "gguf_fallbacks") : NULL;
    /* 5 blocks × 7 linears, and token_embd (the output's Q8_0 is its own rule, not a fallback) */
    CHECK(cJSON_GetArraySize(fb) == 5 * QC_LIN_COUNT + 1, "%d fallbacks listed", cJSON_GetArraySize(fb));
    const cJSON *first = cJSON_GetArrayItem(fb, 0);
    const cJSON *tn = cJSON_GetObjectItemCaseSensitive(first, "tensor"), *fbt = cJSON_GetObjectItemCaseSensitive(first, "fallback");
    CHECK(cJSON_IsString(tn) && !strcmp(tn->valuestring, "blk.0.attn_q.weight") && cJSON_IsString(fbt) &&
          !strcmp(fbt->valuestring, "Q4_0"), "first fallback");
    qc_job_free(j);
    char path[1200];
    snprintf(path, sizeof path, "%s/model.gguf", out);
    qc_gguf_file f = { 0 };
    CHECK_OK(qc_gguf_file_open(&f, path, &e), e);
    CHECK(type_of(&f, "blk.4.ffn_down.weight") == QC_GGUF_Q4_0 && type_of(&f, "output.weight") == QC_GGUF_Q8_0 &&
          type_of(&f, "token_embd.weight") == QC_GGUF_Q4_0, "types");
    qc_gguf_file_close(&f);

    /* Q4_K_M: Q4_K falls back to Q5_0; the "more bits" blocks' attn_v and ffn_down are Q6_K,
     * which falls back to Q8_0. AWQ too: its searches simulate each linear's own type */
    const char *methods[] = { "rtn", "awq" };
    for (int m = 0; m < 2; m++) {
        out = tmp_path(m ? "kmix-q4km-s260-awq" : "kmix-q4km-s260");
        settings(&s, model, out, "q4_k_m");
        s.method = methods[m];
        CHECK_OK(qc_job_open(&s, &j, &e), e);
        CHECK_OK(qc_job_plan(j, &e), e);
        CHECK_OK(qc_job_run(j, NULL, &e), e);
        qc_job_free(j);
        snprintf(path, sizeof path, "%s/model.gguf", out);
        CHECK_OK(qc_gguf_file_open(&f, path, &e), e);
        /* 5 blocks: more_bits holds for blocks 2 and 4 */
        CHECK(type_of(&f, "blk.1.attn_q.weight") == QC_GGUF_Q5_0 && type_of(&f, "blk.2.attn_v.weight") == QC_GGUF_Q8_0 &&
              type_of(&f, "blk.0.attn_v.weight") == QC_GGUF_Q5_0 && type_of(&f, "blk.4.ffn_down.weight") == QC_GGUF_Q8_0 &&
              type_of(&f, "blk.1.ffn_down.weight") == QC_GGUF_Q5_0 &&
              type_of(&f, "token_embd.weight") == QC_GGUF_Q5_0 && type_of(&f, "output.weight") == QC_GGUF_Q8_0,
              "Q4_K_M on stories260K by %s: types", methods[m]);
        qc_gguf_file_close(&f);
    }

    /* a width whose rows are not even whole 32-blocks: no fallback either (llama.cpp writes
     * F16): refused before calibrating, naming the tensor and the widening */
    qc_synth syn = { .cfg = { .dim = 80, .hidden_dim = 160, .n_layers = 1, .n_heads = 5, .n_kv_heads = 5,
                              .head_dim = 16, .vocab_size = 512, .seq_len = 64, .norm_eps = 1e-5f,
                              .rope_theta = 10000.0f },
                     .seed = 3 };
    const char *odd = tmp_path("kmix-80wide");
    qc_outdir d = { 0 };
    CHECK_OK(qc_outdir_open(&d, odd, true, &e), e);
    CHECK_OK(qc_synth_export_into(&syn, "80 wide", &d, QC_DT_F16, NULL, &e), e);
    char *tok = qc_outdir_file(&d, "tokenizer.bin");
    CHECK_OK(qc_tokenizer_write_synthetic(tok, syn.cfg.vocab_size, &e), e);
    free(tok);
    CHECK_OK(qc_outdir_commit(&d, &e), e);
    out = tmp_path("kmix-refused");
    settings(&s, odd, out, "q4_k_m");
    CHECK_OK(qc_job_open(&s, &j, &e), e);
    CHECK_OK(qc_job_plan(j, &e), e);
    CHECK_FAILS(qc_job_run(j, NULL, &e), e,
                "blk.0.attn_q.weight: rows of 80 values are not whole 256-value blocks of Q4_K, and Q5_0 (llama.cpp's "
                "fallback for it) does not fit either; widen the model first: qcalib convert --pad-to 256");
    CHECK(qc_job_usage(j), "a usage error");
    CHECK(access(out, F_OK) != 0, "%s written", out);
    qc_job_free(j);
}

int main(void) {
    RUN(test_mix_table);
    RUN(test_rtn_blocks);
    RUN(test_q5_blocks);
    RUN(test_run_q4_k_m);
    RUN(test_run_stories260k);
    return check_summary();
}
