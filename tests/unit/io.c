/* unit/io.c — io/: the config checks and weight table, the RoPE row permutation against
 * HF's conversion formula written out, dtypes, the safetensors writer and reader, and the
 * real model (stories260K) through every reader and writer: llama2.c in, HF folders out
 * (F32 single file, F32 sharded, F16, BF16) and back, llama2.c out and back; and a real
 * Hugging Face folder as published (TinyStories-656K: GQA, its tied embedding stored once as
 * lm_head.weight with a "__metadata__" alias) in and out. Broken inputs are in
 * badinput/io.c. */
#include "io/io.h"
#include "tests/check.h"

#include <cjson/cJSON.h>
#include <sys/stat.h>
#include <unistd.h>

#define STORIES "models/stories260K/stories260K.bin"
#define STORIES_BYTES 1056540
/* Where stories260K's freq_cis arrays start: header + weights (see io/llama2c_checkpoint.c). */
#define STORIES_FREQ_OFFSET 1040156

static float *alloc_weight(const qc_config *c, qc_weight w) {
    int rows, cols;
    qc_weight_shape(c, w, &rows, &cols);
    return calloc((size_t)rows * cols, sizeof(float));
}

static size_t weight_len(const qc_config *c, qc_weight w) {
    int rows, cols;
    qc_weight_shape(c, w, &rows, &cols);
    return (size_t)rows * cols;
}

static uint8_t *slurp(const char *path, size_t *n) {
    char *buf = NULL;
    qc_err e = { "" };
    CHECK_OK(qc_read_file(path, (size_t)1 << 30, &buf, n, &e), e);
    return (uint8_t *)buf;
}

/* ---- configuration and weight table ------------------------------------------------------- */

static qc_config stories_config(void) {
    return (qc_config){ .dim = 64, .hidden_dim = 172, .n_layers = 5, .n_heads = 8, .n_kv_heads = 4,
                        .head_dim = 8, .vocab_size = 512, .seq_len = 512, .norm_eps = 1e-5f,
                        .rope_theta = 10000.0f, .tied_classifier = true };
}

static void test_config_validate(void) {
    qc_err e = { "" };
    qc_config c = stories_config();
    CHECK_OK(qc_config_validate(&c, "m.bin", &e), e);
    c.n_kv_heads = 3;
    CHECK_FAILS(qc_config_validate(&c, "m.bin", &e), e, "m.bin: n_heads 8 is not a multiple of n_kv_heads 3");
    c = stories_config();
    c.head_dim = 7;
    CHECK_FAILS(qc_config_validate(&c, "m.bin", &e), e, "head_dim 7 is odd");
    c = stories_config();
    c.dim = QC_MAX_DIM + 1;
    CHECK_FAILS(qc_config_validate(&c, "m.bin", &e), e, "dim 131073 is out of range");
    c = stories_config();
    c.n_layers = 0;
    CHECK_FAILS(qc_config_validate(&c, "m.bin", &e), e, "n_layers 0");
    c = stories_config();
    c.vocab_size = -1;
    CHECK_FAILS(qc_config_validate(&c, "m.bin", &e), e, "vocab_size -1");
    c = stories_config();
    c.norm_eps = 0;
    CHECK_FAILS(qc_config_validate(&c, "m.bin", &e), e, "norm_eps");
    c = stories_config();
    c.norm_eps = NAN;
    CHECK_FAILS(qc_config_validate(&c, "m.bin", &e), e, "norm_eps");
    c = stories_config();
    c.rope_theta = -1;
    CHECK_FAILS(qc_config_validate(&c, "m.bin", &e), e, "rope_theta");
    c = stories_config();
    c.head_dim = 64; /* head_dim need not be dim / n_heads, but n_heads * head_dim is bounded */
    CHECK_OK(qc_config_validate(&c, "m.bin", &e), e);
    c = stories_config();
    c.attn_o_bias = true; /* no config.json describes an o bias alone */
    CHECK_FAILS(qc_config_validate(&c, "m.bin", &e), e, "m.bin: an attention output (o) bias without q, k and v biases");
}

static void test_weight_table(void) {
    qc_config c = stories_config();
    c.head_dim = 16; /* n_heads * head_dim = 128 != dim */
    struct { qc_weight w; int rows, cols; bool global; const char *shortname; const char *hf; } want[] = {
        { QC_W_EMBED, 512, 64, true, "embed", "model.embed_tokens.weight" },
        { QC_W_FINAL_NORM, 64, 1, true, "final_norm", "model.norm.weight" },
        { QC_W_CLASSIFIER, 512, 64, true, "classifier", "lm_head.weight" },
        { QC_W_ATTN_NORM, 64, 1, false, "attn_norm", "model.layers.3.input_layernorm.weight" },
        { QC_W_Q, 128, 64, false, "q", "model.layers.3.self_attn.q_proj.weight" },
        { QC_W_K, 64, 64, false, "k", "model.layers.3.self_attn.k_proj.weight" },
        { QC_W_V, 64, 64, false, "v", "model.layers.3.self_attn.v_proj.weight" },
        { QC_W_O, 64, 128, false, "o", "model.layers.3.self_attn.o_proj.weight" },
        { QC_W_FFN_NORM, 64, 1, false, "ffn_norm", "model.layers.3.post_attention_layernorm.weight" },
        { QC_W_GATE, 172, 64, false, "gate", "model.layers.3.mlp.gate_proj.weight" },
        { QC_W_UP, 172, 64, false, "up", "model.layers.3.mlp.up_proj.weight" },
        { QC_W_DOWN, 64, 172, false, "down", "model.layers.3.mlp.down_proj.weight" },
        { QC_W_Q_BIAS, 128, 1, false, "q_bias", "model.layers.3.self_attn.q_proj.bias" },
        { QC_W_K_BIAS, 64, 1, false, "k_bias", "model.layers.3.self_attn.k_proj.bias" },
        { QC_W_V_BIAS, 64, 1, false, "v_bias", "model.layers.3.self_attn.v_proj.bias" },
        { QC_W_O_BIAS, 64, 1, false, "o_bias", "model.layers.3.self_attn.o_proj.bias" },
    };
    CHECK(sizeof want / sizeof want[0] == QC_W_COUNT, "every weight listed");
    for (int i = 0; i < QC_W_COUNT; i++) {
        int rows, cols;
        qc_weight_shape(&c, want[i].w, &rows, &cols);
        CHECK(rows == want[i].rows && cols == want[i].cols, "%s shape %dx%d", want[i].shortname, rows, cols);
        CHECK(qc_weight_is_global(want[i].w) == want[i].global, "%s global", want[i].shortname);
        CHECK(strcmp(qc_weight_short_name(want[i].w), want[i].shortname) == 0, "short name %s", want[i].shortname);
        char name[128];
        qc_weight_hf_name(want[i].w, 3, name, sizeof name);
        CHECK(strcmp(name, want[i].hf) == 0, "HF name %s", name);
    }
    /* the biases exist only as the config says: q/k/v (Qwen2), and o with them (attention_bias) */
    CHECK(!qc_weight_present(&c, QC_W_Q_BIAS) && !qc_weight_present(&c, QC_W_O_BIAS) && qc_weight_present(&c, QC_W_Q),
          "no biases by default");
    c.attn_qkv_bias = true;
    CHECK(qc_weight_present(&c, QC_W_K_BIAS) && !qc_weight_present(&c, QC_W_O_BIAS), "q/k/v biases");
    c.attn_o_bias = true;
    CHECK(qc_weight_present(&c, QC_W_O_BIAS), "o bias");
    CHECK(qc_weight_rope_heads(&c, QC_W_Q_BIAS) == 8 && qc_weight_rope_heads(&c, QC_W_K_BIAS) == 4 &&
              qc_weight_rope_heads(&c, QC_W_V_BIAS) == 0 && qc_weight_rope_heads(&c, QC_W_K) == 4,
          "q and k biases take their weights' RoPE row order");
    CHECK(qc_weight_is_vector(QC_W_V_BIAS) && !qc_weight_is_linear(QC_W_V_BIAS) && qc_weight_is_linear(QC_W_DOWN) &&
              !qc_weight_is_linear(QC_W_CLASSIFIER) && qc_bias_linear(QC_W_O_BIAS) == QC_W_O,
          "biases are vectors, not linears");
}

/* HF's permute(w, n_heads, dim1, dim2) =
 *   w.view(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(1, 2).reshape(dim1, dim2)
 * written out element by element: source index (h, a, b, c) of the view lands at (h, b, a, c). */
static void hf_permute_reference(const float *w, float *out, int n_heads, int dim1, int dim2) {
    int half = dim1 / n_heads / 2;
    for (int h = 0; h < n_heads; h++)
        for (int a = 0; a < half; a++)
            for (int b = 0; b < 2; b++)
                for (int c = 0; c < dim2; c++) {
                    size_t src = (((size_t)h * half + a) * 2 + b) * dim2 + c;
                    size_t dst = (((size_t)h * 2 + b) * half + a) * dim2 + c;
                    out[dst] = w[src];
                }
}

static void test_rope_permutation(void) {
    /* Q of stories260K (8 heads), K (4 kv heads), and an odd row width */
    int cases[][3] = { { 8, 8, 64 }, { 4, 8, 64 }, { 3, 6, 5 }, { 1, 2, 1 } };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int heads = cases[k][0], hd = cases[k][1], cols = cases[k][2], rows = heads * hd;
        size_t n = (size_t)rows * cols;
        float *w = malloc(n * sizeof *w), *ref = malloc(n * sizeof *w), *got = malloc(n * sizeof *w),
              *back = malloc(n * sizeof *w);
        for (size_t i = 0; i < n; i++) w[i] = (float)i;
        hf_permute_reference(w, ref, heads, rows, cols);
        qc_rope_rows_to_hf(w, got, heads, hd, cols);
        CHECK(memcmp(ref, got, n * sizeof *w) == 0, "to_hf matches HF's permute (%d heads of %d)", heads, hd);
        qc_rope_rows_from_hf(got, back, heads, hd, cols);
        CHECK(memcmp(w, back, n * sizeof *w) == 0, "from_hf inverts to_hf (%d heads of %d)", heads, hd);
        free(w), free(ref), free(got), free(back);
    }
    /* the documented rule, one row: interleaved row 2i+j of head h is HF row j*hd/2 + i */
    float w[16], hf[16];
    for (int i = 0; i < 16; i++) w[i] = (float)i;
    qc_rope_rows_to_hf(w, hf, 2, 8, 1);
    CHECK(hf[8 + 1 * 4 + 2] == w[8 + 2 * 2 + 1], "head 1, i=2, j=1");
    CHECK(hf[0] == 0 && hf[1] == 2 && hf[4] == 1 && hf[5] == 3, "head 0 order %g %g %g %g", hf[0], hf[1], hf[4], hf[5]);
}

/* ---- dtypes ----------------------------------------------------------------------------------- */

static void test_dtypes(void) {
    const char *names[] = { "F32", "F16", "BF16", "F64", "I8", "U8", "I16", "I32", "I64", "BOOL" };
    size_t sizes[] = { 4, 2, 2, 8, 1, 1, 2, 4, 8, 1 };
    for (int t = 0; t < QC_DT_COUNT; t++) {
        qc_dtype p;
        CHECK(strcmp(qc_dtype_name((qc_dtype)t), names[t]) == 0, "name of %d", t);
        CHECK(qc_dtype_parse(names[t], &p) && p == (qc_dtype)t, "parse %s", names[t]);
        CHECK(qc_dtype_size((qc_dtype)t) == sizes[t], "size of %s", names[t]);
    }
    qc_dtype p;
    CHECK(!qc_dtype_parse("f32", &p) && !qc_dtype_parse("F8_E4M3", &p) && !qc_dtype_parse("", &p), "unknown names");

    /* fp32 -> each float type -> fp32, from an unaligned source */
    float x[5] = { 1.0f, -2.5f, 3.14159265f, 65520.0f, 1e-8f };
    uint8_t raw[1 + 5 * 8];
    float back[5];
    qc_dtype types[] = { QC_DT_F32, QC_DT_F16, QC_DT_BF16, QC_DT_F64 };
    for (int k = 0; k < 4; k++) {
        qc_convert_from_f32(types[k], x, 5, raw + 1);
        qc_convert_to_f32(types[k], raw + 1, 5, back);
        for (int i = 0; i < 5; i++) {
            float want = types[k] == QC_DT_F16    ? qc_f16_to_f32(qc_f32_to_f16(x[i]))
                         : types[k] == QC_DT_BF16 ? qc_bf16_to_f32(qc_f32_to_bf16(x[i]))
                                                  : x[i];
            CHECK(back[i] == want || (isinf(back[i]) && isinf(want)), "%s element %d: %g vs %g",
                  qc_dtype_name(types[k]), i, back[i], want);
        }
    }
    /* known bit patterns, little endian */
    qc_convert_from_f32(QC_DT_F16, x, 2, raw);
    CHECK(raw[0] == 0x00 && raw[1] == 0x3c && raw[2] == 0x00 && raw[3] == 0xc1, "F16 bytes of 1, -2.5");
    qc_convert_from_f32(QC_DT_BF16, x, 1, raw);
    CHECK(raw[0] == 0x80 && raw[1] == 0x3f, "BF16 bytes of 1");
    CHECK(back[3] == 65520.0f, "F64 keeps 65520");
}

/* ---- safetensors writer and reader ------------------------------------------------------------------ */

static void test_safetensors_roundtrip(void) {
    qc_err e = { "" };
    const char *path = tmp_path("rt.safetensors");
    float a[6] = { 1, 2, 3, 4, 5, 6 };
    uint16_t b[3] = { 0x3c00, 0x4000, 0xc000 }; /* F16 1, 2, -2 */
    uint8_t c[3] = { 7, 8, 9 };
    int64_t sa[2] = { 2, 3 }, sb[1] = { 3 }, sc[3] = { 1, 3, 1 }, sz[2] = { 0, 4 };
    qc_safetensors_writer *w = qc_safetensors_writer_new(&e);
    CHECK_OK(qc_safetensors_writer_add(w, "a", QC_DT_F32, 2, sa, &e), e);
    CHECK_OK(qc_safetensors_writer_add(w, "b \"quoted\"", QC_DT_F16, 1, sb, &e), e);
    CHECK_OK(qc_safetensors_writer_add(w, "empty", QC_DT_F32, 2, sz, &e), e);
    CHECK_OK(qc_safetensors_writer_add(w, "c", QC_DT_U8, 3, sc, &e), e);
    CHECK_OK(qc_safetensors_writer_add(w, "scalar", QC_DT_F32, 0, NULL, &e), e);
    CHECK_OK(qc_safetensors_writer_meta(w, "format", "pt", &e), e);
    CHECK_OK(qc_safetensors_writer_begin(w, path, &e), e);
    CHECK(!qc_path_exists(path), "nothing at the path before finish");
    CHECK_OK(qc_safetensors_writer_write(w, "a", a, sizeof a, &e), e);
    CHECK_OK(qc_safetensors_writer_write(w, "b \"quoted\"", b, sizeof b, &e), e);
    CHECK_OK(qc_safetensors_writer_write(w, "empty", NULL, 0, &e), e);
    CHECK_OK(qc_safetensors_writer_write(w, "c", c, sizeof c, &e), e);
    CHECK_OK(qc_safetensors_writer_write(w, "scalar", a + 5, 4, &e), e);
    CHECK_OK(qc_safetensors_writer_finish(w, &e), e);
    qc_safetensors_writer_free(w);

    size_t n;
    uint8_t *bytes = slurp(path, &n);
    uint64_t hlen = qc_le64(bytes);
    CHECK(hlen % 8 == 0, "header length %llu is a multiple of 8", (unsigned long long)hlen);
    CHECK(n == 8 + hlen + 24 + 6 + 0 + 3 + 4, "file size %zu", n);
    free(bytes);

    qc_safetensors_file f;
    CHECK_OK(qc_safetensors_open(&f, path, &e), e);
    CHECK(f.ntensors == 5, "5 tensors, got %d", f.ntensors);
    for (int i = 1; i < f.ntensors; i++) CHECK(strcmp(f.tensors[i - 1].name, f.tensors[i].name) < 0, "sorted by name");
    const qc_safetensors_tensor *t = qc_safetensors_find(&f, "a");
    CHECK(t && t->dtype == QC_DT_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && t->nbytes == 24 &&
              memcmp(t->data, a, 24) == 0, "tensor a");
    t = qc_safetensors_find(&f, "b \"quoted\"");
    float bf[3];
    if (t) qc_convert_to_f32(t->dtype, t->data, 3, bf);
    CHECK(t && t->dtype == QC_DT_F16 && bf[0] == 1 && bf[1] == 2 && bf[2] == -2, "tensor with an escaped name");
    t = qc_safetensors_find(&f, "c");
    CHECK(t && t->ndim == 3 && t->nbytes == 3 && memcmp(t->data, c, 3) == 0, "tensor c");
    t = qc_safetensors_find(&f, "empty");
    CHECK(t && t->nbytes == 0 && t->shape[0] == 0, "empty tensor");
    t = qc_safetensors_find(&f, "scalar");
    CHECK(t && t->ndim == 0 && t->nbytes == 4 && qc_lef32(t->data) == 6.0f, "0-d tensor");
    CHECK(qc_safetensors_find(&f, "nope") == NULL && qc_safetensors_find(&f, "__metadata__") == NULL, "absent names");
    qc_safetensors_close(&f);
    qc_safetensors_close(&f); /* closing twice (zeroed) and NULL are no-ops */
    qc_safetensors_close(NULL);
}

static void test_safetensors_writer_misuse(void) {
    qc_err e = { "" };
    const char *path = tmp_path("misuse.safetensors");
    int64_t s[1] = { 2 };
    float x[2] = { 1, 2 };
    qc_safetensors_writer *w = qc_safetensors_writer_new(&e);
    CHECK_OK(qc_safetensors_writer_add(w, "x", QC_DT_F32, 1, s, &e), e);
    CHECK_OK(qc_safetensors_writer_add(w, "y", QC_DT_F32, 1, s, &e), e);
    CHECK_FAILS(qc_safetensors_writer_write(w, "x", x, 8, &e), e, "before qc_safetensors_writer_begin");
    CHECK_FAILS(qc_safetensors_writer_add(w, "__metadata__", QC_DT_F32, 1, s, &e), e, "invalid tensor name");
    int64_t neg[1] = { -1 };
    CHECK_FAILS(qc_safetensors_writer_add(w, "z", QC_DT_F32, 1, neg, &e), e, "invalid shape");
    CHECK_OK(qc_safetensors_writer_begin(w, path, &e), e);
    CHECK_FAILS(qc_safetensors_writer_add(w, "late", QC_DT_F32, 1, s, &e), e, "after writing began");
    CHECK_FAILS(qc_safetensors_writer_write(w, "y", x, 8, &e), e, "out of order: 'x' is next");
    CHECK(!qc_path_exists(path), "a failed writer leaves nothing");
    CHECK_FAILS(qc_safetensors_writer_write(w, "x", x, 8, &e), e, "after an earlier failure");
    qc_safetensors_writer_free(w);

    w = qc_safetensors_writer_new(&e);
    CHECK_OK(qc_safetensors_writer_add(w, "x", QC_DT_F32, 1, s, &e), e);
    CHECK_OK(qc_safetensors_writer_begin(w, path, &e), e);
    CHECK_FAILS(qc_safetensors_writer_write(w, "x", x, 4, &e), e, "4 bytes written, its shape needs 8");
    qc_safetensors_writer_free(w);

    w = qc_safetensors_writer_new(&e);
    CHECK_OK(qc_safetensors_writer_add(w, "x", QC_DT_F32, 1, s, &e), e);
    CHECK_OK(qc_safetensors_writer_add(w, "y", QC_DT_F32, 1, s, &e), e);
    CHECK_OK(qc_safetensors_writer_begin(w, path, &e), e);
    CHECK_OK(qc_safetensors_writer_write(w, "x", x, 8, &e), e);
    CHECK_FAILS(qc_safetensors_writer_finish(w, &e), e, "tensor 'y' declared but never written");
    CHECK(!qc_path_exists(path), "an unfinished file leaves nothing");
    qc_safetensors_writer_free(w);

    w = qc_safetensors_writer_new(&e);
    CHECK_OK(qc_safetensors_writer_add(w, "x", QC_DT_F32, 1, s, &e), e);
    CHECK_OK(qc_safetensors_writer_add(w, "x", QC_DT_F32, 1, s, &e), e);
    CHECK_FAILS(qc_safetensors_writer_begin(w, path, &e), e, "tensor 'x' declared twice");
    qc_safetensors_writer_free(w);

    w = qc_safetensors_writer_new(&e);
    CHECK_OK(qc_safetensors_writer_add(w, "x", QC_DT_F32, 1, s, &e), e);
    CHECK_OK(qc_safetensors_writer_begin(w, path, &e), e);
    CHECK_OK(qc_safetensors_writer_write(w, "x", x, 8, &e), e);
    qc_safetensors_writer_free(w); /* freed before finish: aborted */
    CHECK(!qc_path_exists(path), "freeing an unfinished writer leaves nothing");
    qc_safetensors_writer_free(NULL);
    CHECK(system("test -z \"$(ls \"$QCALIB_TMP\" | grep misuse)\"") == 0, "no temporaries left behind");
}

/* ---- llama2.c reader on the real model ---------------------------------------------------------------- */

static void test_llama2c_stories(void) {
    qc_err e = { "" };
    qc_checkpoint *ck = NULL;
    CHECK_OK(qc_checkpoint_open(&ck, shared_path(STORIES), &e), e);
    if (!ck) return;
    const qc_config *c = qc_checkpoint_config(ck);
    qc_config want = stories_config();
    CHECK(c->dim == want.dim && c->hidden_dim == want.hidden_dim && c->n_layers == want.n_layers &&
              c->n_heads == want.n_heads && c->n_kv_heads == want.n_kv_heads && c->head_dim == want.head_dim &&
              c->vocab_size == want.vocab_size && c->seq_len == want.seq_len && c->norm_eps == 1e-5f &&
              c->rope_theta == 10000.0f && c->tied_classifier,
          "config as the README says");
    CHECK(strcmp(qc_checkpoint_format(ck), "llama2.c") == 0, "format");
    CHECK(strcmp(qc_checkpoint_path(ck), shared_path(STORIES)) == 0, "path");
    CHECK(qc_checkpoint_dtype(ck, QC_W_Q, 2) == QC_DT_F32, "dtype F32");

    size_t n;
    uint8_t *raw = slurp(shared_path(STORIES), &n);
    CHECK(n == STORIES_BYTES, "file size %zu", n);
    float *embed = alloc_weight(c, QC_W_EMBED), *cls = alloc_weight(c, QC_W_CLASSIFIER);
    CHECK_OK(qc_checkpoint_read(ck, QC_W_EMBED, 0, embed, &e), e);
    for (int i = 0; i < 8; i++) CHECK(embed[i] == qc_lef32(raw + 28 + 4 * i), "embed[%d] as stored", i);
    CHECK(memcmp(embed, raw + 28, weight_len(c, QC_W_EMBED) * 4) == 0, "whole embedding as stored");
    CHECK_OK(qc_checkpoint_read(ck, QC_W_CLASSIFIER, 0, cls, &e), e);
    CHECK(memcmp(embed, cls, weight_len(c, QC_W_EMBED) * 4) == 0, "tied classifier = embedding");

    /* wk of layer 2: header, embed, rms_att (L,dim), wq (L,64,64), wk layers 0,1 before it */
    size_t off = 28 + 4 * (512 * 64 + 5 * 64 + 5 * 64 * 64 + 2 * 32 * 64);
    float *wk = alloc_weight(c, QC_W_K);
    CHECK_OK(qc_checkpoint_read(ck, QC_W_K, 2, wk, &e), e);
    CHECK(memcmp(wk, raw + off, 32 * 64 * 4) == 0, "wk layer 2 at its offset");
    /* rms_final: just before freq_cis */
    float fin[64];
    CHECK_OK(qc_checkpoint_read(ck, QC_W_FINAL_NORM, 0, fin, &e), e);
    CHECK(memcmp(fin, raw + STORIES_FREQ_OFFSET - 64 * 4, 64 * 4) == 0, "rms_final before freq_cis");

    float rows[5 * 64];
    CHECK_OK(qc_checkpoint_read_rows(ck, QC_W_EMBED, 100, 5, rows, &e), e);
    CHECK(memcmp(rows, embed + 100 * 64, sizeof rows) == 0, "rows 100..104 of the embedding");
    CHECK_OK(qc_checkpoint_read_rows(ck, QC_W_CLASSIFIER, 507, 5, rows, &e), e);
    CHECK(memcmp(rows, embed + 507 * 64, sizeof rows) == 0, "last rows of the classifier");
    CHECK_FAILS(qc_checkpoint_read_rows(ck, QC_W_EMBED, 510, 5, rows, &e), e, "rows [510, 515)");
    CHECK_FAILS(qc_checkpoint_read_rows(ck, QC_W_EMBED, -1, 1, rows, &e), e, "rows [-1, 0)");
    CHECK_FAILS(qc_checkpoint_read_rows(ck, QC_W_Q, 0, 1, rows, &e), e, "per layer");
    /* an embedding lookup: rows in any order, repeated, each the row read alone */
    const int32_t ids[5] = { 300, 7, 511, 7, 0 };
    CHECK_OK(qc_checkpoint_gather_rows(ck, QC_W_EMBED, ids, 5, rows, &e), e);
    for (int i = 0; i < 5; i++)
        CHECK(memcmp(rows + i * 64, embed + ids[i] * 64, 64 * sizeof(float)) == 0, "gathered row %d = embedding row %d", i,
              ids[i]);
    const int32_t bad_ids[3] = { 4, 512, 9 };
    CHECK_FAILS(qc_checkpoint_gather_rows(ck, QC_W_EMBED, bad_ids, 3, rows, &e), e, "row 512 asked for (entry 1)");
    CHECK_FAILS(qc_checkpoint_gather_rows(ck, QC_W_K, ids, 1, rows, &e), e, "per layer");
    CHECK_FAILS(qc_checkpoint_read(ck, QC_W_Q, 5, wk, &e), e, "layer 5");
    CHECK_FAILS(qc_checkpoint_read(ck, QC_W_COUNT, 0, wk, &e), e, "does not exist");

    qc_weight_source src = qc_checkpoint_source(ck);
    CHECK(src.cfg == c, "source config");
    float *wk2 = alloc_weight(c, QC_W_K);
    CHECK_OK(src.read(src.ctx, QC_W_K, 2, wk2, &e), e);
    CHECK(memcmp(wk2, wk, weight_len(c, QC_W_K) * 4) == 0, "source reads through the checkpoint");
    free(raw), free(embed), free(cls), free(wk), free(wk2);
    qc_checkpoint_close(ck);
    qc_checkpoint_close(NULL);
}

/* stories260K with vocab_size negated and a separate classifier appended. */
static void test_llama2c_separate_classifier(void) {
    qc_err e = { "" };
    size_t n;
    uint8_t *raw = slurp(shared_path(STORIES), &n);
    size_t cls_bytes = 512 * 64 * 4;
    uint8_t *buf = malloc(n + cls_bytes);
    memcpy(buf, raw, n);
    int32_t neg = -512;
    memcpy(buf + 20, &neg, 4);
    float *wcls = (float *)(buf + n);
    for (int i = 0; i < 512 * 64; i++) wcls[i] = (float)i * 0.001f - 3.0f;
    const char *path = tmp_path("untied.bin");
    write_file(path, buf, n + cls_bytes);
    qc_checkpoint *ck = NULL;
    CHECK_OK(qc_checkpoint_open(&ck, path, &e), e);
    if (ck) {
        const qc_config *c = qc_checkpoint_config(ck);
        CHECK(!c->tied_classifier && c->vocab_size == 512, "untied, vocab 512");
        float *cls = alloc_weight(c, QC_W_CLASSIFIER), *embed = alloc_weight(c, QC_W_EMBED);
        CHECK_OK(qc_checkpoint_read(ck, QC_W_CLASSIFIER, 0, cls, &e), e);
        CHECK(memcmp(cls, wcls, cls_bytes) == 0, "the appended classifier");
        CHECK_OK(qc_checkpoint_read(ck, QC_W_EMBED, 0, embed, &e), e);
        CHECK(memcmp(embed, raw + 28, cls_bytes) == 0, "embedding unchanged");
        float rows[2 * 64];
        CHECK_OK(qc_checkpoint_read_rows(ck, QC_W_CLASSIFIER, 300, 2, rows, &e), e);
        CHECK(memcmp(rows, wcls + 300 * 64, sizeof rows) == 0, "classifier rows");
        free(cls), free(embed);
        qc_checkpoint_close(ck);
    }
    /* and the writer stores it the same way */
    qc_checkpoint *ck2 = NULL;
    CHECK_OK(qc_checkpoint_open(&ck2, path, &e), e);
    if (ck2) {
        qc_weight_source src = qc_checkpoint_source(ck2);
        const char *out = tmp_path("untied_out.bin");
        CHECK_OK(qc_llama2c_export(&src, out, NULL, &e), e);
        size_t m;
        uint8_t *again = slurp(out, &m);
        CHECK(m == n + cls_bytes && memcmp(again, buf, STORIES_FREQ_OFFSET) == 0 &&
                  memcmp(again + n, buf + n, cls_bytes) == 0,
              "untied export: header, weights and classifier byte for byte");
        free(again);
        qc_checkpoint_close(ck2);
    }
    free(raw), free(buf);
}

/* ---- HF round trips --------------------------------------------------------------------------------------- */

/* How an exported weight should compare with the original. */
static float rounded(qc_dtype dt, float x) {
    return dt == QC_DT_F16 ? qc_f16_to_f32(qc_f32_to_f16(x)) : dt == QC_DT_BF16 ? qc_bf16_to_f32(qc_f32_to_bf16(x)) : x;
}

/* Every weight of b equals a's rounded through dt, bit for bit. */
static void compare_all(const qc_checkpoint *a, const qc_checkpoint *b, qc_dtype dt, const char *what) {
    qc_err e = { "" };
    const qc_config *c = qc_checkpoint_config(a);
    int bad = 0, total = 0;
    for (int w = 0; w < QC_W_COUNT; w++) {
        if (!qc_weight_present(c, (qc_weight)w)) continue;
        int nl = qc_weight_is_global((qc_weight)w) ? 1 : c->n_layers;
        size_t len = weight_len(c, (qc_weight)w);
        float *x = alloc_weight(c, (qc_weight)w), *y = alloc_weight(c, (qc_weight)w);
        for (int l = 0; l < nl; l++) {
            CHECK_OK(qc_checkpoint_read(a, (qc_weight)w, l, x, &e), e);
            CHECK_OK(qc_checkpoint_read(b, (qc_weight)w, l, y, &e), e);
            CHECK(qc_checkpoint_dtype(b, (qc_weight)w, l) == dt, "%s: dtype of %s", what,
                  qc_weight_short_name((qc_weight)w));
            for (size_t i = 0; i < len; i++) {
                float want = rounded(dt, x[i]);
                bad += memcmp(&want, &y[i], 4) != 0;
            }
            total++;
        }
        free(x), free(y);
    }
    CHECK(bad == 0, "%s: %d values differ", what, bad);
    CHECK(total == 3 + 9 * c->n_layers, "%s: %d weights compared", what, total);
}

static bool same_config(const qc_config *a, const qc_config *b) {
    return a->dim == b->dim && a->hidden_dim == b->hidden_dim && a->n_layers == b->n_layers &&
           a->n_heads == b->n_heads && a->n_kv_heads == b->n_kv_heads && a->head_dim == b->head_dim &&
           a->vocab_size == b->vocab_size && a->seq_len == b->seq_len && a->norm_eps == b->norm_eps &&
           a->rope_theta == b->rope_theta && a->tied_classifier == b->tied_classifier;
}

/* The raw q_proj and k_proj of layer `layer` in file `st_path` are the HF permutation of
 * the interleaved rows the checkpoint returns. */
static void check_raw_qk(const qc_checkpoint *ck, const char *st_path, int layer, qc_dtype dt) {
    qc_err e = { "" };
    const qc_config *c = qc_checkpoint_config(ck);
    qc_safetensors_file f;
    CHECK_OK(qc_safetensors_open(&f, st_path, &e), e);
    for (int k = 0; k < 2; k++) {
        qc_weight w = k ? QC_W_K : QC_W_Q;
        int heads = k ? c->n_kv_heads : c->n_heads;
        char name[128];
        qc_weight_hf_name(w, layer, name, sizeof name);
        const qc_safetensors_tensor *t = qc_safetensors_find(&f, name);
        CHECK(t != NULL, "%s in %s", name, st_path);
        if (!t) continue;
        size_t len = weight_len(c, w);
        float *x = alloc_weight(c, w), *hf = alloc_weight(c, w), *raw = alloc_weight(c, w);
        CHECK_OK(qc_checkpoint_read(ck, w, layer, x, &e), e);
        qc_rope_rows_to_hf(x, hf, heads, c->head_dim, c->dim);
        for (size_t i = 0; i < len; i++) hf[i] = rounded(dt, hf[i]);
        qc_convert_to_f32(t->dtype, t->data, len, raw);
        CHECK(t->dtype == dt && memcmp(hf, raw, len * 4) == 0, "%s is qc_rope_rows_to_hf of the interleaved rows", name);
        free(x), free(hf), free(raw);
    }
    qc_safetensors_close(&f);
}

typedef struct progress_count {
    int64_t calls, last_done, last_total;
    int messages;
} progress_count;

static void count_progress(void *ctx, const char *stage, int64_t done, int64_t total, const char *detail) {
    progress_count *p = ctx;
    p->calls++;
    p->last_done = done;
    p->last_total = total;
}

static void count_message(void *ctx, qc_log_level level, const char *text) { ((progress_count *)ctx)->messages++; }

static void test_hf_roundtrips(void) {
    qc_err e = { "" };
    qc_checkpoint *orig = NULL;
    CHECK_OK(qc_checkpoint_open(&orig, shared_path(STORIES), &e), e);
    if (!orig) return;
    qc_weight_source src = qc_checkpoint_source(orig);
    struct { const char *dir; qc_dtype dt; size_t shard; } cases[] = {
        { "hf_f32", QC_DT_F32, 0 },
        { "hf_f32_sharded", QC_DT_F32, 100000 },
        { "hf_f16", QC_DT_F16, 0 },
        { "hf_bf16", QC_DT_BF16, 0 },
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const char *dir = tmp_path(cases[k].dir);
        qc_hf_export_opts o = { .dtype = cases[k].dt, .shard_bytes = cases[k].shard };
        progress_count pc = { 0 };
        qc_log log = { .message = count_message, .progress = count_progress, .ctx = &pc };
        CHECK_OK(qc_hf_export(&src, dir, &o, false, &log, &e), e);
        CHECK(pc.calls == 47 && pc.last_done == 47 && pc.last_total == 47 && pc.messages >= 1,
              "%s: progress per tensor (%lld calls)", cases[k].dir, (long long)pc.calls);
        qc_checkpoint *ck = NULL;
        CHECK_OK(qc_checkpoint_open(&ck, dir, &e), e);
        if (!ck) continue;
        CHECK(strcmp(qc_checkpoint_format(ck), "hf-safetensors") == 0, "format");
        CHECK(same_config(qc_checkpoint_config(orig), qc_checkpoint_config(ck)), "%s: config survives", cases[k].dir);
        compare_all(orig, ck, cases[k].dt, cases[k].dir);
        float rows[3 * 64], want[3 * 64];
        CHECK_OK(qc_checkpoint_read_rows(ck, QC_W_CLASSIFIER, 200, 3, rows, &e), e);
        CHECK_OK(qc_checkpoint_read_rows(orig, QC_W_EMBED, 200, 3, want, &e), e);
        for (int i = 0; i < 3 * 64; i++) want[i] = rounded(cases[k].dt, want[i]);
        CHECK(memcmp(rows, want, sizeof rows) == 0, "%s: classifier rows (tied)", cases[k].dir);
        qc_checkpoint_close(ck);

        char path[1100];
        if (cases[k].shard == 0) {
            snprintf(path, sizeof path, "%s/model.safetensors", dir);
            check_raw_qk(orig, path, 3, cases[k].dt);
            /* the .safetensors file itself, with config.json beside it */
            CHECK_OK(qc_checkpoint_open(&ck, path, &e), e);
            if (ck) compare_all(orig, ck, cases[k].dt, "opened by its .safetensors path");
            qc_checkpoint_close(ck);
            snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
            CHECK(!qc_path_exists(path), "no index for a single file");
            snprintf(path, sizeof path, "%s/config.json", dir);
            char *text;
            size_t len;
            CHECK_OK(qc_read_file(path, 1 << 20, &text, &len, &e), e);
            const char *want_torch = cases[k].dt == QC_DT_F32 ? "\"torch_dtype\": \"float32\""
                                     : cases[k].dt == QC_DT_F16 ? "\"torch_dtype\": \"float16\""
                                                                : "\"torch_dtype\": \"bfloat16\"";
            CHECK(text && strstr(text, "\"architectures\": [\"LlamaForCausalLM\"]") &&
                      strstr(text, "\"rms_norm_eps\": 1e-05") && strstr(text, "\"rope_theta\": 10000.0") &&
                      strstr(text, "\"tie_word_embeddings\": true") && strstr(text, want_torch) &&
                      strstr(text, "\"bos_token_id\": 1") && !strstr(text, "head_dim"),
                  "config.json contents:\n%s", text);
            free(text);
        } else {
            /* shards: model-0000K-of-0000N.safetensors, each within shard_bytes unless one tensor is larger */
            snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
            char *text;
            size_t len;
            CHECK_OK(qc_read_file(path, 1 << 20, &text, &len, &e), e);
            cJSON *root = text ? cJSON_Parse(text) : NULL;
            cJSON *map = cJSON_GetObjectItem(root, "weight_map");
            cJSON *total = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "metadata"), "total_size");
            CHECK(cJSON_GetArraySize(map) == 47, "47 tensors in the weight map");
            CHECK(cJSON_IsNumber(total) && total->valuedouble == (STORIES_FREQ_OFFSET - 28) * 1.0,
                  "total_size = the weights' bytes");
            CHECK(!cJSON_GetObjectItem(map, "lm_head.weight"), "lm_head omitted when tied");
            int shard = 0, nshards = 0;
            const cJSON *first = cJSON_GetObjectItem(map, "model.embed_tokens.weight");
            CHECK(cJSON_IsString(first) && sscanf(first->valuestring, "model-%5d-of-%5d.safetensors", &shard, &nshards) == 2 &&
                      shard == 1,
                  "the embedding is in the first shard");
            CHECK(nshards >= 3, "%d shards", nshards);
            size_t data_total = 0;
            for (int s = 1; s <= nshards; s++) {
                snprintf(path, sizeof path, "%s/model-%05d-of-%05d.safetensors", dir, s, nshards);
                qc_safetensors_file f;
                CHECK_OK(qc_safetensors_open(&f, path, &e), e);
                size_t data = 0;
                for (int i = 0; i < f.ntensors; i++) data += f.tensors[i].nbytes;
                CHECK(data <= cases[k].shard || f.ntensors == 1, "shard %d holds %zu bytes", s, data);
                data_total += data;
                qc_safetensors_close(&f);
            }
            CHECK(data_total == STORIES_FREQ_OFFSET - 28, "the shards hold every weight once");
            const cJSON *q = cJSON_GetObjectItem(map, "model.layers.4.self_attn.q_proj.weight");
            const cJSON *kk = cJSON_GetObjectItem(map, "model.layers.4.self_attn.k_proj.weight");
            CHECK(cJSON_IsString(q) && cJSON_IsString(kk) && strcmp(q->valuestring, kk->valuestring) == 0,
                  "q_proj and k_proj of layer 4 in one shard");
            if (cJSON_IsString(q)) {
                snprintf(path, sizeof path, "%s/%s", dir, q->valuestring);
                check_raw_qk(orig, path, 4, cases[k].dt);
            }
            cJSON_Delete(root);
            free(text);
        }
    }
    /* an existing folder is refused unless replace */
    qc_hf_export_opts o = { .dtype = QC_DT_F32 };
    CHECK_FAILS(qc_hf_export(&src, tmp_path("hf_f32"), &o, false, NULL, &e), e, "already exists");
    CHECK_OK(qc_hf_export(&src, tmp_path("hf_f32"), &o, true, NULL, &e), e);
    o.dtype = QC_DT_I32;
    CHECK_FAILS(qc_hf_export(&src, tmp_path("hf_i32"), &o, false, NULL, &e), e, "cannot export as I32");
    CHECK(!qc_path_exists(tmp_path("hf_i32")), "nothing written for a refused dtype");
    qc_checkpoint_close(orig);
}

/* TinyStories-656K: the configuration of its config.json; the embedding and the classifier are
 * the very bytes of its one stored tensor, lm_head.weight; written out as an HF folder it keeps
 * every weight exactly, the tied pair stored once under the embedding's name. */
static void test_hf_tinystories656k(void) {
    qc_err e = { "" };
    qc_checkpoint *ck = NULL;
    const char *dir = shared_path("models/tinystories-656K");
    CHECK_OK(qc_checkpoint_open(&ck, dir, &e), e);
    if (!ck) return;
    const qc_config *c = qc_checkpoint_config(ck);
    qc_config want = { .dim = 128, .hidden_dim = 384, .n_layers = 2, .n_heads = 8, .n_kv_heads = 4, .head_dim = 16,
                       .vocab_size = 2048, .seq_len = 512, .norm_eps = 1e-6f, .rope_theta = 10000.0f,
                       .tied_classifier = true };
    CHECK(same_config(c, &want), "config: dim %d, FFN %d, %d layers, %d/%d heads of %d, vocab %d, eps %g", c->dim,
          c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->vocab_size, (double)c->norm_eps);
    char path[1100];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    qc_safetensors_file f;
    CHECK_OK(qc_safetensors_open(&f, path, &e), e);
    const qc_safetensors_tensor *t = qc_safetensors_find(&f, "lm_head.weight");
    CHECK(t && t->dtype == QC_DT_F32 && qc_safetensors_find(&f, "model.embed_tokens.weight") == NULL &&
              strcmp(qc_safetensors_meta_get(&f, "model.embed_tokens.weight"), "lm_head.weight") == 0,
          "the file stores lm_head.weight only, aliased by model.embed_tokens.weight");
    float *emb = alloc_weight(c, QC_W_EMBED), *cls = alloc_weight(c, QC_W_CLASSIFIER);
    CHECK_OK(qc_checkpoint_read(ck, QC_W_EMBED, 0, emb, &e), e);
    CHECK_OK(qc_checkpoint_read(ck, QC_W_CLASSIFIER, 0, cls, &e), e);
    size_t n = weight_len(c, QC_W_EMBED);
    CHECK(t && t->nbytes == n * sizeof(float) && memcmp(emb, t->data, t->nbytes) == 0 && memcmp(cls, emb, t->nbytes) == 0,
          "embedding and classifier = lm_head.weight's bytes");
    qc_safetensors_close(&f);
    free(emb);
    free(cls);

    const char *out = tmp_path("ts656_hf");
    qc_weight_source src = qc_checkpoint_source(ck);
    qc_hf_export_opts o = { .dtype = QC_DT_F32 };
    CHECK_OK(qc_hf_export(&src, out, &o, false, NULL, &e), e);
    qc_checkpoint *back = NULL;
    CHECK_OK(qc_checkpoint_open(&back, out, &e), e);
    if (back) {
        CHECK(same_config(qc_checkpoint_config(back), c), "config survives");
        compare_all(ck, back, QC_DT_F32, "TinyStories-656K written as an HF folder");
    }
    qc_checkpoint_close(back);
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    CHECK_OK(qc_safetensors_open(&f, path, &e), e);
    CHECK(qc_safetensors_find(&f, "model.embed_tokens.weight") && !qc_safetensors_find(&f, "lm_head.weight") && f.ntensors == 20,
          "written: the tied pair once, as model.embed_tokens.weight (%d tensors)", f.ntensors);
    qc_safetensors_close(&f);
    qc_checkpoint_close(ck);
}

/* llama2.c out and back: stories260K -> .bin reproduces the file; an HF copy -> .bin too. */
static void test_llama2c_roundtrip(void) {
    qc_err e = { "" };
    qc_checkpoint *orig = NULL;
    CHECK_OK(qc_checkpoint_open(&orig, shared_path(STORIES), &e), e);
    if (!orig) return;
    qc_weight_source src = qc_checkpoint_source(orig);
    const char *out = tmp_path("again.bin");
    progress_count pc = { 0 };
    qc_log log = { .message = count_message, .progress = count_progress, .ctx = &pc };
    CHECK_OK(qc_llama2c_export(&src, out, &log, &e), e);
    CHECK(pc.last_done == 2 + 9 * 5 && pc.last_done == pc.last_total, "progress %lld of %lld",
          (long long)pc.last_done, (long long)pc.last_total);
    size_t n, m;
    uint8_t *a = slurp(shared_path(STORIES), &n), *b = slurp(out, &m);
    CHECK(n == m, "same size: %zu vs %zu", n, m);
    if (n == m) {
        CHECK(memcmp(a, b, STORIES_FREQ_OFFSET) == 0, "header and weights byte for byte");
        /* freq_cis: torch's vectorised cos/sin vs the C library's correctly rounded ones */
        int diff = 0, far = 0, count = (int)(n - STORIES_FREQ_OFFSET) / 4;
        for (int i = 0; i < count; i++) {
            int32_t x, y;
            memcpy(&x, a + STORIES_FREQ_OFFSET + 4 * i, 4);
            memcpy(&y, b + STORIES_FREQ_OFFSET + 4 * i, 4);
            diff += x != y;
            far += abs(x - y) > 1;
        }
        CHECK(far == 0, "freq_cis within 1 ulp of export.py's (%d further)", far);
        CHECK(diff < count / 10, "freq_cis: %d of %d values differ by 1 ulp", diff, count);
        printf("  (freq_cis: %d of %d values 1 ulp from export.py's torch values; all else identical)\n", diff, count);
    }
    free(b);

    /* from the HF folder written above */
    qc_checkpoint *hf = NULL;
    CHECK_OK(qc_checkpoint_open(&hf, tmp_path("hf_f32_sharded"), &e), e);
    if (hf) {
        qc_weight_source hsrc = qc_checkpoint_source(hf);
        CHECK_OK(qc_llama2c_export(&hsrc, tmp_path("from_hf.bin"), NULL, &e), e);
        uint8_t *c = slurp(tmp_path("from_hf.bin"), &m);
        uint8_t *again = slurp(out, &n);
        CHECK(m == n && memcmp(c, again, n) == 0, "HF -> llama2.c gives the same file");
        free(c), free(again);
        qc_checkpoint_close(hf);
    }
    free(a);
    qc_checkpoint_close(orig);
}

/* ---- a synthetic model: head_dim != dim / n_heads, untied, other eps and theta -------------------- */

static qc_config synth_config(void) {
    return (qc_config){ .dim = 32, .hidden_dim = 48, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                        .head_dim = 12, .vocab_size = 40, .seq_len = 64, .norm_eps = 1e-6f,
                        .rope_theta = 500000.0f, .tied_classifier = false };
}

static qc_status synth_read(void *ctx, qc_weight w, int layer, float *out, qc_err *e) {
    const qc_config *c = ctx;
    size_t n = weight_len(c, w);
    for (size_t i = 0; i < n; i++) out[i] = (float)((int)(i * 7 + (size_t)w * 131 + (size_t)layer * 977) % 1000) / 256.0f - 2.0f;
    return QC_OK;
}

static void test_synthetic_model(void) {
    qc_err e = { "" };
    qc_config c = synth_config();
    qc_weight_source src = { .cfg = &c, .read = synth_read, .ctx = &c };
    const char *dir = tmp_path("hf_synth");
    qc_hf_export_opts o = { .dtype = QC_DT_F32, .shard_bytes = 4096 };
    CHECK_OK(qc_hf_export(&src, dir, &o, false, NULL, &e), e);
    qc_checkpoint *ck = NULL;
    CHECK_OK(qc_checkpoint_open(&ck, dir, &e), e);
    if (ck) {
        CHECK(same_config(&c, qc_checkpoint_config(ck)), "config survives (head_dim 12, eps 1e-6, theta 5e5, untied)");
        int bad = 0;
        for (int w = 0; w < QC_W_COUNT; w++)
            for (int l = 0; l < (qc_weight_is_global((qc_weight)w) ? 1 : c.n_layers) && qc_weight_present(&c, (qc_weight)w); l++) {
                size_t n = weight_len(&c, (qc_weight)w);
                float *x = alloc_weight(&c, (qc_weight)w), *y = alloc_weight(&c, (qc_weight)w);
                synth_read(&c, (qc_weight)w, l, x, &e);
                CHECK_OK(qc_checkpoint_read(ck, (qc_weight)w, l, y, &e), e);
                bad += memcmp(x, y, n * 4) != 0;
                free(x), free(y);
            }
        CHECK(bad == 0, "%d weights differ", bad);
        qc_checkpoint_close(ck);
    }
    char path[1100];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *text;
    size_t len;
    CHECK_OK(qc_read_file(path, 1 << 20, &text, &len, &e), e);
    CHECK(text && strstr(text, "\"head_dim\": 12") && strstr(text, "\"rms_norm_eps\": 1e-06") &&
              strstr(text, "\"rope_theta\": 500000.0") && strstr(text, "\"tie_word_embeddings\": false"),
          "config.json:\n%s", text);
    free(text);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    CHECK_OK(qc_read_file(path, 1 << 20, &text, &len, &e), e);
    CHECK(text && strstr(text, "\"lm_head.weight\": \"model-"), "lm_head in the index when untied");
    free(text);

    /* llama2.c cannot hold it: refused with the reason, nothing written */
    const char *bin = tmp_path("synth.bin");
    CHECK_FAILS(qc_llama2c_export(&src, bin, NULL, &e), e, "synth.bin: llama2.c requires head_dim = dim / n_heads");
    c.head_dim = 8;
    CHECK_FAILS(qc_llama2c_export(&src, bin, NULL, &e), e, "hard-codes rope_theta 10000");
    c.rope_theta = 10000.0f;
    CHECK_FAILS(qc_llama2c_export(&src, bin, NULL, &e), e, "hard-codes norm_eps 1e-5");
    c.norm_eps = 1e-5f;
    c.n_kv_heads = 3;
    CHECK_FAILS(qc_llama2c_export(&src, bin, NULL, &e), e, "n_heads 4 is not a multiple of n_kv_heads 3");
    CHECK(!qc_path_exists(bin), "nothing written");
    c.n_kv_heads = 2;
    CHECK_OK(qc_llama2c_export(&src, bin, NULL, &e), e);
    CHECK_OK(qc_checkpoint_open(&ck, bin, &e), e);
    if (ck) {
        float *x = alloc_weight(&c, QC_W_CLASSIFIER), *y = alloc_weight(&c, QC_W_CLASSIFIER);
        synth_read(&c, QC_W_CLASSIFIER, 0, x, &e);
        CHECK_OK(qc_checkpoint_read(ck, QC_W_CLASSIFIER, 0, y, &e), e);
        CHECK(!qc_checkpoint_config(ck)->tied_classifier && memcmp(x, y, weight_len(&c, QC_W_CLASSIFIER) * 4) == 0,
              "untied classifier through llama2.c");
        free(x), free(y);
        qc_checkpoint_close(ck);
    }
}

/* A source whose reads fail: the export fails with its message and leaves nothing. */
static qc_status failing_read(void *ctx, qc_weight w, int layer, float *out, qc_err *e) {
    if (w == QC_W_DOWN && layer == 1) return qc_fail(e, QC_ERR_NUMERIC, "NaN in the weight");
    return synth_read(ctx, w, layer, out, e);
}

static void test_export_failures(void) {
    qc_err e = { "" };
    qc_config c = synth_config();
    qc_weight_source src = { .cfg = &c, .read = failing_read, .ctx = &c };
    qc_hf_export_opts o = { .dtype = QC_DT_BF16, .shard_bytes = 4096 };
    CHECK_FAILS(qc_hf_export(&src, tmp_path("hf_fail"), &o, false, NULL, &e), e,
                "reading model.layers.1.mlp.down_proj.weight: NaN in the weight");
    CHECK(!qc_path_exists(tmp_path("hf_fail")), "nothing at the target");
    /* an unwritable location: the parent is a regular file */
    write_file(tmp_path("plainfile"), "x", 1);
    src.read = synth_read;
    CHECK_FAILS(qc_hf_export(&src, tmp_path("plainfile/out"), &o, false, NULL, &e), e, "plainfile/out");
    CHECK(!qc_path_exists(tmp_path("plainfile/out")), "nothing at the target");
    CHECK_FAILS(qc_llama2c_export(&src, tmp_path("plainfile/out.bin"), NULL, &e), e, "plainfile/out.bin");
    CHECK(system("test -z \"$(ls \"$QCALIB_TMP\" | grep -e '\\.tmp\\.' -e hf_fail)\"") == 0, "no temporaries left behind");
}

int main(void) {
    RUN(test_config_validate);
    RUN(test_weight_table);
    RUN(test_rope_permutation);
    RUN(test_dtypes);
    RUN(test_safetensors_roundtrip);
    RUN(test_safetensors_writer_misuse);
    RUN(test_llama2c_stories);
    RUN(test_llama2c_separate_classifier);
    RUN(test_hf_roundtrips);
    RUN(test_hf_tinystories656k);
    RUN(test_llama2c_roundtrip);
    RUN(test_synthetic_model);
    RUN(test_export_failures);
    return check_summary();
}
