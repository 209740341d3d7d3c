/* unit/io_gguf.c — GGUF (io/gguf_*.c): the block formats against hand-computed bytes and as the
 * oracle for ggml's reference quantizers; the real stories260K written as F32 and F16 and read
 * back (every weight, the config, the vocabulary); quantized round trips (Q4_0, Q4_1, Q8_0
 * linears from test-made round-to-nearest qc_qweights, not the solver's) read back bit-exactly
 * as qc_qweight_dequantize gives them; what the writer refuses; and one broken file per
 * failure mode of the reader, each refused with a message naming the file and the problem. */
#include "io/gguf.h"
#include "tests/check.h"

#include <math.h>
#include <unistd.h>

#define STORIES "models/stories260K/stories260K.bin"
#define TOK512 "models/stories260K/tok512.bin"
#define EVAL_TEXT "data/tinystories/tinystories_eval.txt"

static float f16r(float x) { return qc_f16_to_f32(qc_f32_to_f16(x)); }

static size_t nelem(const qc_config *c, qc_weight w) {
    int rows, cols;
    qc_weight_shape(c, w, &rows, &cols);
    return (size_t)rows * cols;
}


/* ---- block formats ------------------------------------------------------------------------------- */

static void test_block_bytes_by_hand(void) {
    uint8_t codes[32];
    float out[32];
    /* Q4_0: codes j % 16, d = 0.5 (fp16 0x3800): byte j = element j | element j+16 << 4 = 0x11·j */
    for (int j = 0; j < 32; j++) codes[j] = (uint8_t)(j % 16);
    qc_block_q4_0 b0;
    qc_gguf_q4_0_from_codes(codes, 0.5f, &b0);
    const uint8_t *p = (const uint8_t *)&b0;
    CHECK(p[0] == 0x00 && p[1] == 0x38, "Q4_0 d bytes %02x %02x", p[0], p[1]);
    for (int j = 0; j < 16; j++) CHECK(p[2 + j] == 0x11 * j, "Q4_0 byte %d = %02x", j, p[2 + j]);
    qc_gguf_q4_0_to_float(&b0, out);
    for (int j = 0; j < 32; j++) CHECK(out[j] == 0.5f * (float)(j % 16 - 8), "Q4_0 value %d = %g", j, (double)out[j]);
    /* nibble order: element 3 = 1, element 19 = 14 -> byte 3 = 0xe1 */
    memset(codes, 0, sizeof codes);
    codes[3] = 1;
    codes[19] = 14;
    qc_gguf_q4_0_from_codes(codes, 1.0f, &b0);
    CHECK(p[2 + 3] == 0xe1 && p[2 + 0] == 0x00, "Q4_0 nibble order: byte 3 = %02x", p[2 + 3]);

    /* Q4_1: d = 0.25 (0x3400), m = -1 (0xbc00) */
    for (int j = 0; j < 32; j++) codes[j] = (uint8_t)(15 - j % 16);
    qc_block_q4_1 b1;
    qc_gguf_q4_1_from_codes(codes, 0.25f, -1.0f, &b1);
    p = (const uint8_t *)&b1;
    CHECK(p[0] == 0x00 && p[1] == 0x34 && p[2] == 0x00 && p[3] == 0xbc, "Q4_1 d, m bytes %02x %02x %02x %02x", p[0],
          p[1], p[2], p[3]);
    for (int j = 0; j < 16; j++) CHECK(p[4 + j] == (uint8_t)(0x11 * (15 - j)), "Q4_1 byte %d = %02x", j, p[4 + j]);
    qc_gguf_q4_1_to_float(&b1, out);
    for (int j = 0; j < 32; j++) CHECK(out[j] == 0.25f * (float)(15 - j % 16) - 1.0f, "Q4_1 value %d", j);

    /* Q8_0: code 128 + j − 16 is int8 j − 16; d = 0.0625 (0x2c00) */
    for (int j = 0; j < 32; j++) codes[j] = (uint8_t)(128 + j - 16);
    qc_block_q8_0 b8;
    qc_gguf_q8_0_from_codes(codes, 0.0625f, &b8);
    p = (const uint8_t *)&b8;
    CHECK(p[0] == 0x00 && p[1] == 0x2c, "Q8_0 d bytes %02x %02x", p[0], p[1]);
    for (int j = 0; j < 32; j++) CHECK(p[2 + j] == (uint8_t)(j - 16), "Q8_0 byte %d = %02x", j, p[2 + j]);
    qc_gguf_q8_0_to_float(&b8, out);
    for (int j = 0; j < 32; j++) CHECK(out[j] == 0.0625f * (float)(j - 16), "Q8_0 value %d", j);
    CHECK(sizeof b0 == 18 && sizeof b1 == 20 && sizeof b8 == 34, "block sizes");
}

/* ggml's reference quantizers on x = j − 16 (j = 0..31), worked out by hand. */
static void test_reference_quantizers_by_hand(void) {
    float x[32];
    for (int j = 0; j < 32; j++) x[j] = (float)(j - 16);
    /* Q4_0: the value of largest magnitude is −16, d = −16 / −8 = 2 (0x4000); q = min(15, (int8)(x/2 + 8.5)):
     * q0 = 0, q1 = 1, q15 = 8, q16 = 8, q17 = 9, q31 = min(15, 16) = 15 */
    qc_block_q4_0 b0;
    qc_gguf_q4_0_ref(x, &b0);
    const uint8_t *p = (const uint8_t *)&b0;
    CHECK(p[0] == 0x00 && p[1] == 0x40, "Q4_0 ref d bytes %02x %02x", p[0], p[1]);
    CHECK(p[2 + 0] == 0x80 && p[2 + 1] == 0x91 && p[2 + 15] == 0xf8, "Q4_0 ref bytes %02x %02x %02x", p[2], p[3],
          p[17]);
    /* Q4_1: min −16 (0xcc00), d = 31/15; q = (int8)((x + 16)/d + 0.5): q0 = 0, q15 = 7, q16 = 8, q31 = 15 */
    qc_block_q4_1 b1;
    qc_gguf_q4_1_ref(x, &b1);
    p = (const uint8_t *)&b1;
    CHECK(p[2] == 0x00 && p[3] == 0xcc, "Q4_1 ref m bytes %02x %02x", p[2], p[3]);
    CHECK(qc_f16_to_f32((uint16_t)(p[0] | p[1] << 8)) == f16r(31.0f / 15.0f), "Q4_1 ref d");
    CHECK(p[4 + 0] == 0x80 && p[4 + 15] == 0xf7, "Q4_1 ref bytes %02x %02x", p[4], p[19]);
    /* Q8_0: d = 16/127 -> fp16 0x3008; q = round(x · 127/16): q0 = −127, q16 = 0, q17 = 8, q20 = 32, q31 = 119 */
    qc_block_q8_0 b8;
    qc_gguf_q8_0_ref(x, &b8);
    p = (const uint8_t *)&b8;
    CHECK(p[0] == 0x08 && p[1] == 0x30, "Q8_0 ref d bytes %02x %02x", p[0], p[1]);
    CHECK(b8.qs[0] == -127 && b8.qs[16] == 0 && b8.qs[17] == 8 && b8.qs[20] == 32 && b8.qs[31] == 119,
          "Q8_0 ref q %d %d %d %d %d", b8.qs[0], b8.qs[16], b8.qs[17], b8.qs[20], b8.qs[31]);
    /* an all-zero block: d = 0, every value 0 (no division by zero) */
    memset(x, 0, sizeof x);
    float out[32];
    qc_gguf_q8_0_ref(x, &b8);
    qc_gguf_q8_0_to_float(&b8, out);
    for (int j = 0; j < 32; j++) CHECK(out[j] == 0.0f, "zero block value %d", j);
    qc_gguf_q4_0_ref(x, &b0);
    qc_gguf_q4_0_to_float(&b0, out);
    for (int j = 0; j < 32; j++) CHECK(out[j] == 0.0f, "zero Q4_0 block value %d", j);
}

/* The decoders as oracle: reference-quantized random data decodes within half a step (Q4_0:
 * a whole step at the clamped top) of the input, every block type, through the type table. */
static void test_reference_quantizers_error_bounds(void) {
    qc_pyrandom r;
    qc_pyrandom_seed(&r, 7);
    enum { N = 32 * 64 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    uint8_t *blocks = malloc(N * 4);
    for (int i = 0; i < N; i++) x[i] = (float)(qc_pyrandom_random(&r) * 2 - 1) * (float)(1 + i / 32);
    const qc_gguf_type types[] = { QC_GGUF_Q4_0, QC_GGUF_Q4_1, QC_GGUF_Q8_0, QC_GGUF_F16, QC_GGUF_F32 };
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        const qc_gguf_type_info *ti = qc_gguf_type_info_of((uint32_t)types[k]);
        CHECK(ti && ti->id == (uint32_t)types[k], "type table has %s", qc_gguf_type_name(types[k]));
        ti->from_float(x, blocks, N);
        ti->to_float(blocks, y, N);
        int bad = 0;
        for (int b = 0; b < N / 32; b++) {
            float amax = 0, mn = x[b * 32], mx = x[b * 32];
            for (int j = 0; j < 32; j++) {
                float v = x[b * 32 + j];
                amax = fmaxf(amax, fabsf(v)), mn = fminf(mn, v), mx = fmaxf(mx, v);
            }
            /* half a step (Q4_0: a whole one at the clamped top), plus the fp16 storage of d
             * (and m): its rounding, 2^-11 relative, moves a value d·q (+ m) by at most 2^-11 of
             * |d·q| + |m| <= 3·amax (F16: of the value itself), and a few fp32 roundings */
            double step = types[k] == QC_GGUF_Q4_0 ? amax / 8 * 2 : types[k] == QC_GGUF_Q4_1 ? (mx - mn) / 15 / 2
                        : types[k] == QC_GGUF_Q8_0 ? amax / 127 / 2 : 0;
            double store = types[k] == QC_GGUF_F32 ? 0 : (3 * 0x1p-11 + 4 * FP32_U) * amax;
            for (int j = 0; j < 32; j++)
                if (fabs((double)y[b * 32 + j] - x[b * 32 + j]) > step + store) bad++;
        }
        CHECK(bad == 0, "%s: %d values beyond the error bound", ti->name, bad);
    }
    free(x);
    free(y);
    free(blocks);
}

static void test_type_names(void) {
    qc_gguf_type t;
    CHECK(qc_gguf_type_parse("q4_0", &t) && t == QC_GGUF_Q4_0, "q4_0");
    CHECK(qc_gguf_type_parse("Q4_1", &t) && t == QC_GGUF_Q4_1, "Q4_1");
    CHECK(qc_gguf_type_parse("q8_0", &t) && t == QC_GGUF_Q8_0, "q8_0");
    CHECK(qc_gguf_type_parse("f16", &t) && t == QC_GGUF_F16, "f16");
    CHECK(qc_gguf_type_parse("F32", &t) && t == QC_GGUF_F32, "F32");
    CHECK(qc_gguf_type_parse("q4_k", &t) && t == QC_GGUF_Q4_K, "q4_k");
    CHECK(!qc_gguf_type_parse("iq4_nl", &t) && !qc_gguf_type_parse("", &t) && !qc_gguf_type_parse(NULL, &t),
          "unknown names");
    CHECK(strcmp(qc_gguf_type_name(QC_GGUF_Q8_0), "Q8_0") == 0 && strcmp(qc_gguf_type_name((qc_gguf_type)20), "?") == 0,
          "names");
    CHECK(qc_gguf_type_info_of(QC_GGUF_Q8_0)->file_type == 7 && qc_gguf_type_info_of(QC_GGUF_Q4_1)->file_type == 3,
          "llama_ftype values");
}

/* ---- test-made quantized weights ------------------------------------------------------------------
 * Round-to-nearest in GGUF's shapes with fp16 parameters, made here for the round trips (the
 * solver's own path is tested by its owners): Q4_0 symmetric (zero 8), Q8_0 symmetric (zero
 * 128), Q4_1 with mins (value d·q + m). */
static void rtn_qweight(const float *w, int rows, int cols, qc_gguf_type t, qc_qweight *q) {
    qc_err e = { "" };
    int bits = t == QC_GGUF_Q8_0 ? 8 : 4, maxq = (1 << bits) - 1;
    CHECK_OK(qc_qweight_init(q, rows, cols, bits, 32, t != QC_GGUF_Q4_1, &e), e);
    if (t == QC_GGUF_Q4_1) q->mins = calloc((size_t)rows * q->ngroups, sizeof(float));
    for (int r = 0; r < rows; r++)
        for (int g = 0; g < q->ngroups; g++) {
            const float *x = w + (size_t)r * cols + g * 32;
            float amax = 0, mn = x[0], mx = x[0];
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j])), mn = fminf(mn, x[j]), mx = fmaxf(mx, x[j]);
            size_t gi = (size_t)r * q->ngroups + g;
            float d, zero = t == QC_GGUF_Q8_0 ? 128.0f : 8.0f, m = 0;
            if (t == QC_GGUF_Q4_1) {
                m = f16r(mn);
                d = f16r((mx - m) / 15);
                q->mins[gi] = m;
                zero = 0;
            } else {
                d = f16r(amax / (t == QC_GGUF_Q8_0 ? 127.0f : 7.5f));
            }
            if (d == 0) d = 1;
            q->scales[gi] = d;
            q->zeros[gi] = zero;
            for (int j = 0; j < 32; j++) {
                float c = t == QC_GGUF_Q4_1 ? nearbyintf((x[j] - m) / d) : nearbyintf(x[j] / d) + zero;
                q->codes[(size_t)r * cols + g * 32 + j] = (uint8_t)(c < 0 ? 0 : c > maxq ? maxq : c);
            }
        }
}

/* A weight source: the checkpoint, with some linears replaced by quantized weights. */
typedef struct qsource {
    const qc_checkpoint *ck;
    qc_qweight *q;    /* (n_layers * QC_W_COUNT); rows == 0: not quantized */
    qc_qweight embed; /* rows == 0: not quantized */
} qsource;

static const qc_qweight *qs_qweight(void *ctx, qc_weight w, int layer) {
    qsource *s = ctx;
    if (qc_weight_is_global(w)) return w == QC_W_EMBED && s->embed.rows ? &s->embed : NULL;
    const qc_qweight *q = &s->q[(size_t)layer * QC_W_COUNT + w];
    return q->rows ? q : NULL;
}

static qc_status qs_read(void *ctx, qc_weight w, int layer, float *out, qc_err *e) {
    const qc_qweight *q = qs_qweight(ctx, w, layer);
    if (q) {
        qc_qweight_dequantize(q, out);
        return QC_OK;
    }
    return qc_checkpoint_read(((qsource *)ctx)->ck, w, layer, out, e);
}

static qc_weight_source qs_source(qsource *s) {
    return (qc_weight_source){ .cfg = qc_checkpoint_config(s->ck), .read = qs_read, .qweight = qs_qweight, .ctx = s };
}

/* Quantizes every linear of ck as type t (t = F32: none). */
static void qs_init(qsource *s, const qc_checkpoint *ck, qc_gguf_type t) {
    const qc_config *c = qc_checkpoint_config(ck);
    memset(s, 0, sizeof *s);
    s->ck = ck;
    s->q = calloc((size_t)c->n_layers * QC_W_COUNT, sizeof *s->q);
    size_t most = 0;
    for (int w = 0; w < QC_W_COUNT; w++)
        if (qc_weight_is_linear((qc_weight)w) && nelem(c, (qc_weight)w) > most) most = nelem(c, (qc_weight)w);
    float *buf = malloc(most * sizeof *buf);
    for (int l = 0; l < c->n_layers && t != QC_GGUF_F32; l++)
        for (int w = 0; w < QC_W_COUNT; w++) {
            if (!qc_weight_is_linear((qc_weight)w)) continue;
            int rows, cols;
            qc_err e = { "" };
            qc_weight_shape(c, (qc_weight)w, &rows, &cols);
            CHECK_OK(qc_checkpoint_read(ck, (qc_weight)w, l, buf, &e), e);
            rtn_qweight(buf, rows, cols, t, &s->q[(size_t)l * QC_W_COUNT + w]);
        }
    free(buf);
}

static void qs_free(qsource *s, int n_layers) {
    for (int i = 0; s->q && i < n_layers * QC_W_COUNT; i++) qc_qweight_free(&s->q[i]);
    free(s->q);
    qc_qweight_free(&s->embed);
}

/* ---- helpers on written files ----------------------------------------------------------------------- */

static bool kv_u32_is(const qc_gguf_file *f, const char *key, uint32_t v) {
    const qc_gguf_kv *kv = qc_gguf_find_kv(f, key);
    return kv && kv->type == QC_GGUF_V_U32 && qc_le32(kv->data) == v;
}

static bool kv_str_is(const qc_gguf_file *f, const char *key, const char *v) {
    const qc_gguf_kv *kv = qc_gguf_find_kv(f, key);
    const char *s;
    uint64_t n;
    if (!kv || kv->type != QC_GGUF_V_STRING) return false;
    qc_gguf_string_at(kv->data, &s, &n);
    return n == strlen(v) && memcmp(s, v, n) == 0;
}

/* The container invariants llama.cpp checks: alignment 32, data start aligned, offsets the
 * running sum of padded sizes, the file ending with the last padded tensor. */
static void check_layout(const char *path, uint32_t file_type) {
    qc_gguf_file f;
    qc_err e = { "" };
    CHECK_OK(qc_gguf_file_open(&f, path, &e), e);
    if (!f.map.data) return;
    CHECK(f.version == 3 && f.alignment == 32 && f.data_start % 32 == 0, "%s: version %u, alignment %zu, data at %zu",
          path, f.version, f.alignment, f.data_start);
    uint64_t off = 0;
    for (int64_t i = 0; i < f.n_tensors; i++) {
        CHECK(f.tensors[i].offset == off, "%s: tensor %lld at %llu, expected %llu", path, (long long)i,
              (unsigned long long)f.tensors[i].offset, (unsigned long long)off);
        off += (f.tensors[i].nbytes + 31) / 32 * 32;
    }
    CHECK(f.data_start + off == f.map.size, "%s: file size %zu, expected %zu", path, f.map.size,
          f.data_start + (size_t)off);
    CHECK(kv_str_is(&f, "general.architecture", "llama") && kv_u32_is(&f, "general.file_type", file_type) &&
          kv_u32_is(&f, "general.quantization_version", 2) && kv_u32_is(&f, "general.alignment", 32) &&
          kv_str_is(&f, "tokenizer.ggml.model", "llama"), "%s: general metadata (file_type %u)", path, file_type);
    const qc_gguf_kv *eps = qc_gguf_find_kv(&f, "llama.attention.layer_norm_rms_epsilon");
    CHECK(eps && eps->type == QC_GGUF_V_F32 && qc_lef32(eps->data) == 1e-5f, "eps is f32 1e-5");
    CHECK(kv_u32_is(&f, "llama.rope.dimension_count", 8) && kv_u32_is(&f, "llama.attention.head_count_kv", 4) &&
          kv_u32_is(&f, "llama.context_length", 512) && kv_u32_is(&f, "tokenizer.ggml.bos_token_id", 1),
          "llama metadata");
    /* token types of a llama2.c vocabulary: 0 unknown, 1-2 control, 3..258 byte, the rest normal */
    const qc_gguf_kv *tt = qc_gguf_find_kv(&f, "tokenizer.ggml.token_type");
    CHECK(tt && tt->elem_type == QC_GGUF_V_I32 && tt->count == 512, "token_type array");
    if (tt && tt->count == 512) {
        int bad = 0;
        for (int i = 0; i < 512; i++) {
            int want = i == 0 ? 2 : i <= 2 ? 3 : i <= 258 ? 6 : 1;
            bad += (int)qc_le32(tt->data + 4 * i) != want;
        }
        CHECK(bad == 0, "%d token types differ", bad);
    }
    /* pieces with spaces are stored with U+2581 */
    const qc_gguf_kv *tok = qc_gguf_find_kv(&f, "tokenizer.ggml.tokens");
    const uint8_t *p = tok ? tok->data : NULL;
    for (int i = 0; p && i < 260; i++) {
        const char *s;
        uint64_t n;
        p = qc_gguf_string_at(p, &s, &n);
        if (i == 259) CHECK(n == 4 && memcmp(s, "\xe2\x96\x81t", 4) == 0, "token 259 is \"▁t\" (%.*s)", (int)n, s);
        if (i == 1) CHECK(n == 5 && memcmp(s, "\n<s>\n", 5) == 0, "token 1 kept as llama2.c's \"\\n<s>\\n\"");
    }
    qc_gguf_file_close(&f);
}

static void check_tokenizer_matches(const qc_checkpoint *ck) {
    qc_tokenizer a, b;
    qc_err e = { "" };
    CHECK_OK(qc_tokenizer_load(&a, shared_path(TOK512), 512, &e), e);
    CHECK_OK(qc_checkpoint_tokenizer(ck, &b, &e), e);
    if (!b.pieces) {
        qc_tokenizer_free(&a);
        return;
    }
    CHECK(a.vocab_size == b.vocab_size && a.max_token_length == b.max_token_length && a.bos_id == b.bos_id &&
          a.eos_id == b.eos_id, "tokenizer header: %d/%d tokens, max length %d/%d", a.vocab_size, b.vocab_size,
          a.max_token_length, b.max_token_length);
    int bad = 0;
    for (int i = 0; i < a.vocab_size && i < b.vocab_size; i++)
        bad += a.piece_len[i] != b.piece_len[i] || memcmp(a.pieces[i], b.pieces[i], (size_t)a.piece_len[i]) != 0 ||
               memcmp(&a.scores[i], &b.scores[i], 4) != 0;
    CHECK(bad == 0, "%d pieces or scores differ", bad);
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(qc_read_file(shared_path(EVAL_TEXT), 1 << 26, &text, &len, &e), e);
    int32_t *ia = NULL, *ib = NULL;
    size_t na = 0, nb = 0;
    size_t part = len < 20000 ? len : 20000;
    CHECK_OK(qc_tokenizer_encode(&a, text, part, true, false, &ia, &na, &e), e);
    CHECK_OK(qc_tokenizer_encode(&b, text, part, true, false, &ib, &nb, &e), e);
    CHECK(na == nb && na > 100 && memcmp(ia, ib, na * 4) == 0, "the same ids from both tokenizers (%zu, %zu)", na, nb);
    free(ia);
    free(ib);
    free(text);
    qc_tokenizer_free(&a);
    qc_tokenizer_free(&b);
}

/* ---- stories260K, unquantized ----------------------------------------------------------------------- */

/* The F16 file with blk.0.attn_q.weight re-typed BF16 (the same size): read through the BF16
 * dtype path, every value is its two bytes taken as bf16. */
static void check_bf16(const char *f16_path) {
    qc_gguf_file f;
    qc_err e = { "" };
    CHECK_OK(qc_gguf_file_open(&f, f16_path, &e), e);
    if (!f.map.data) return;
    const qc_gguf_tensor *t = qc_gguf_find_tensor(&f, "blk.0.attn_q.weight");
    size_t type_at = (size_t)((const uint8_t *)t->name - f.map.data) + (size_t)t->name_len + 4 + 8 * (size_t)t->n_dims;
    uint8_t *b = malloc(f.map.size);
    memcpy(b, f.map.data, f.map.size);
    QC_ASSERT(qc_le32(b + type_at) == QC_GGUF_F16);
    b[type_at] = QC_GGUF_BF16;
    const char *path = tmp_path("bf16.gguf");
    write_file(path, b, f.map.size);
    qc_checkpoint *ck = NULL;
    CHECK_OK(qc_checkpoint_open(&ck, path, &e), e);
    if (ck) {
        float *x = malloc(64 * 64 * sizeof *x);
        CHECK_OK(qc_checkpoint_read(ck, QC_W_Q, 0, x, &e), e);
        int bad = 0;
        for (int i = 0; i < 64 * 64; i++)
            bad += x[i] != qc_bf16_to_f32((uint16_t)(t->data[2 * i] | t->data[2 * i + 1] << 8));
        CHECK(bad == 0 && qc_checkpoint_dtype(ck, QC_W_Q, 0) == QC_DT_BF16, "BF16 tensor: %d values differ", bad);
        free(x);
    }
    qc_checkpoint_close(ck);
    free(b);
    qc_gguf_file_close(&f);
    unlink(path);
}

static void float_roundtrip(qc_gguf_type t, bool pad, const char *name) {
    qc_err e = { "" };
    qc_checkpoint *ck = NULL, *g = NULL;
    qc_tokenizer tok;
    CHECK_OK(qc_checkpoint_open(&ck, shared_path(STORIES), &e), e);
    CHECK_OK(qc_tokenizer_load(&tok, shared_path(TOK512), 512, &e), e);
    if (!ck || !tok.pieces) return;
    if (pad) CHECK_OK(qc_checkpoint_pad_ffn(ck, 32, &e), e);
    const qc_config *c = qc_checkpoint_config(ck);
    qc_weight_source src = qc_checkpoint_source(ck);
    qc_gguf_export_opts o = { .float_type = t, .embed_type = t, .output_type = t, .tok = &tok, .name = "stories260K" };
    const char *path = tmp_path(name);
    CHECK_OK(qc_gguf_export(&src, path, &o, NULL, &e), e);
    check_layout(path, t == QC_GGUF_F32 ? 0 : 1);
    CHECK_OK(qc_checkpoint_open(&g, path, &e), e);
    if (g) {
        const qc_config *d = qc_checkpoint_config(g);
        CHECK(d->dim == c->dim && d->hidden_dim == c->hidden_dim && d->n_layers == c->n_layers &&
              d->n_heads == c->n_heads && d->n_kv_heads == c->n_kv_heads && d->head_dim == c->head_dim &&
              d->vocab_size == c->vocab_size && d->seq_len == c->seq_len && d->norm_eps == c->norm_eps &&
              d->rope_theta == c->rope_theta && d->tied_classifier, "%s: config reads back (hidden %d, tied %d)", name,
              d->hidden_dim, d->tied_classifier);
        CHECK(strcmp(qc_checkpoint_format(g), "gguf") == 0, "format name");
        size_t most = nelem(c, QC_W_EMBED) > nelem(c, QC_W_DOWN) ? nelem(c, QC_W_EMBED) : nelem(c, QC_W_DOWN);
        float *a = malloc(most * 4), *b = malloc(most * 4);
        int bad = 0;
        for (int w = 0; w < QC_W_COUNT; w++)
            for (int l = 0; l < (qc_weight_is_global((qc_weight)w) ? 1 : c->n_layers) && qc_weight_present(c, (qc_weight)w); l++) {
                CHECK_OK(qc_checkpoint_read(ck, (qc_weight)w, l, a, &e), e);
                CHECK_OK(qc_checkpoint_read(g, (qc_weight)w, l, b, &e), e);
                bool vec = qc_weight_is_vector((qc_weight)w);
                size_t n = nelem(c, (qc_weight)w);
                for (size_t i = 0; i < n; i++) {
                    float want = t == QC_GGUF_F16 && !vec ? f16r(a[i]) : a[i];
                    if (memcmp(&want, &b[i], 4) != 0) bad++;
                }
                CHECK(qc_checkpoint_dtype(g, (qc_weight)w, l) == (vec || t == QC_GGUF_F32 ? QC_DT_F32 : QC_DT_F16) &&
                          qc_checkpoint_qtype(g, (qc_weight)w, l) == NULL,
                      "dtype of %s", qc_weight_short_name((qc_weight)w));
            }
        CHECK(bad == 0, "%s: %d values differ from the checkpoint%s", name, bad,
              t == QC_GGUF_F16 ? "'s fp16 rounding" : "");
        /* one embedding row, as the forward pass reads it */
        CHECK_OK(qc_checkpoint_read_rows(g, QC_W_EMBED, 300, 1, b, &e), e);
        CHECK_OK(qc_checkpoint_read(g, QC_W_EMBED, 0, a, &e), e);
        CHECK(memcmp(a + 300 * c->dim, b, (size_t)c->dim * 4) == 0, "embedding row 300");
        free(a);
        free(b);
        check_tokenizer_matches(g);
        if (t == QC_GGUF_F16) check_bf16(path);
    }
    qc_checkpoint_close(g);
    qc_checkpoint_close(ck);
    qc_tokenizer_free(&tok);
}

static void test_stories_f32(void) { float_roundtrip(QC_GGUF_F32, false, "stories_f32.gguf"); }
static void test_stories_f16_padded(void) { float_roundtrip(QC_GGUF_F16, true, "stories_f16.gguf"); }

/* ---- stories260K, quantized --------------------------------------------------------------------------- */

/* stories260K with its FFN padded to 32 (as GGUF needs), and tok512; false on failure. */
static bool open_padded_stories(qc_checkpoint **ck, qc_tokenizer *tok, qc_err *e) {
    *ck = NULL;
    memset(tok, 0, sizeof *tok);
    CHECK_OK(qc_checkpoint_open(ck, shared_path(STORIES), e), *e);
    CHECK_OK(qc_tokenizer_load(tok, shared_path(TOK512), 512, e), *e);
    if (!*ck || !tok->pieces) return false;
    CHECK_OK(qc_checkpoint_pad_ffn(*ck, 32, e), *e);
    return true;
}

static void quant_roundtrip(qc_gguf_type t, qc_gguf_type embed, qc_gguf_type output, uint32_t file_type) {
    qc_err e = { "" };
    qc_checkpoint *ck = NULL, *g = NULL;
    qc_tokenizer tok;
    if (!open_padded_stories(&ck, &tok, &e)) return;
    const qc_config *c = qc_checkpoint_config(ck);
    qsource qs;
    qs_init(&qs, ck, t);
    qc_weight_source src = qs_source(&qs);
    qc_gguf_export_opts o = { .float_type = QC_GGUF_F32, .embed_type = embed, .output_type = output, .tok = &tok };
    char name[64];
    snprintf(name, sizeof name, "stories_%s.gguf", qc_gguf_type_name(t));
    const char *path = tmp_path(name);
    CHECK_OK(qc_gguf_export(&src, path, &o, NULL, &e), e);
    check_layout(path, file_type);
    CHECK_OK(qc_checkpoint_open(&g, path, &e), e);
    if (g) {
        CHECK(qc_checkpoint_config(g)->hidden_dim == 192 && !qc_checkpoint_config(g)->tied_classifier,
              "padded width, untied (embedding %s, output %s)", qc_gguf_type_name(embed), qc_gguf_type_name(output));
        float *a = malloc(nelem(c, QC_W_EMBED) * 4), *b = malloc(nelem(c, QC_W_EMBED) * 4);
        int bad = 0;
        for (int l = 0; l < c->n_layers; l++)
            for (int w = 0; w < QC_W_COUNT; w++) {
                if (!qc_weight_is_linear((qc_weight)w)) continue;
                qc_qweight_dequantize(&qs.q[(size_t)l * QC_W_COUNT + w], a);
                CHECK_OK(qc_checkpoint_read(g, (qc_weight)w, l, b, &e), e);
                if (memcmp(a, b, nelem(c, (qc_weight)w) * 4) != 0) bad++;
                const char *qt = qc_checkpoint_qtype(g, (qc_weight)w, l);
                CHECK(qt && strcmp(qt, qc_gguf_type_name(t)) == 0, "qtype %s", qt ? qt : "NULL");
            }
        CHECK(bad == 0, "%s: %d linears do not read back bit-exactly as qc_qweight_dequantize", qc_gguf_type_name(t),
              bad);
        /* embedding and classifier: the reference quantizer's blocks, decoded by the oracle */
        const qc_weight globals[2] = { QC_W_EMBED, QC_W_CLASSIFIER };
        const qc_gguf_type types[2] = { embed, output };
        for (int k = 0; k < 2; k++) {
            const qc_gguf_type_info *ti = qc_gguf_type_info_of((uint32_t)types[k]);
            size_t n = nelem(c, QC_W_EMBED);
            uint8_t *blocks = malloc(n * 4);
            CHECK_OK(qc_checkpoint_read(ck, globals[k], 0, a, &e), e);
            ti->from_float(a, blocks, (int64_t)n);
            ti->to_float(blocks, a, (int64_t)n);
            CHECK_OK(qc_checkpoint_read(g, globals[k], 0, b, &e), e);
            CHECK(memcmp(a, b, n * 4) == 0, "%s (%s) reads back as the reference quantizer's blocks",
                  qc_weight_short_name(globals[k]), ti->name);
            CHECK_OK(qc_checkpoint_read_rows(g, globals[k], 511, 1, b, &e), e);
            CHECK(memcmp(a + 511 * c->dim, b, (size_t)c->dim * 4) == 0, "row 511 of %s alone",
                  qc_weight_short_name(globals[k]));
            free(blocks);
        }
        free(a);
        free(b);
        CHECK_FAILS_AT(qc_checkpoint_pad_ffn(g, 128, &e), e, path, "cannot be padded");
    }
    qc_checkpoint_close(g);
    qs_free(&qs, c->n_layers);
    qc_checkpoint_close(ck);
    qc_tokenizer_free(&tok);
}

static void test_stories_q4_0(void) { quant_roundtrip(QC_GGUF_Q4_0, QC_GGUF_Q8_0, QC_GGUF_F16, 2); }
static void test_stories_q4_1(void) { quant_roundtrip(QC_GGUF_Q4_1, QC_GGUF_Q4_1, QC_GGUF_Q8_0, 3); }
static void test_stories_q8_0(void) { quant_roundtrip(QC_GGUF_Q8_0, QC_GGUF_Q4_0, QC_GGUF_F32, 7); }

/* A source whose token embedding is quantized (type et, from the embedding by rtn_qweight):
 * token_embd is the qweight's own blocks, of its type whatever embed_type says, and reads back
 * as qc_qweight_dequantize; output.weight (tied) stays output_type of read(). */
static void embed_roundtrip(qc_gguf_type et) {
    qc_err e = { "" };
    qc_checkpoint *ck = NULL, *g = NULL;
    qc_tokenizer tok;
    if (!open_padded_stories(&ck, &tok, &e)) return;
    const qc_config *c = qc_checkpoint_config(ck);
    size_t n = nelem(c, QC_W_EMBED);
    qsource qs;
    qs_init(&qs, ck, QC_GGUF_Q4_0);
    float *a = malloc(n * 4), *b = malloc(n * 4);
    CHECK_OK(qc_checkpoint_read(ck, QC_W_EMBED, 0, a, &e), e);
    rtn_qweight(a, c->vocab_size, c->dim, et, &qs.embed);
    qc_weight_source src = qs_source(&qs);
    qc_gguf_export_opts o = { .float_type = QC_GGUF_F32, .embed_type = QC_GGUF_F16, .output_type = QC_GGUF_Q8_0,
                              .tok = &tok };
    char name[64];
    snprintf(name, sizeof name, "stories_embed_%s.gguf", qc_gguf_type_name(et));
    const char *path = tmp_path(name);
    CHECK_OK(qc_gguf_export(&src, path, &o, NULL, &e), e);
    check_layout(path, 2);
    qc_gguf_file f;
    CHECK_OK(qc_gguf_file_open(&f, path, &e), e);
    if (f.map.data) {
        const qc_gguf_tensor *te = qc_gguf_find_tensor(&f, "token_embd.weight"),
                             *to = qc_gguf_find_tensor(&f, "output.weight");
        CHECK(te && te->type->id == (uint32_t)et, "token_embd is %s", te ? te->type->name : "missing");
        CHECK(to && to->type->id == QC_GGUF_Q8_0, "output is output_type Q8_0 (%s)", to ? to->type->name : "missing");
        qc_gguf_file_close(&f);
    }
    CHECK_OK(qc_checkpoint_open(&g, path, &e), e);
    if (g) {
        qc_qweight_dequantize(&qs.embed, a);
        CHECK_OK(qc_checkpoint_read(g, QC_W_EMBED, 0, b, &e), e);
        CHECK(memcmp(a, b, n * 4) == 0, "token_embd (%s) reads back as qc_qweight_dequantize", qc_gguf_type_name(et));
        CHECK_OK(qc_checkpoint_read_rows(g, QC_W_EMBED, 300, 2, b, &e), e);
        CHECK(memcmp(a + 300 * c->dim, b, 2 * (size_t)c->dim * 4) == 0, "rows 300, 301 alone");
        const char *qt = qc_checkpoint_qtype(g, QC_W_EMBED, 0);
        CHECK(qt && strcmp(qt, qc_gguf_type_name(et)) == 0, "embedding qtype %s", qt ? qt : "NULL");
        /* the classifier: ggml's Q8_0 of read(), not the quantized embedding */
        const qc_gguf_type_info *q8 = qc_gguf_type_info_of(QC_GGUF_Q8_0);
        uint8_t *blocks = malloc(n * 4);
        CHECK_OK(qc_checkpoint_read(ck, QC_W_CLASSIFIER, 0, a, &e), e);
        q8->from_float(a, blocks, (int64_t)n);
        q8->to_float(blocks, a, (int64_t)n);
        CHECK_OK(qc_checkpoint_read(g, QC_W_CLASSIFIER, 0, b, &e), e);
        CHECK(memcmp(a, b, n * 4) == 0, "output.weight is the reference Q8_0 of read()");
        free(blocks);
        qc_checkpoint_close(g);
    }
    /* an embedding in blocks GGUF has no type for: refused, naming the tensor */
    qc_qweight_free(&qs.embed);
    CHECK_OK(qc_qweight_init(&qs.embed, c->vocab_size, c->dim, 4, 64, true, &e), e);
    for (size_t i = 0; i < (size_t)c->vocab_size * qs.embed.ngroups; i++) qs.embed.scales[i] = 1, qs.embed.zeros[i] = 8;
    const char *bad = tmp_path("refused_embed.gguf");
    CHECK_FAILS_AT(qc_gguf_export(&src, bad, &o, NULL, &e), e, bad,
                   "token_embd.weight: Q4_0 blocks are groups of 32 columns; this weight has groupsize 64");
    CHECK(access(bad, F_OK) != 0, "nothing written");
    free(a), free(b);
    qs_free(&qs, c->n_layers);
    qc_checkpoint_close(ck);
    qc_tokenizer_free(&tok);
}

static void test_stories_embed_q4_0(void) { embed_roundtrip(QC_GGUF_Q4_0); }
static void test_stories_embed_q8_0(void) { embed_roundtrip(QC_GGUF_Q8_0); }

/* ---- what the writer refuses ---------------------------------------------------------------------------- */

static void test_writer_refusals(void) {
    qc_err e = { "" };
    qc_checkpoint *ck = NULL;
    qc_tokenizer tok;
    CHECK_OK(qc_checkpoint_open(&ck, shared_path(STORIES), &e), e);
    CHECK_OK(qc_tokenizer_load(&tok, shared_path(TOK512), 512, &e), e);
    if (!ck || !tok.pieces) return;
    const char *path = tmp_path("refused.gguf");
    qc_weight_source src = qc_checkpoint_source(ck);
    qc_gguf_export_opts o = { .float_type = QC_GGUF_F32, .embed_type = QC_GGUF_F32, .output_type = QC_GGUF_F32,
                              .tok = &tok };
    o.float_type = QC_GGUF_Q4_0;
    CHECK_FAILS_AT(qc_gguf_export(&src, path, &o, NULL, &e), e, path, "float_type 2 is not one of F32, F16");
    o.float_type = QC_GGUF_F32;
    o.embed_type = (qc_gguf_type)20; /* IQ4_NL: not written */
    CHECK_FAILS_AT(qc_gguf_export(&src, path, &o, NULL, &e), e, path, "embed_type 20");
    o.embed_type = QC_GGUF_Q4_K;
    CHECK_FAILS_AT(qc_gguf_export(&src, path, &o, NULL, &e), e, path, "embed_type Q4_K needs rows that are whole blocks of 256");
    o.embed_type = QC_GGUF_F32;
    o.tok = NULL;
    CHECK_FAILS_AT(qc_gguf_export(&src, path, &o, NULL, &e), e, path, "needs the model's tokenizer");
    o.tok = &tok;
    tok.vocab_size = 511;
    CHECK_FAILS_AT(qc_gguf_export(&src, path, &o, NULL, &e), e, path, "the tokenizer has 511 tokens, the model 512");
    tok.vocab_size = 512;
    /* a vocabulary that repeats a piece, or holds U+2581 */
    char *saved = tok.pieces[300];
    int saved_len = tok.piece_len[300];
    tok.pieces[300] = tok.pieces[301];
    tok.piece_len[300] = tok.piece_len[301];
    CHECK_FAILS_AT(qc_gguf_export(&src, path, &o, NULL, &e), e, path, "are the same piece");
    tok.pieces[300] = saved;
    tok.piece_len[300] = saved_len;

    /* quantized linears that GGUF blocks cannot hold: the FFN width 172 is not whole blocks
     * (unpadded), a group size of 64, a scale that is not fp16, asymmetric 4-bit without mins,
     * act-order groups, 3 bits */
    qsource qs = { .ck = ck, .q = calloc((size_t)5 * QC_W_COUNT, sizeof(qc_qweight)) };
    qc_qweight *q = &qs.q[2 * QC_W_COUNT + QC_W_DOWN];
    float *w = malloc(nelem(qc_checkpoint_config(ck), QC_W_DOWN) * 4);
    CHECK_OK(qc_checkpoint_read(ck, QC_W_DOWN, 2, w, &e), e);
    CHECK_OK(qc_qweight_init(q, 64, 172, 4, 32, true, &e), e);
    for (int i = 0; i < 64 * q->ngroups; i++) q->scales[i] = 0.5f, q->zeros[i] = 8;
    src = qs_source(&qs);
    CHECK_FAILS_AT(qc_gguf_export(&src, path, &o, NULL, &e), e, "blk.2.ffn_down.weight",
                   "pad the FFN to a multiple of 32");
    qc_qweight_free(q);
    q = &qs.q[1 * QC_W_COUNT + QC_W_Q];
    CHECK_OK(qc_checkpoint_read(ck, QC_W_Q, 1, w, &e), e);
    CHECK_OK(qc_qweight_init(q, 64, 64, 4, 64, true, &e), e);
    CHECK_FAILS_AT(qc_gguf_export(&src, path, &o, NULL, &e), e, "blk.1.attn_q.weight", "groupsize 64");
    qc_qweight_free(q);
    rtn_qweight(w, 64, 64, QC_GGUF_Q4_0, q);
    q->scales[5] = 0.1f; /* not an fp16 value */
    CHECK_FAILS_AT(qc_gguf_export(&src, path, &o, NULL, &e), e, "blk.1.attn_q.weight",
                   "scale 0.100000001 is not an fp16 value");
    q->scales[5] = 0.125f;
    q->zeros[7] = 9;
    CHECK_FAILS_AT(qc_gguf_export(&src, path, &o, NULL, &e), e, "row 3, group 1: zero point 9", "need mins");
    q->zeros[7] = 8;
    q->g_idx[40] = 0;
    CHECK_FAILS_AT(qc_gguf_export(&src, path, &o, NULL, &e), e, "column 40 is in group 0", "act-order");
    q->g_idx[40] = 1;
    q->codes[100] = 16;
    CHECK_FAILS_AT(qc_gguf_export(&src, path, &o, NULL, &e), e, "code 16 is beyond 4 bits", path);
    q->codes[100] = 15;
    q->bits = 3;
    CHECK_FAILS_AT(qc_gguf_export(&src, path, &o, NULL, &e), e, "3-bit groups have no GGUF block type", path);
    q->bits = 4;
    CHECK_OK(qc_gguf_export(&src, path, &o, NULL, &e), e); /* one Q4_0 linear among F32 ones */
    qc_checkpoint *g = NULL;
    CHECK_OK(qc_checkpoint_open(&g, path, &e), e);
    if (g) {
        CHECK(qc_checkpoint_qtype(g, QC_W_Q, 1) && !qc_checkpoint_qtype(g, QC_W_Q, 0), "one Q4_0 linear");
        float *b = malloc(64 * 64 * 4);
        qc_qweight_dequantize(q, w);
        CHECK_OK(qc_checkpoint_read(g, QC_W_Q, 1, b, &e), e);
        CHECK(memcmp(w, b, 64 * 64 * 4) == 0, "the Q4_0 linear reads back exactly");
        free(b);
        qc_checkpoint_close(g);
    }
    unlink(path);
    /* a failed export leaves nothing behind */
    q->scales[0] = NAN;
    CHECK_FAILS_AT(qc_gguf_export(&src, path, &o, NULL, &e), e, path, "not an fp16 value");
    CHECK(!qc_path_exists(path), "no file after a refused export");
    qs_free(&qs, 5);
    free(w);
    /* tokenizers only from GGUF files */
    qc_tokenizer t2;
    CHECK_FAILS_AT(qc_checkpoint_tokenizer(ck, &t2, &e), e, shared_path(STORIES),
                   "a llama2.c checkpoint carries no tokenizer");
    qc_checkpoint_close(ck);
    qc_tokenizer_free(&tok);
}

/* ---- broken files ------------------------------------------------------------------------------------------ */

static uint8_t *base;  /* a valid GGUF of stories260K (F32, tied), and its parsed view */
static size_t base_len;
static qc_gguf_file base_f;

static size_t at(const void *p) { return (size_t)((const uint8_t *)p - base_f.map.data); }

static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> 8 * i); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> 8 * i); }

static int nbroken;

/* Writes bytes as a .gguf file; opening it must fail with a message naming it and `needle`. */
static void expect_broken(const uint8_t *bytes, size_t n, const char *needle) {
    char name[64];
    snprintf(name, sizeof name, "broken%03d.gguf", nbroken++);
    const char *path = tmp_path(name);
    write_file(path, bytes, n);
    qc_checkpoint *ck = (qc_checkpoint *)1;
    qc_err e = { "" };
    CHECK_FAILS_AT(qc_checkpoint_open(&ck, path, &e), e, path, needle);
    CHECK(ck == NULL, "no checkpoint from a broken file");
    unlink(path);
}

static uint8_t *copy(void) {
    uint8_t *c = malloc(base_len);
    memcpy(c, base, base_len);
    return c;
}

/* The valid file with one field changed: opening it must fail naming `needle`. */
static void broken32(size_t off, uint32_t v, const char *needle) {
    uint8_t *b = copy();
    put32(b + off, v);
    expect_broken(b, base_len, needle);
    free(b);
}

static void broken64(size_t off, uint64_t v, const char *needle) {
    uint8_t *b = copy();
    put64(b + off, v);
    expect_broken(b, base_len, needle);
    free(b);
}

static void broken_byte(size_t off, char c, const char *needle) {
    uint8_t *b = copy();
    b[off] = (uint8_t)c;
    expect_broken(b, base_len, needle);
    free(b);
}

/* The valid file with one byte changed, written at path (for files that open). */
static void write_patched(const char *path, size_t off, char c) {
    uint8_t *b = copy();
    b[off] = (uint8_t)c;
    write_file(path, b, base_len);
    free(b);
}

static const qc_gguf_kv *kv(const char *key) {
    const qc_gguf_kv *k = qc_gguf_find_kv(&base_f, key);
    QC_ASSERT(k);
    return k;
}

static const qc_gguf_tensor *tensor(const char *name) {
    const qc_gguf_tensor *t = qc_gguf_find_tensor(&base_f, name);
    QC_ASSERT(t);
    return t;
}

/* Offset of a tensor info's field: 0 name length, 1 n_dims, 2 ne[0], 3 type, 4 offset. */
static size_t tfield(const char *name, int field) {
    const qc_gguf_tensor *t = tensor(name);
    size_t p = at(t->name) + (size_t)t->name_len;
    switch (field) {
    case 0: return at(t->name) - 8;
    case 1: return p;
    case 2: return p + 4;
    case 3: return p + 4 + 8 * (size_t)t->n_dims;
    default: return p + 8 + 8 * (size_t)t->n_dims;
    }
}

static void test_broken_files(void) {
    qc_err e = { "" };
    qc_checkpoint *ck = NULL;
    qc_tokenizer tok;
    CHECK_OK(qc_checkpoint_open(&ck, shared_path(STORIES), &e), e);
    CHECK_OK(qc_tokenizer_load(&tok, shared_path(TOK512), 512, &e), e);
    if (!ck || !tok.pieces) return;
    qc_weight_source src = qc_checkpoint_source(ck);
    qc_gguf_export_opts o = { .float_type = QC_GGUF_F32, .embed_type = QC_GGUF_F32, .output_type = QC_GGUF_F32,
                              .tok = &tok };
    const char *good = tmp_path("good.gguf");
    CHECK_OK(qc_gguf_export(&src, good, &o, NULL, &e), e);
    qc_checkpoint_close(ck);
    qc_tokenizer_free(&tok);
    char *buf = NULL;
    CHECK_OK(qc_read_file(good, 1 << 24, &buf, &base_len, &e), e);
    base = (uint8_t *)buf;
    CHECK_OK(qc_gguf_file_open(&base_f, good, &e), e);
    if (!base || !base_f.map.data) return;
    char last[QC_GGUF_MAX_NAME];
    const qc_gguf_tensor *lt = &base_f.tensors[base_f.n_tensors - 1];
    snprintf(last, sizeof last, "%.*s", lt->name_len, lt->name);
    size_t header_end = tfield(last, 4) + 8;
    uint8_t *b;

    /* magic and version */
    broken_byte(3, 'G', "not a GGUF file");
    expect_broken(base, 3, "not a GGUF file");
    broken32(4, 1, "GGUF version 1");
    broken32(4, 99, "GGUF version 99");
    broken32(4, 3u << 24, "big-endian");
    /* counts beyond what the file can hold */
    broken64(8, (uint64_t)1 << 40, "claims 1099511627776 tensors");
    broken64(16, UINT64_MAX, "metadata entries");
    /* truncated: in the header, the metadata, the vocabulary, the tensor infos, the data */
    size_t cuts[] = { 4, 10, 23, 30, at(kv("general.name")->key), at(kv("tokenizer.ggml.tokens")->data) + 1000,
                      at(kv("tokenizer.ggml.scores")->data) + 7, at(base_f.tensors[3].name), header_end - 3,
                      base_f.data_start + 100, base_len - 1 };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        expect_broken(base, cuts[i], cuts[i] < base_f.data_start ? "truncated" : "extends past the end of the file");
    /* every cut through the header fails cleanly (no crash, no read past the end) */
    int clean = 0, total = 0;
    for (size_t cut = 0; cut < header_end + 40; cut += cut < 600 ? 1 : 13) {
        const char *path = tmp_path("cut.gguf");
        write_file(path, base, cut);
        qc_checkpoint *c2 = NULL;
        e.msg[0] = 0;
        total++;
        clean += qc_checkpoint_open(&c2, path, &e) != QC_OK && strstr(e.msg, path) != NULL;
        qc_checkpoint_close(c2);
    }
    CHECK(clean == total, "%d of %d truncations refused with a message naming the file", clean, total);
    /* huge lengths: a key, a string value, an array */
    broken64(24, (uint64_t)1 << 62, "is beyond the");
    broken64(at(kv("general.name")->data), (uint64_t)1 << 50, "general.name");
    broken64(at(kv("tokenizer.ggml.scores")->data) - 8, (uint64_t)1 << 60, "elements of type f32 cannot fit");
    broken64(at(kv("tokenizer.ggml.tokens")->data) - 8, 1000000, "tokenizer.ggml.tokens");
    /* a string inside the vocabulary with an impossible length */
    broken64(at(kv("tokenizer.ggml.tokens")->data) + 8 + 5, (uint64_t)1 << 40, "string 1");
    /* value types: unknown, arrays of arrays, alignment of the wrong type or not a power of two */
    broken32(at(kv("llama.block_count")->data) - 4, 13, "unknown value type 13");
    broken32(at(kv("tokenizer.ggml.scores")->data) - 12, 9, "arrays of arrays");
    broken32(at(kv("general.alignment")->data) - 4, QC_GGUF_V_I32, "general.alignment has type i32");
    broken32(at(kv("general.alignment")->data), 24, "24 is not a power of two");
    /* a duplicate key: general.file_type renamed llama.block_count (same length) */
    b = copy();
    memcpy(b + at(kv("general.file_type")->key), "llama.block_count", 17);
    expect_broken(b, base_len, "duplicate metadata key 'llama.block_count'");
    free(b);
    /* missing or unusable metadata */
    broken_byte(at(kv("llama.block_count")->key) + 6, 'B', "llama.block_count is missing");
    broken_byte(at(kv("llama.attention.layer_norm_rms_epsilon")->key), 'L',
                "llama.attention.layer_norm_rms_epsilon is missing");
    broken_byte(at(kv("general.architecture")->data) + 8 + 4, 'b', "architecture 'llamb'");
    broken32(at(kv("llama.embedding_length")->data) - 4, QC_GGUF_V_STRING, ""); /* misparses later: any clean refusal */
    broken32(at(kv("llama.attention.head_count")->data), 7,
             "llama.embedding_length 64 is not a multiple of llama.attention.head_count 7");
    broken32(at(kv("llama.attention.head_count_kv")->data), 3,
             "llama.attention.head_count 8 is not a multiple of llama.attention.head_count_kv 3");
    broken32(at(kv("llama.rope.dimension_count")->data), 4, "RoPE on part of a head");
    /* tensor infos: names, dimensions, types, offsets */
    broken64(tfield("blk.0.attn_q.weight", 0), 64, "length 64 is outside 1..63");
    broken_byte(tfield("blk.0.attn_k.weight", 0) + 8 + 11, 'q', "duplicate tensor name 'blk.0.attn_q.weight'");
    broken32(tfield("blk.1.attn_v.weight", 1), 5, "has 5 dimensions");
    broken32(tfield("blk.1.attn_v.weight", 1), 0, "has 0 dimensions");
    broken64(tfield("blk.1.attn_v.weight", 2), 0, "dimensions must be positive");
    broken64(tfield("blk.1.attn_v.weight", 2), (uint64_t)1 << 62, "element count overflows");
    broken32(tfield("blk.2.ffn_up.weight", 3), 99, "unknown type 99");
    broken32(tfield("blk.2.ffn_up.weight", 3), 20, "type IQ4_NL, which qcalib does not read");
    broken32(tfield("blk.2.ffn_up.weight", 3), 12, "rows of 64 elements are not whole blocks of 256");
    broken32(tfield("blk.2.ffn_down.weight", 3), QC_GGUF_Q8_0, "rows of 172 elements are not whole blocks of 32");
    broken64(tfield("blk.3.ffn_gate.weight", 4), tensor("blk.3.ffn_gate.weight")->offset + 4,
             "not a multiple of the alignment 32");
    broken64(tfield("output.weight", 4), (uint64_t)base_len / 32 * 32, "extends past the end of the file");
    broken64(tfield("blk.3.ffn_gate.weight", 4), tensor("blk.3.attn_q.weight")->offset, "overlap");
    /* the Llama layer: a missing tensor, a wrong shape, an unknown tensor */
    broken_byte(tfield("blk.4.ffn_up.weight", 0) + 8 + 10, 'q', "the tensor blk.4.ffn_up.weight is missing");
    b = copy();
    put64(b + tfield("blk.0.attn_k.weight", 2), 32);
    put64(b + tfield("blk.0.attn_k.weight", 2) + 8, 64);
    expect_broken(b, base_len, "tensor blk.0.attn_k.weight has shape [32, 64, 1, 1]; [64, 32] was expected");
    free(b);
    broken_byte(tfield("output.weight", 0) + 8, 'O', "tensor 'Output.weight' is not part of a Llama model");
    broken32(tfield("token_embd.weight", 1), 1, ""); /* misparses later */

    /* not broken: output.weight absent means a tied classifier. Cut its tensor info out and
     * re-pad the header; the data section stays as it is. */
    {
        size_t t0 = tfield("output.weight", 0), t1 = tfield("output.weight", 4) + 8;
        size_t hlen = header_end - (t1 - t0), start = (hlen + 31) / 32 * 32;
        size_t n = start + (base_len - base_f.data_start);
        b = calloc(1, n);
        memcpy(b, base, t0);
        memcpy(b + t0, base + t1, header_end - t1);
        put64(b + 8, (uint64_t)base_f.n_tensors - 1);
        memcpy(b + start, base + base_f.data_start, base_len - base_f.data_start);
        const char *path = tmp_path("tied.gguf");
        write_file(path, b, n);
        free(b);
        qc_checkpoint *t = NULL;
        CHECK_OK(qc_checkpoint_open(&t, path, &e), e);
        if (t) {
            const qc_config *c = qc_checkpoint_config(t);
            CHECK(c->tied_classifier, "no output.weight: tied");
            float *x = malloc(nelem(c, QC_W_EMBED) * 4), *y = malloc(nelem(c, QC_W_EMBED) * 4);
            CHECK_OK(qc_checkpoint_read(t, QC_W_EMBED, 0, x, &e), e);
            CHECK_OK(qc_checkpoint_read(t, QC_W_CLASSIFIER, 0, y, &e), e);
            CHECK(memcmp(x, y, nelem(c, QC_W_EMBED) * 4) == 0, "the classifier is the embedding");
            free(x);
            free(y);
        }
        qc_checkpoint_close(t);
    }
    /* not broken, but no tokenizer qcalib can use: another tokenizer model, or none */
    {
        const char *path = tmp_path("notok.gguf");
        qc_tokenizer t2;
        qc_checkpoint *t = NULL;
        write_patched(path, at(kv("tokenizer.ggml.model")->data) + 8 + 4, 'b');
        CHECK_OK(qc_checkpoint_open(&t, path, &e), e);
        if (t) CHECK_FAILS_AT(qc_checkpoint_tokenizer(t, &t2, &e), e, path, "tokenizer.ggml.model is 'llamb'");
        qc_checkpoint_close(t);
        write_patched(path, at(kv("tokenizer.ggml.tokens")->key) + 20, 'z');
        t = NULL;
        CHECK_OK(qc_checkpoint_open(&t, path, &e), e);
        if (t)
            CHECK_FAILS_AT(qc_checkpoint_tokenizer(t, &t2, &e), e, path,
                           "carries no tokenizer (no tokenizer.ggml.tokens)");
        qc_checkpoint_close(t);
        /* byte tokens where llama2.c's encoder does not look for them */
        /* tokens 0..2 are "<unk>", "\n<s>\n", "\n</s>\n"; token 3 "<0x00>" becomes "<0x09>" */
        write_patched(path, at(kv("tokenizer.ggml.tokens")->data) + 8 + 5 + 8 + 5 + 8 + 6 + 8 + 4, '9');
        t = NULL;
        CHECK_OK(qc_checkpoint_open(&t, path, &e), e);
        if (t)
            CHECK_FAILS_AT(qc_checkpoint_tokenizer(t, &t2, &e), e, path, "does not hold the byte token <0x00> at id 3");
        qc_checkpoint_close(t);
        unlink(path);
    }
    /* BF16 tensors are read (never written): the reader's type table decodes them */
    {
        const qc_gguf_type_info *bf = qc_gguf_type_info_of(QC_GGUF_BF16);
        uint8_t raw[4] = { 0x80, 0x3f, 0x00, 0xc0 }; /* bf16 1.0, -2.0 */
        float v[2];
        CHECK(bf && !bf->quantized && bf->dtype == QC_DT_BF16, "BF16 in the reader's type table");
        if (bf) bf->to_float(raw, v, 2);
        CHECK(bf && v[0] == 1.0f && v[1] == -2.0f, "BF16 values %g %g", (double)v[0], (double)v[1]);
    }
    qc_gguf_file_close(&base_f);
    free(base);
    unlink(good);
}

/* The tokenizer built from a vocabulary in memory, and what it refuses. */
static void test_tokenizer_from_vocab(void) {
    qc_err e = { "" };
    qc_tokenizer t;
    const char *pieces[4] = { "<unk>", "a", "bc", "abc" };
    int lens[4] = { 5, 1, 2, 3 };
    float scores[4] = { 0, -1, -2, -3 };
    CHECK_OK(qc_tokenizer_from_vocab(&t, 4, pieces, lens, scores, 1, 2, "mem", &e), e);
    CHECK(t.max_token_length == 5 && qc_tokenizer_lookup(&t, "bc", 2) == 2 && qc_tokenizer_lookup(&t, "abc", 3) == 3 &&
          t.scores[3] == -3.0f && strcmp(t.path, "mem") == 0, "lookups and fields");
    qc_tokenizer_free(&t);
    CHECK_OK(qc_tokenizer_from_vocab(&t, 4, pieces, lens, NULL, 1, 2, "mem", &e), e);
    CHECK(t.scores[2] == 0.0f, "no scores: zeros");
    qc_tokenizer_free(&t);
    lens[1] = 0;
    CHECK_FAILS(qc_tokenizer_from_vocab(&t, 4, pieces, lens, scores, 1, 2, "mem", &e), e, "mem: token 1: length 0");
    lens[1] = 1;
    pieces[2] = "b\0";
    CHECK_FAILS(qc_tokenizer_from_vocab(&t, 4, pieces, lens, scores, 1, 2, "mem", &e), e,
                "token 2: its text contains a NUL byte");
    pieces[2] = "bc";
    CHECK_FAILS(qc_tokenizer_from_vocab(&t, 4, pieces, lens, scores, 1, 4, "mem", &e), e, "EOS id 4");
    CHECK_FAILS(qc_tokenizer_from_vocab(&t, 0, pieces, lens, scores, 1, 2, "mem", &e), e, "vocab_size 0");
    qc_tokenizer_free(&t); /* zeroed after a failure: a no-op */
}

int main(void) {
    RUN(test_block_bytes_by_hand);
    RUN(test_reference_quantizers_by_hand);
    RUN(test_reference_quantizers_error_bounds);
    RUN(test_type_names);
    RUN(test_stories_f32);
    RUN(test_stories_f16_padded);
    RUN(test_stories_q4_0);
    RUN(test_stories_q4_1);
    RUN(test_stories_q8_0);
    RUN(test_stories_embed_q4_0);
    RUN(test_stories_embed_q8_0);
    RUN(test_writer_refusals);
    RUN(test_broken_files);
    RUN(test_tokenizer_from_vocab);
    return check_summary();
}
