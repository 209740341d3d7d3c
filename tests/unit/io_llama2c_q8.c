/* unit/io_llama2c_q8.c — llama2.c's "ak42" checkpoints (io/llama2c_q8.c): the version 2 (Q8_0
 * int8, runq.c's) writer and the version 1 / 2 reader, on the real stories260K.
 *
 * The oracle is this file's own statement of export.py: ref_q80 (quantize_q80: per group of
 * group_size consecutive values s = max|w| / 127 in fp32, q = torch.round(w / s), i.e.
 * round-half-even of a real division) and ref_file (version1_export / version2_export's
 * byte layout: 256-byte header, norms in fp32, then the matrices in export.py's order). A
 * file qcalib writes must equal ref_file byte for byte, and every weight read back must
 * equal q · s bit for bit.
 *
 * Group sizes and stories260K: runq.c's matmul walks each row of a matrix in whole groups
 * (`for (j = 0; j <= n - GS; j += GS)`, scale `s[(in + j) / GS]` with `in = i * n`) and
 * quantizes the FFN activation (hidden_dim values) in whole groups, so the group size must
 * divide dim (64) and hidden_dim (172): only 1, 2 and 4 do. 32 and 64 are refused on the
 * model as it is (export.py would write a 64 file — it checks dim only — which runq.c
 * then runs wrongly; the reader still reads it, see test_read_export_py_default), and
 * tested on the same model with its FFN zero-padded to 192 (qc_checkpoint_pad_ffn, an
 * exact transformation), which both divide. */
#include "eval/eval.h"
#include "io/io.h"
#include "io/llama2c.h"
#include "model/model.h"
#include "tests/check.h"

#include <sys/stat.h>

#define STORIES "models/stories260K/stories260K.bin"
/* stories260K at group size 4, by hand: header 256; norms (2·5 + 1)·64·4 = 2816; then per
 * matrix numel int8 + numel/4 fp32 = 2·numel bytes: embedding 65536, wq 5·8192, wk 5·4096,
 * wv 5·4096, wo 5·8192, w1 5·22016, w2 5·22016, w3 5·22016. */
#define G4_BYTES 521728
#define G4_WQ 68608    /* 256 + 2816 + 65536 */
#define G4_WK 109568   /* + 5·8192 */
#define G4_W1 191488   /* + wk, wv 5·4096 each, wo 5·8192 */
#define G4_W2 301568   /* + 5·22016 */

/* ---- export.py, written out again ------------------------------------------------------------- */

/* quantize_q80 on n values, n a multiple of gs. A group of zeros has s = 0; its q is 0. */
static void ref_q80(const float *w, size_t n, int gs, int8_t *q, float *s) {
    for (size_t g = 0; g < n / (size_t)gs; g++) {
        float wmax = 0;
        for (int i = 0; i < gs; i++)
            if (fabsf(w[g * gs + i]) > wmax) wmax = fabsf(w[g * gs + i]);
        s[g] = wmax / 127.0f;
        for (int i = 0; i < gs; i++) q[g * gs + i] = s[g] == 0 ? 0 : (int8_t)nearbyintf(w[g * gs + i] / s[g]);
    }
}

typedef struct bytes { uint8_t *p; size_t n, cap; } bytes;

static void put(bytes *b, const void *x, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, x, n);
    b->n += n;
}

static void put_u32(bytes *b, uint32_t v) {
    uint8_t le[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
    put(b, le, 4);
}

static void put_f32s(bytes *b, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        put_u32(b, u);
    }
}

static size_t numel(const qc_config *c, qc_weight w) {
    int rows, cols;
    qc_weight_shape(c, w, &rows, &cols);
    return (size_t)rows * cols;
}

static float *read_w(const qc_weight_source *src, qc_weight w, int layer) {
    qc_err e = { "" };
    float *x = calloc(numel(src->cfg, w), sizeof(float));
    CHECK_OK(src->read(src->ctx, w, layer, x, &e), e);
    return x;
}

/* The qweight a version 2 file stores as it is: 8-bit, symmetric, in groups of gs (the tests'
 * linears all are; a token embedding's that is not is re-quantized from read()). */
static const qc_qweight *kept_qw(const qc_weight_source *src, qc_weight w, int layer, int gs) {
    const qc_qweight *qw = src->qweight ? src->qweight(src->ctx, w, layer) : NULL;
    return qw && qw->bits == 8 && qw->sym && qw->groupsize == gs ? qw : NULL;
}

/* The int8 codes and scales a version 2 file holds for a matrix: a kept qweight's codes − 128
 * and scales, or ref_q80 of the fp32 weight. */
static void q8_of(const qc_weight_source *src, qc_weight w, int layer, int gs, int8_t *q, float *s) {
    size_t n = numel(src->cfg, w);
    const qc_qweight *qw = kept_qw(src, w, layer, gs);
    if (qw) {
        for (size_t i = 0; i < n; i++) q[i] = (int8_t)((int)qw->codes[i] - 128);
        memcpy(s, qw->scales, n / gs * sizeof(float));
    } else {
        float *x = read_w(src, w, layer);
        ref_q80(x, n, gs, q, s);
        free(x);
    }
}

/* export.py's matrices, in file order (`weights`); the classifier is appended when untied. */
static const qc_weight mats[] = { QC_W_EMBED, QC_W_Q, QC_W_K, QC_W_V, QC_W_O, QC_W_GATE, QC_W_DOWN, QC_W_UP };

/* version1_export (gs ignored) or version2_export of src, as bytes. */
static bytes ref_file(const qc_weight_source *src, int version, int gs) {
    const qc_config *c = src->cfg;
    bytes b = { 0 };
    put_u32(&b, 0x616b3432);
    put_u32(&b, (uint32_t)version);
    int32_t p[7] = { c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->seq_len };
    for (int i = 0; i < 7; i++) put_u32(&b, (uint32_t)p[i]);
    uint8_t shared = c->tied_classifier;
    put(&b, &shared, 1);
    if (version == 2) put_u32(&b, (uint32_t)gs);
    while (b.n < 256) put(&b, "", 1);
    for (int l = 0; l < c->n_layers; l++) {
        float *x = read_w(src, QC_W_ATTN_NORM, l);
        put_f32s(&b, x, (size_t)c->dim);
        free(x);
    }
    for (int l = 0; l < c->n_layers; l++) {
        float *x = read_w(src, QC_W_FFN_NORM, l);
        put_f32s(&b, x, (size_t)c->dim);
        free(x);
    }
    float *fin = read_w(src, QC_W_FINAL_NORM, 0);
    put_f32s(&b, fin, (size_t)c->dim);
    free(fin);
    for (int i = 0; i < 9; i++) {
        qc_weight w = i < 8 ? mats[i] : QC_W_CLASSIFIER;
        if (w == QC_W_CLASSIFIER && c->tied_classifier) break;
        size_t n = numel(c, w);
        for (int l = 0; l < (qc_weight_is_global(w) ? 1 : c->n_layers); l++) {
            if (version == 1) {
                float *x = read_w(src, w, l);
                put_f32s(&b, x, n);
                free(x);
                continue;
            }
            int8_t *q = malloc(n);
            float *s = malloc(n / gs * sizeof(float));
            q8_of(src, w, l, gs, q, s);
            put(&b, q, n);
            put_f32s(&b, s, n / gs);
            free(q), free(s);
        }
    }
    return b;
}

static uint8_t *slurp(const char *path, size_t *n) {
    char *buf = NULL;
    qc_err e = { "" };
    *n = 0;
    CHECK_OK(qc_read_file(path, (size_t)1 << 30, &buf, n, &e), e);
    return (uint8_t *)buf;
}

/* Every weight of the file at path equals what src gives through the file's storage: fp32
 * for norms (and everything in version 1), q · s for version 2 matrices; bit for bit. The
 * embedding is also read one token at a time, as the model does. */
static void expect_weights(const char *path, const qc_weight_source *src, int version, int gs) {
    qc_err e = { "" };
    qc_checkpoint *ck = NULL;
    CHECK_OK(qc_checkpoint_open(&ck, path, &e), e);
    if (!ck) return;
    const qc_config *c = qc_checkpoint_config(ck), *w0 = src->cfg;
    CHECK(c->dim == w0->dim && c->hidden_dim == w0->hidden_dim && c->n_layers == w0->n_layers &&
              c->n_heads == w0->n_heads && c->n_kv_heads == w0->n_kv_heads && c->head_dim == w0->head_dim &&
              c->vocab_size == w0->vocab_size && c->seq_len == w0->seq_len && c->norm_eps == 1e-5f &&
              c->rope_theta == 10000.0f && c->tied_classifier == w0->tied_classifier,
          "%s: config", path);
    CHECK(strcmp(qc_checkpoint_format(ck), "llama2.c") == 0, "format %s", qc_checkpoint_format(ck));
    char qtype[32];
    snprintf(qtype, sizeof qtype, "q8_0-g%d", gs);
    int bad = 0, badtype = 0;
    for (int w = 0; w < QC_W_COUNT; w++)
        for (int l = 0; l < (qc_weight_is_global((qc_weight)w) ? 1 : c->n_layers) && qc_weight_present(c, (qc_weight)w); l++) {
            size_t n = numel(c, (qc_weight)w);
            bool mat = n != (size_t)c->dim, q8 = version == 2 && mat;
            const char *qt = qc_checkpoint_qtype(ck, (qc_weight)w, l);
            badtype += q8 ? !qt || strcmp(qt, qtype) != 0 || qc_checkpoint_dtype(ck, (qc_weight)w, l) != QC_DT_I8
                          : qt != NULL || qc_checkpoint_dtype(ck, (qc_weight)w, l) != QC_DT_F32;
            float *got = calloc(n, sizeof(float)), *want = calloc(n, sizeof(float));
            CHECK_OK(qc_checkpoint_read(ck, (qc_weight)w, l, got, &e), e);
            qc_weight sw = w == QC_W_CLASSIFIER && c->tied_classifier ? QC_W_EMBED : (qc_weight)w;
            if (!q8) {
                float *x = read_w(src, sw, l);
                memcpy(want, x, n * sizeof(float));
                free(x);
            } else {
                int8_t *q = malloc(n);
                float *s = malloc(n / gs * sizeof(float));
                q8_of(src, sw, l, gs, q, s);
                for (size_t k = 0; k < n; k++) want[k] = (float)q[k] * s[k / gs];
                free(q), free(s);
                const qc_qweight *qw = kept_qw(src, sw, l, gs);
                if (qw) { /* and that is exactly the solver's dequantized weight */
                    float *d = calloc(n, sizeof(float));
                    qc_qweight_dequantize(qw, d);
                    bad += memcmp(d, got, n * sizeof(float)) != 0;
                    free(d);
                }
            }
            if (memcmp(got, want, n * sizeof(float)) != 0) {
                bad++;
                for (size_t k = 0; k < n; k++)
                    if (got[k] != want[k]) {
                        fprintf(stderr, "  %s %s layer %d [%zu]: %.9g, want %.9g\n", path,
                                qc_weight_short_name((qc_weight)w), l, k, got[k], want[k]);
                        break;
                    }
            }
            if (w == QC_W_EMBED || w == QC_W_CLASSIFIER) { /* row by row, as qc_model_embed reads */
                int toks[] = { 0, 1, 2, 257, 300, c->vocab_size - 1 }, misses = 0;
                float row[4096];
                for (int t = 0; t < 6 && c->dim <= 4096; t++) {
                    CHECK_OK(qc_checkpoint_read_rows(ck, (qc_weight)w, toks[t], 1, row, &e), e);
                    misses += memcmp(row, got + (size_t)toks[t] * c->dim, (size_t)c->dim * sizeof(float)) != 0;
                }
                float *block = calloc((size_t)7 * c->dim, sizeof(float));
                CHECK_OK(qc_checkpoint_read_rows(ck, (qc_weight)w, 100, 7, block, &e), e);
                misses += memcmp(block, got + (size_t)100 * c->dim, (size_t)7 * c->dim * sizeof(float)) != 0;
                free(block);
                CHECK(misses == 0, "%s: %d row reads of %s differ from the whole read", path, misses,
                      qc_weight_short_name((qc_weight)w));
            }
            free(got), free(want);
        }
    CHECK(bad == 0, "%s: %d weights differ from export.py's values", path, bad);
    CHECK(badtype == 0, "%s: %d weights with the wrong qtype/dtype (want %s)", path, badtype, qtype);
    qc_checkpoint_close(ck);
}

/* The file at path equals ref_file byte for byte. */
static void expect_bytes(const char *path, const bytes *ref) {
    size_t n;
    uint8_t *got = slurp(path, &n);
    CHECK(n == ref->n, "%s: %zu bytes, export.py's layout has %zu", path, n, ref->n);
    size_t first = 0;
    while (first < n && first < ref->n && got[first] == ref->p[first]) first++;
    CHECK(n == ref->n && first == n, "%s: first difference from export.py's bytes at offset %zu", path, first);
    free(got);
}

static bool no_temporaries(void) { return system("test -z \"$(ls \"$QCALIB_TMP\" | grep '\\.tmp\\.')\"") == 0; }

/* ---- weight sources ------------------------------------------------------------------------------ */

/* A checkpoint seen through a changed config (refusals), an untied classifier (the
 * embedding scaled by 0.75, so it differs), and optional 8-bit qweights on the linears. */
typedef struct wrap {
    const qc_checkpoint *ck;
    qc_config cfg;
    qc_qweight *q;     /* (n_layers * 7) or NULL */
    qc_qweight *embed; /* or NULL */
} wrap;

static const qc_weight linears[7] = { QC_W_Q, QC_W_K, QC_W_V, QC_W_O, QC_W_GATE, QC_W_UP, QC_W_DOWN };

static int lin_index(qc_weight w) {
    for (int i = 0; i < 7; i++)
        if (linears[i] == w) return i;
    return -1;
}

static const qc_qweight *wrap_qweight(void *ctx, qc_weight w, int layer) {
    wrap *s = ctx;
    if (w == QC_W_EMBED) return s->embed;
    return s->q && lin_index(w) >= 0 ? &s->q[layer * 7 + lin_index(w)] : NULL;
}

static qc_status wrap_read(void *ctx, qc_weight w, int layer, float *out, qc_err *e) {
    wrap *s = ctx;
    const qc_qweight *qw = wrap_qweight(ctx, w, layer);
    if (qw) {
        qc_qweight_dequantize(qw, out);
        return QC_OK;
    }
    bool cls = w == QC_W_CLASSIFIER && !s->cfg.tied_classifier;
    qc_status st = qc_checkpoint_read(s->ck, cls ? QC_W_EMBED : w, layer, out, e);
    for (size_t i = 0; cls && i < numel(&s->cfg, w); i++) out[i] *= 0.75f;
    return st;
}

static qc_weight_source wrap_source(wrap *s) {
    return (qc_weight_source){ .cfg = &s->cfg, .read = wrap_read, .qweight = s->q || s->embed ? wrap_qweight : NULL,
                               .ctx = s };
}

/* Round-to-nearest 8-bit symmetric qweight (QUANT-SPEC §1: range forced to contain 0,
 * xmax = max(|min|, max), scale = 2·xmax / 255, zero 128, codes clamped to 0..255) of x
 * (rows, cols), in groups of gs consecutive columns. */
static void rtn8(const float *x, int rows, int cols, int gs, qc_qweight *q) {
    qc_err e = { "" };
    CHECK_OK(qc_qweight_init(q, rows, cols, 8, gs, true, &e), e);
    for (int r = 0; r < rows; r++)
        for (int g = 0; g < q->ngroups; g++) {
            const float *xg = x + (size_t)r * cols + (size_t)g * gs;
            float lo = 0, hi = 0;
            for (int k = 0; k < gs; k++) lo = fminf(lo, xg[k]), hi = fmaxf(hi, xg[k]);
            float xmax = fmaxf(-lo, hi);
            if (xmax == 0) xmax = 1;
            float scale = 2 * xmax / 255.0f;
            q->scales[(size_t)r * q->ngroups + g] = scale;
            q->zeros[(size_t)r * q->ngroups + g] = 128;
            for (int k = 0; k < gs; k++) {
                float v = nearbyintf(xg[k] / scale) + 128;
                q->codes[(size_t)r * cols + (size_t)g * gs + k] = (uint8_t)fminf(fmaxf(v, 0), 255);
            }
        }
}

/* rtn8 of every linear of ck. */
static qc_qweight *rtn_qweights(const qc_checkpoint *ck, int gs) {
    qc_err e = { "" };
    const qc_config *c = qc_checkpoint_config(ck);
    qc_qweight *all = calloc((size_t)c->n_layers * 7, sizeof *all);
    for (int l = 0; l < c->n_layers; l++)
        for (int i = 0; i < 7; i++) {
            int rows, cols;
            qc_weight_shape(c, linears[i], &rows, &cols);
            float *x = calloc((size_t)rows * cols, sizeof(float));
            CHECK_OK(qc_checkpoint_read(ck, linears[i], l, x, &e), e);
            rtn8(x, rows, cols, gs, &all[l * 7 + i]);
            free(x);
        }
    return all;
}

static void free_qweights(qc_qweight *q, int n) {
    for (int i = 0; i < n; i++) qc_qweight_free(&q[i]);
    free(q);
}

/* ---- (a) export.py's quantizer on the real model ------------------------------------------------------ */

static void test_export_reference(void) {
    qc_err e = { "" };
    qc_checkpoint *ck = NULL;
    CHECK_OK(qc_checkpoint_open(&ck, shared_path(STORIES), &e), e);
    if (!ck) return;
    qc_weight_source src = qc_checkpoint_source(ck);
    /* 32 and 64 do not divide hidden_dim 172: refused, nothing written */
    const char *p32 = tmp_path("g32.bin"), *p64 = tmp_path("g64.bin");
    CHECK_FAILS_AT(qc_llama2c_q8_export(&src, p32, 32, NULL, &e), e, p32, "group size 32 does not divide hidden_dim 172");
    CHECK_FAILS_AT(qc_llama2c_q8_export(&src, p64, 64, NULL, &e), e, p64, "group sizes that divide both are the divisors of 4");
    CHECK_FAILS(qc_llama2c_q8_export(&src, p64, 0, NULL, &e), e, "group size 0");
    CHECK_FAILS(qc_llama2c_q8_export(&src, p64, 3, NULL, &e), e, "group size 3 does not divide dim 64");
    CHECK(!qc_path_exists(p32) && !qc_path_exists(p64) && no_temporaries(), "nothing written");
    /* the group sizes stories260K allows */
    int sizes[] = { 1, 2, 4 };
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "g%d.bin", sizes[i]);
        const char *path = tmp_path(name);
        CHECK_OK(qc_llama2c_q8_export(&src, path, sizes[i], NULL, &e), e);
        bytes ref = ref_file(&src, 2, sizes[i]);
        expect_bytes(path, &ref);
        free(ref.p);
        expect_weights(path, &src, 2, sizes[i]);
    }
    qc_checkpoint_close(ck);
    /* 32 and 64 on the same model with its FFN zero-padded to 192 */
    CHECK_OK(qc_checkpoint_open(&ck, shared_path(STORIES), &e), e);
    if (!ck) return;
    CHECK_OK(qc_checkpoint_pad_ffn(ck, 64, &e), e);
    src = qc_checkpoint_source(ck);
    CHECK(src.cfg->hidden_dim == 192, "padded to %d", src.cfg->hidden_dim);
    const char *pads[2] = { tmp_path("pad_g32.bin"), tmp_path("pad_g64.bin") };
    for (int i = 0; i < 2; i++) {
        int gs = 32 << i;
        qc_log log = { 0 };
        CHECK_OK(qc_llama2c_q8_export(&src, pads[i], gs, &log, &e), e);
        bytes ref = ref_file(&src, 2, gs);
        expect_bytes(pads[i], &ref);
        free(ref.p);
        expect_weights(pads[i], &src, 2, gs);
    }
    qc_checkpoint_close(ck);
}

/* ---- (c) the bytes at export.py's offsets, computed by hand --------------------------------------------- */

static void test_layout_by_hand(void) {
    qc_err e = { "" };
    qc_checkpoint *ck = NULL;
    CHECK_OK(qc_checkpoint_open(&ck, shared_path(STORIES), &e), e);
    if (!ck) return;
    const char *path = tmp_path("hand_g4.bin");
    qc_weight_source src = qc_checkpoint_source(ck);
    CHECK_OK(qc_llama2c_q8_export(&src, path, 4, NULL, &e), e);
    size_t n;
    uint8_t *f = slurp(path, &n);
    CHECK(n == G4_BYTES, "%zu bytes, want %d", n, G4_BYTES);
    if (n != G4_BYTES) { free(f), qc_checkpoint_close(ck); return; }
    /* header: struct.pack('I', 0x616b3432), 'i' 2, 7 × 'i', 'B' 1, 'i' 4, zeros to 256 */
    static const uint8_t head[41] = { '2', '4', 'k', 'a', 2, 0, 0, 0, 64, 0, 0, 0, 172, 0, 0, 0, 5, 0, 0, 0,
                                      8,   0,   0,   0,   4, 0, 0, 0, 0, 2, 0, 0, 0,   2, 0, 0, 1, 4, 0, 0, 0 };
    CHECK(memcmp(f, head, sizeof head) == 0, "header bytes");
    int nonzero = 0;
    for (int i = 41; i < 256; i++) nonzero += f[i] != 0;
    CHECK(nonzero == 0, "%d non-zero padding bytes", nonzero);
    /* norms: rms_att of layer 0 at 256, rms_ffn of layer 0 at 256 + 5·256, rms_final at 256 + 10·256 */
    float x[64 * 172], s[64 * 172 / 4];
    int8_t q[64 * 172];
    CHECK_OK(qc_checkpoint_read(ck, QC_W_ATTN_NORM, 0, x, &e), e);
    CHECK(memcmp(f + 256, x, 256) == 0, "rms_att[0] at 256");
    CHECK_OK(qc_checkpoint_read(ck, QC_W_FFN_NORM, 3, x, &e), e);
    CHECK(memcmp(f + 256 + 8 * 256, x, 256) == 0, "rms_ffn[3] at 2304");
    CHECK_OK(qc_checkpoint_read(ck, QC_W_FINAL_NORM, 0, x, &e), e);
    CHECK(memcmp(f + 256 + 10 * 256, x, 256) == 0, "rms_final at 2816");
    /* token embedding at 3072: 32768 codes, 8192 scales */
    float *emb = calloc(512 * 64, sizeof(float)), *es = calloc(8192, sizeof(float));
    int8_t *eq = malloc(512 * 64);
    CHECK_OK(qc_checkpoint_read(ck, QC_W_EMBED, 0, emb, &e), e);
    ref_q80(emb, 512 * 64, 4, eq, es);
    CHECK(memcmp(f + 3072, eq, 32768) == 0 && memcmp(f + 3072 + 32768, es, 32768) == 0, "embedding at 3072");
    free(emb), free(es), free(eq);
    /* wq of layer 0 right after; wk of layer 2; w2 of layer 0 (groups of 4 along rows of 172) */
    CHECK_OK(qc_checkpoint_read(ck, QC_W_Q, 0, x, &e), e);
    ref_q80(x, 4096, 4, q, s);
    CHECK(memcmp(f + G4_WQ, q, 4096) == 0 && memcmp(f + G4_WQ + 4096, s, 4096) == 0, "wq[0] at %d", G4_WQ);
    CHECK_OK(qc_checkpoint_read(ck, QC_W_K, 2, x, &e), e);
    ref_q80(x, 2048, 4, q, s);
    CHECK(memcmp(f + G4_WK + 2 * 4096, q, 2048) == 0 && memcmp(f + G4_WK + 2 * 4096 + 2048, s, 2048) == 0,
          "wk[2] at %d", G4_WK + 2 * 4096);
    CHECK_OK(qc_checkpoint_read(ck, QC_W_GATE, 4, x, &e), e);
    ref_q80(x, 11008, 4, q, s);
    CHECK(memcmp(f + G4_W1 + 4 * 22016, q, 11008) == 0 && memcmp(f + G4_W1 + 4 * 22016 + 11008, s, 11008) == 0,
          "w1[4] at %d", G4_W1 + 4 * 22016);
    CHECK_OK(qc_checkpoint_read(ck, QC_W_DOWN, 0, x, &e), e);
    ref_q80(x, 11008, 4, q, s);
    CHECK(memcmp(f + G4_W2, q, 11008) == 0 && memcmp(f + G4_W2 + 11008, s, 11008) == 0, "w2[0] at %d", G4_W2);
    /* one value by hand: w2[0] row 1, column 5 is flat element 177, group 44 */
    float v;
    memcpy(&v, f + G4_W2 + 11008 + 4 * 44, 4);
    float row[172];
    qc_checkpoint *q8 = NULL;
    CHECK_OK(qc_checkpoint_open(&q8, path, &e), e);
    if (q8) {
        float *w2 = calloc(64 * 172, sizeof(float));
        CHECK_OK(qc_checkpoint_read(q8, QC_W_DOWN, 0, w2, &e), e);
        memcpy(row, w2 + 172, sizeof row);
        CHECK(row[5] == (float)(int8_t)f[G4_W2 + 177] * v, "w2[0][1][5] = q[177] · s[44]");
        free(w2);
        qc_checkpoint_close(q8);
    }
    free(f);
    qc_checkpoint_close(ck);
}

/* ---- (b) a source with the solver's 8-bit qweights ----------------------------------------------------- */

static void test_export_solver_qweights(void) {
    qc_err e = { "" };
    for (int pass = 0; pass < 2; pass++) { /* group size 4 on the model; 64 with the FFN padded to 192 */
        int gs = pass ? 64 : 4;
        qc_checkpoint *ck = NULL;
        CHECK_OK(qc_checkpoint_open(&ck, shared_path(STORIES), &e), e);
        if (!ck) return;
        if (pass) CHECK_OK(qc_checkpoint_pad_ffn(ck, 64, &e), e);
        wrap w = { .ck = ck, .cfg = *qc_checkpoint_config(ck), .q = rtn_qweights(ck, gs) };
        qc_weight_source src = wrap_source(&w);
        const char *path = tmp_path(pass ? "solver_g64.bin" : "solver_g4.bin");
        CHECK_OK(qc_llama2c_q8_export(&src, path, gs, NULL, &e), e);
        bytes ref = ref_file(&src, 2, gs);
        expect_bytes(path, &ref);
        free(ref.p);
        expect_weights(path, &src, 2, gs); /* includes: linears == qc_qweight_dequantize, bit for bit */
        /* and the file really holds the solver's codes, not export.py's re-quantization */
        qc_checkpoint *q8 = NULL;
        CHECK_OK(qc_checkpoint_open(&q8, path, &e), e);
        if (q8) {
            size_t n = numel(&w.cfg, QC_W_DOWN), differ = 0;
            float *got = calloc(n, sizeof(float)), *x = calloc(n, sizeof(float)), *s = calloc(n, sizeof(float));
            int8_t *q = malloc(n);
            CHECK_OK(qc_checkpoint_read(q8, QC_W_DOWN, 2, got, &e), e);
            CHECK_OK(qc_checkpoint_read(ck, QC_W_DOWN, 2, x, &e), e);
            ref_q80(x, n, gs, q, s);
            for (size_t k = 0; k < n; k++) differ += got[k] != (float)q[k] * s[k / gs];
            CHECK(differ > n / 4, "only %zu of %zu values differ from export.py's quantizer", differ, n);
            free(got), free(x), free(s), free(q);
            qc_checkpoint_close(q8);
        }

        /* qweights the file cannot hold as they are: refused, naming the tensor, nothing written */
        const char *bad = tmp_path("solver_bad.bin");
        qc_qweight *t = &w.q[2 * 7 + 6]; /* w2 (down) of layer 2 */
        t->bits = 4;
        CHECK_FAILS_AT(qc_llama2c_q8_export(&src, bad, gs, NULL, &e), e, bad,
                       "w2 (down) of layer 2 is quantized to 4 bits; llama2.c version 2 (Q8_0) stores 8-bit codes only");
        t->bits = 8;
        t->sym = false;
        CHECK_FAILS(qc_llama2c_q8_export(&src, bad, gs, NULL, &e), e, "w2 (down) of layer 2 is quantized asymmetrically");
        t->sym = true;
        t->zeros[5] = 127;
        CHECK_FAILS(qc_llama2c_q8_export(&src, bad, gs, NULL, &e), e, "has zero point 127; Q8_0 needs 128");
        t->zeros[5] = 128;
        float s1 = t->scales[1];
        t->scales[1] = NAN;
        CHECK_FAILS(qc_llama2c_q8_export(&src, bad, gs, NULL, &e), e, "row 0, group 1 has scale nan");
        t->scales[1] = s1;
        int32_t g0 = t->g_idx[0];
        t->g_idx[0] = t->g_idx[gs]; /* act-order: column 0 in another group */
        CHECK_FAILS(qc_llama2c_q8_export(&src, bad, gs, NULL, &e), e, "column 0 is in group 1 (act-order)");
        t->g_idx[0] = g0;
        qc_qweight other; /* the same weight in groups of half the size */
        CHECK_OK(qc_qweight_init(&other, t->rows, t->cols, 8, gs / 2, true, &e), e);
        qc_qweight keep = *t;
        *t = other;
        char want[128];
        snprintf(want, sizeof want, "quantized in groups of %d columns (%d per row); the file's group_size is %d",
                 gs / 2, other.ngroups, gs);
        CHECK_FAILS(qc_llama2c_q8_export(&src, bad, gs, NULL, &e), e, want);
        *t = keep;
        qc_qweight_free(&other);
        CHECK_OK(qc_qweight_init(&other, 3, t->cols, 8, gs, true, &e), e);
        *t = other;
        CHECK_FAILS(qc_llama2c_q8_export(&src, bad, gs, NULL, &e), e, "the quantized weight is (3, ");
        *t = keep;
        qc_qweight_free(&other);
        CHECK(!qc_path_exists(bad) && no_temporaries(), "nothing written");
        free_qweights(w.q, w.cfg.n_layers * 7);
        qc_checkpoint_close(ck);
    }
}

/* ---- (b') a quantized token embedding ------------------------------------------------------------------ */

/* Exports src at group size gs to name and checks it against export.py's layout and values
 * (the oracle stores a kept qweight as it is, re-quantizes anything else from read()). */
static void export_and_check(const qc_weight_source *src, const char *name, int gs) {
    qc_err e = { "" };
    const char *path = tmp_path(name);
    CHECK_OK(qc_llama2c_q8_export(src, path, gs, NULL, &e), e);
    bytes ref = ref_file(src, 2, gs);
    expect_bytes(path, &ref);
    free(ref.p);
    expect_weights(path, src, 2, gs);
}

/* The embedding's qweight is stored as it is when 8-bit symmetric in groups of the file's
 * size; a 4-bit one, or one of another group size, gets export.py's quantizer of its
 * dequantized values instead. */
static void test_export_quantized_embedding(void) {
    qc_err e = { "" };
    qc_checkpoint *ck = NULL;
    CHECK_OK(qc_checkpoint_open(&ck, shared_path(STORIES), &e), e);
    if (!ck) return;
    const int gs = 4;
    const qc_config *c = qc_checkpoint_config(ck);
    size_t n = numel(c, QC_W_EMBED);
    float *x = calloc(n, sizeof(float));
    CHECK_OK(qc_checkpoint_read(ck, QC_W_EMBED, 0, x, &e), e);
    qc_qweight emb8, emb8_g2, emb4;
    rtn8(x, c->vocab_size, c->dim, gs, &emb8);
    rtn8(x, c->vocab_size, c->dim, 2, &emb8_g2);
    CHECK_OK(qc_qweight_init(&emb4, c->vocab_size, c->dim, 4, gs, true, &e), e);
    for (size_t i = 0; i < n; i++) emb4.codes[i] = emb8.codes[i] >> 4;
    for (size_t i = 0; i < n / gs; i++) emb4.scales[i] = emb8.scales[i] * 16, emb4.zeros[i] = 8;
    wrap w = { .ck = ck, .cfg = *c, .q = rtn_qweights(ck, gs), .embed = &emb8 };
    qc_weight_source src = wrap_source(&w);
    export_and_check(&src, "embed_q8_g4.bin", gs);
    qc_checkpoint *q8 = NULL; /* the solver's codes, not export.py's re-quantization of the weights */
    CHECK_OK(qc_checkpoint_open(&q8, tmp_path("embed_q8_g4.bin"), &e), e);
    if (q8) {
        float *got = calloc(n, sizeof(float)), *want = calloc(n, sizeof(float)), *s = calloc(n / gs, sizeof(float));
        int8_t *q = malloc(n);
        CHECK_OK(qc_checkpoint_read(q8, QC_W_EMBED, 0, got, &e), e);
        qc_qweight_dequantize(&emb8, want);
        CHECK(memcmp(got, want, n * sizeof(float)) == 0, "the embedding reads back as qc_qweight_dequantize");
        ref_q80(x, n, gs, q, s);
        size_t differ = 0;
        for (size_t k = 0; k < n; k++) differ += got[k] != (float)q[k] * s[k / gs];
        CHECK(differ > n / 4, "only %zu of %zu values differ from export.py's quantizer", differ, n);
        free(got), free(want), free(s), free(q);
        qc_checkpoint_close(q8);
    }
    w.embed = &emb8_g2;
    export_and_check(&src, "embed_q8_g2.bin", gs);
    w.embed = &emb4;
    export_and_check(&src, "embed_q4.bin", gs);
    free_qweights(w.q, c->n_layers * 7);
    qc_qweight_free(&emb8), qc_qweight_free(&emb8_g2), qc_qweight_free(&emb4);
    free(x);
    qc_checkpoint_close(ck);
}

/* ---- untied classifiers, version 1, folders, what llama2.c cannot express ------------------------------- */

static void test_untied_and_version1(void) {
    qc_err e = { "" };
    qc_checkpoint *ck = NULL;
    CHECK_OK(qc_checkpoint_open(&ck, shared_path(STORIES), &e), e);
    if (!ck) return;
    wrap w = { .ck = ck, .cfg = *qc_checkpoint_config(ck) };
    w.cfg.tied_classifier = false;
    qc_weight_source src = wrap_source(&w);
    /* version 2, untied: shared_classifier 0 and wcls appended (32768 codes + 8192 scales) */
    const char *path = tmp_path("untied_g4.bin");
    CHECK_OK(qc_llama2c_q8_export(&src, path, 4, NULL, &e), e);
    bytes ref = ref_file(&src, 2, 4);
    CHECK(ref.n == G4_BYTES + 65536 && ref.p[36] == 0, "untied layout");
    expect_bytes(path, &ref);
    free(ref.p);
    expect_weights(path, &src, 2, 4);
    /* version 1 (fp32), tied and untied, written here as export.py would */
    for (int tied = 0; tied < 2; tied++) {
        w.cfg.tied_classifier = tied;
        bytes v1 = ref_file(&src, 1, 0);
        const char *p1 = tmp_path(tied ? "v1_tied.bin" : "v1_untied.bin");
        write_file(p1, v1.p, v1.n);
        expect_weights(p1, &src, 1, 0);
        /* truncated / extra */
        const char *cut = tmp_path("v1_cut.bin");
        write_file(cut, v1.p, v1.n - 4);
        qc_checkpoint *bad = NULL;
        CHECK_FAILS_AT(qc_checkpoint_open(&bad, cut, &e), e, cut, "truncated: the version 1 header implies");
        free(v1.p);
    }
    /* a folder holding a version 2 file as model.bin (as qcalib writes llama2.c models) */
    const char *dir = tmp_path("q8dir");
    mkdir(dir, 0755);
    char bin[1100];
    snprintf(bin, sizeof bin, "%s/model.bin", dir);
    w.cfg.tied_classifier = true;
    CHECK_OK(qc_llama2c_q8_export(&src, bin, 4, NULL, &e), e);
    qc_checkpoint *f = NULL;
    CHECK_OK(qc_checkpoint_open(&f, dir, &e), e);
    if (f) {
        const char *qt = qc_checkpoint_qtype(f, QC_W_UP, 4);
        CHECK(qt && strcmp(qt, "q8_0-g4") == 0, "qtype %s", qt ? qt : "(null)");
        qc_checkpoint_close(f);
    }
    /* configs llama2.c cannot express */
    const char *no = tmp_path("never.bin");
    w.cfg.head_dim = 16;
    CHECK_FAILS_AT(qc_llama2c_q8_export(&src, no, 4, NULL, &e), e, no, "llama2.c requires head_dim = dim / n_heads");
    w.cfg.head_dim = 8;
    w.cfg.rope_theta = 500000.0f;
    CHECK_FAILS(qc_llama2c_q8_export(&src, no, 4, NULL, &e), e, "hard-codes rope_theta 10000; this model has 500000");
    w.cfg.rope_theta = 10000.0f;
    w.cfg.norm_eps = 1e-6f;
    CHECK_FAILS(qc_llama2c_q8_export(&src, no, 4, NULL, &e), e, "hard-codes norm_eps 1e-5");
    w.cfg.norm_eps = 1e-5f;
    w.cfg.n_kv_heads = 3;
    CHECK_FAILS(qc_llama2c_q8_export(&src, no, 4, NULL, &e), e, "n_heads 8 is not a multiple of n_kv_heads 3");
    w.cfg.n_kv_heads = 4;
    CHECK(!qc_path_exists(no) && no_temporaries(), "nothing written");
    /* an unwritable place */
    write_file(tmp_path("plain"), "x", 1);
    CHECK_FAILS(qc_llama2c_q8_export(&src, tmp_path("plain/x.bin"), 4, NULL, &e), e, "plain/x.bin");
    qc_checkpoint_close(ck);
}

/* A source whose weights hold a NaN: refused naming the tensor and position; nothing left. */
static qc_status nan_read(void *ctx, qc_weight w, int layer, float *out, qc_err *e) {
    qc_status st = wrap_read(ctx, w, layer, out, e);
    if (w == QC_W_V && layer == 3) out[70] = NAN;
    return st;
}

static qc_status failing_read(void *ctx, qc_weight w, int layer, float *out, qc_err *e) {
    if (w == QC_W_UP && layer == 1) return qc_fail(e, QC_ERR_IO, "disk on fire");
    return wrap_read(ctx, w, layer, out, e);
}

static void test_export_bad_source(void) {
    qc_err e = { "" };
    qc_checkpoint *ck = NULL;
    CHECK_OK(qc_checkpoint_open(&ck, shared_path(STORIES), &e), e);
    if (!ck) return;
    wrap w = { .ck = ck, .cfg = *qc_checkpoint_config(ck) };
    qc_weight_source src = wrap_source(&w);
    const char *path = tmp_path("nan.bin");
    src.read = nan_read;
    CHECK_FAILS_AT(qc_llama2c_q8_export(&src, path, 4, NULL, &e), e, path, "wv of layer 3 holds nan at row 1, column 6");
    src.read = failing_read;
    CHECK_FAILS_AT(qc_llama2c_q8_export(&src, path, 4, NULL, &e), e, path, "reading w3 (up) of layer 1: disk on fire");
    CHECK(!qc_path_exists(path) && no_temporaries(), "nothing written");
    qc_checkpoint_close(ck);
}

/* ---- the reader on what export.py writes for stories260K by default --------------------------------------- */

/* export.py's version2_export with its default group size 64 checks only dim % 64 and so
 * writes stories260K with groups that straddle rows of w2 (172 columns). runq.c computes
 * nonsense with that file, but the values are well defined: the reader gives them. */
static void test_read_export_py_default(void) {
    qc_err e = { "" };
    qc_checkpoint *ck = NULL;
    CHECK_OK(qc_checkpoint_open(&ck, shared_path(STORIES), &e), e);
    if (!ck) return;
    qc_weight_source src = qc_checkpoint_source(ck);
    int sizes[] = { 64, 32, 8 };
    for (int i = 0; i < 3; i++) {
        bytes f = ref_file(&src, 2, sizes[i]);
        char name[32];
        snprintf(name, sizeof name, "exportpy_g%d.bin", sizes[i]);
        write_file(tmp_path(name), f.p, f.n);
        free(f.p);
        expect_weights(tmp_path(name), &src, 2, sizes[i]);
    }
    qc_checkpoint_close(ck);
}

/* ---- (d) broken files, one per failure mode ------------------------------------------------------------------ */

static void expect_open_fails(const char *path, const char *name, const char *needle) {
    qc_err e = { "" };
    qc_checkpoint *ck = NULL;
    CHECK_FAILS_AT(qc_checkpoint_open(&ck, path, &e), e, name, needle);
    CHECK(ck == NULL, "%s: no checkpoint on failure", name);
}

/* The good file with 4 bytes at off replaced by v; opened, expecting `needle`. */
static void bad_i32(const uint8_t *good, size_t n, size_t off, int32_t v, const char *needle) {
    char name[64];
    snprintf(name, sizeof name, "bad_%zu_%d.bin", off, (int)v);
    uint8_t *f = malloc(n);
    memcpy(f, good, n);
    memcpy(f + off, &v, 4);
    write_file(tmp_path(name), f, n);
    expect_open_fails(tmp_path(name), name, needle);
    free(f);
}

static void test_broken_files(void) {
    qc_err e = { "" };
    qc_checkpoint *ck = NULL;
    CHECK_OK(qc_checkpoint_open(&ck, shared_path(STORIES), &e), e);
    if (!ck) return;
    qc_weight_source src = qc_checkpoint_source(ck);
    const char *path = tmp_path("good_g4.bin");
    CHECK_OK(qc_llama2c_q8_export(&src, path, 4, NULL, &e), e);
    qc_checkpoint_close(ck);
    size_t n;
    uint8_t *good = slurp(path, &n);
    if (n != G4_BYTES) { free(good); CHECK(0, "good file of %zu bytes", n); return; }
    /* magic: not "ak42" means a legacy file, whose first int is dim */
    bad_i32(good, n, 0, 0x616b3433, "dim 1634415667 is not a multiple of n_heads 172 (read as a legacy header: "
                                    "the file does not begin with the \"ak42\" magic");
    /* versions */
    bad_i32(good, n, 4, 3, "llama2.c \"ak42\" file of version 3; versions 1 (fp32) and 2 (Q8_0 int8) are supported");
    bad_i32(good, n, 4, 0, "file of version 0");
    bad_i32(good, n, 4, -1, "file of version -1");
    bad_i32(good, n, 4, 1, "truncated: the version 1 header implies"); /* fp32 needs more bytes */
    /* params */
    bad_i32(good, n, 8, 1 << 30, "dim 1073741824 is out of range");
    bad_i32(good, n, 8, 0, "dim 0 is out of range");
    bad_i32(good, n, 12, -172, "hidden_dim -172 is out of range");
    bad_i32(good, n, 16, 0, "n_layers 0 is out of range");
    bad_i32(good, n, 16, 6, "truncated: the version 2 header implies");
    bad_i32(good, n, 16, 4, "extra bytes after the weights");
    bad_i32(good, n, 20, 7, "dim 64 is not a multiple of n_heads 7");
    bad_i32(good, n, 24, 3, "n_heads 8 is not a multiple of n_kv_heads 3");
    bad_i32(good, n, 28, -512, "vocab_size -512 is out of range");
    bad_i32(good, n, 28, 1 << 23, "vocab_size 8388608 is out of range");
    bad_i32(good, n, 32, 0, "seq_len 0 is out of range");
    /* group size (at byte 37, unaligned) */
    bad_i32(good, n, 37, 0, "group_size 0 (byte 37) must be positive");
    bad_i32(good, n, 37, -4, "group_size -4 (byte 37) must be positive");
    bad_i32(good, n, 37, 3, "group_size 3 does not divide dim 64");
    bad_i32(good, n, 37, 128, "group_size 128 does not divide dim 64");
    bad_i32(good, n, 37, 8, "extra bytes after the weights"); /* half the scales */
    bad_i32(good, n, 37, 2, "truncated");                     /* twice the scales */
    /* the classifier flag */
    uint8_t *f = malloc(n + 8);
    memcpy(f, good, n);
    f[36] = 2;
    write_file(tmp_path("flag2.bin"), f, n);
    expect_open_fails(tmp_path("flag2.bin"), "flag2.bin", "shared_classifier flag 2 (byte 36) is neither 0 nor 1");
    f[36] = 0; /* untied, but no classifier follows */
    write_file(tmp_path("flag0.bin"), f, n);
    expect_open_fails(tmp_path("flag0.bin"), "flag0.bin", "truncated: the version 2 header implies 587264 bytes");
    f[36] = 1;
    /* truncated anywhere */
    size_t cuts[] = { 0, 3, 4, 7, 8, 40, 255, 256, 3072, 3072 + 100, G4_WQ + 4096 + 2, G4_W2 + 11008, n - 1 };
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        char name[64];
        snprintf(name, sizeof name, "cut%zu.bin", cuts[i]);
        write_file(tmp_path(name), f, cuts[i]);
        const char *needle = cuts[i] < 4     ? "the llama2.c header alone needs 28"
                             : cuts[i] < 8   ? "the llama2.c \"ak42\" header alone needs 256"
                             : cuts[i] < 256 ? "the llama2.c version 2 header alone needs 256"
                                             : "truncated: the version 2 header implies 521728 bytes";
        expect_open_fails(tmp_path(name), name, needle);
        expect_open_fails(tmp_path(name), name, "truncated");
    }
    /* extra bytes */
    memset(f + n, 0, 8);
    write_file(tmp_path("extra1.bin"), f, n + 1);
    expect_open_fails(tmp_path("extra1.bin"), "extra1.bin", "1 extra bytes after the weights");
    write_file(tmp_path("extra8.bin"), f, n + 8);
    expect_open_fails(tmp_path("extra8.bin"), "extra8.bin", "8 extra bytes after the weights");
    free(f);
    free(good);
}

/* ---- (e) perplexity: Q8_0 evaluates like fp32 ---------------------------------------------------------------- */

static double ppl_of(const char *path, const int32_t *ids, size_t n) {
    qc_err e = { "" };
    qc_model *m = NULL;
    qc_windows w = { 0 };
    qc_eval_result r = { 0 };
    CHECK_OK(qc_model_open(&m, path, &e), e);
    if (!m) return NAN;
    CHECK_OK(qc_windows_sequential(ids, n, 256, &w, &e), e);
    qc_eval_opts o = { 0 };
    CHECK_OK(qc_eval_perplexity(m, &w, &o, &r, &e), e);
    qc_windows_free(&w);
    qc_model_free(m);
    return r.ppl;
}

static void test_perplexity(void) {
    qc_err e = { "" };
    qc_tokenizer t;
    qc_corpus c;
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(qc_tokenizer_load(&t, shared_path("models/stories260K/tok512.bin"), 512, &e), e);
    CHECK_OK(qc_corpus_load(&c, shared_path("data/tinystories/tinystories_eval.txt"), &e), e);
    CHECK_OK(qc_tokenizer_encode(&t, c.text, c.len, true, false, &ids, &n, &e), e);
    qc_corpus_free(&c);
    qc_tokenizer_free(&t);
    if (n > 40 * 256) n = 40 * 256; /* the first 40 windows of 256 tokens */
    double base = ppl_of(shared_path(STORIES), ids, n);
    /* files written by the tests above (same scratch folder) */
    const char *files[] = { "g4.bin", "pad_g64.bin", "solver_g4.bin", "solver_g64.bin" };
    printf("    perplexity, seqlen 256, %zu windows of tinystories_eval: fp32 %.4f\n", n / 256, base);
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        if (!qc_path_exists(tmp_path(files[i]))) { CHECK(0, "%s missing", files[i]); continue; }
        double p = ppl_of(tmp_path(files[i]), ids, n);
        printf("    %-16s %.4f (%+.3f%%)\n", files[i], p, 100 * (p / base - 1));
        fflush(stdout);
        CHECK(fabs(p / base - 1) < 0.01, "%s: perplexity %.4f vs fp32 %.4f: more than 1%% apart", files[i], p, base);
    }
    free(ids);
}

int main(void) {
    RUN(test_export_reference);
    RUN(test_layout_by_hand);
    RUN(test_export_solver_qweights);
    RUN(test_export_quantized_embedding);
    RUN(test_untied_and_version1);
    RUN(test_export_bad_source);
    RUN(test_read_export_py_default);
    RUN(test_broken_files);
    RUN(test_perplexity);
    return check_summary();
}
