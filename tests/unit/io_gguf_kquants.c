/* unit/io_gguf_kquants.c — ggml's K-quant blocks (io/gguf_kquants.c): Q2_K, Q3_K, Q4_K, Q5_K, Q6_K.
 * For each type: (a) the block's byte size and field offsets; (b) real weights of
 * tinystories-656K quantized by the reference quantizer (and the importance-weighted one)
 * through the type table, then decoded: every value is the nearest point of its sub-block's
 * grid, read from the stored scales; (c) decoding random and hand-made blocks against the
 * layout evaluated here element by element, independently of the library's loops; (d)
 * quantize(decode(block)) == block for the blocks where the format makes that a fixed point;
 * and the GGUF reader decoding K-quant tensors through the type table.
 *
 * The layout is read here from raw bytes at the offsets ggml-common.h gives (not through the
 * library's structs): element e's code and its sub-block's scale (and min) by the formulas of
 * gguf_kquants.h's header comment. */
#include "io/gguf.h"
#include "io/gguf_kquants.h"
#include "tests/check.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#define TINY "models/tinystories-656K"
#define TOK512 "models/stories260K/tok512.bin"

/* ---- the layout, from raw bytes -------------------------------------------------------------------- */

typedef struct kq_type {
    uint32_t id;
    const char *name;
    size_t bytes;      /* per block of 256 */
    int sub;           /* sub-block width: 16 or 32 */
    int qlo, qhi;      /* the codes' range, as the value's factor: value = step·q − offset */
    int scale_max;     /* the largest stored scale field (Q3_K: as a signed scale, 31) */
    int scale_min;     /* the smallest one (Q3_K −32, Q6_K −128, else 0) */
    bool affine;       /* has mins */
} kq_type;

static const kq_type TYPES[] = {
    { QC_GGUF_Q2_K, "Q2_K", 84, 16, 0, 3, 15, 0, true },
    { QC_GGUF_Q3_K, "Q3_K", 110, 16, -4, 3, 31, -32, false },
    { QC_GGUF_Q4_K, "Q4_K", 144, 32, 0, 15, 63, 0, true },
    { QC_GGUF_Q5_K, "Q5_K", 176, 32, 0, 31, 63, 0, true },
    { QC_GGUF_Q6_K, "Q6_K", 210, 16, -32, 31, 127, -128, false },
};
#define NTYPES (int)(sizeof TYPES / sizeof TYPES[0])

static float f16_at(const uint8_t *p) { return qc_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }
static void f16_put(uint8_t *p, float f) {
    uint16_t h = qc_f32_to_f16(f);
    p[0] = (uint8_t)(h & 0xff), p[1] = (uint8_t)(h >> 8);
}

/* Byte offsets of the fields in a block (ggml-common.h's declaration order). */
enum { Q2_SCALES = 0, Q2_QS = 16, Q2_D = 80, Q2_DMIN = 82 };
enum { Q3_HMASK = 0, Q3_QS = 32, Q3_SCALES = 96, Q3_D = 108 };
enum { Q4_D = 0, Q4_DMIN = 2, Q4_SCALES = 4, Q4_QS = 16 };
enum { Q5_D = 0, Q5_DMIN = 2, Q5_SCALES = 4, Q5_QH = 16, Q5_QS = 48 };
enum { Q6_QL = 0, Q6_QH = 128, Q6_SCALES = 192, Q6_D = 208 };

/* Q4_K/Q5_K: sub-block s's 6-bit scale (which = 0) or min (which = 1). */
static int k4_field(const uint8_t *sc, int s, int which) {
    if (s < 4) return sc[s + 4 * which] & 63;
    int low = which ? sc[s + 4] >> 4 : sc[s + 4] & 0xF;
    int high = sc[which ? s : s - 4] >> 6;
    return low | high << 4;
}

static void k4_set(uint8_t *sc, int s, int which, int v) {
    if (s < 4) {
        sc[s + 4 * which] = (uint8_t)((sc[s + 4 * which] & 0xC0) | v);
        return;
    }
    uint8_t *lo = &sc[s + 4], *hi = &sc[which ? s : s - 4];
    *lo = which ? (uint8_t)((*lo & 0x0F) | (v & 0xF) << 4) : (uint8_t)((*lo & 0xF0) | (v & 0xF));
    *hi = (uint8_t)((*hi & 0x3F) | (v >> 4) << 6);
}

/* Q3_K: sub-block s's scale field 0..63 (the signed scale + 32). */
static int q3_field(const uint8_t *sc, int s) {
    int low = s < 8 ? sc[s] & 0xF : sc[s - 8] >> 4;
    return low | ((sc[8 + s % 4] >> (2 * (s / 4))) & 3) << 4;
}

static void q3_set(uint8_t *sc, int s, int v) {
    if (s < 8) sc[s] = (uint8_t)((sc[s] & 0xF0) | (v & 0xF));
    else sc[s - 8] = (uint8_t)((sc[s - 8] & 0x0F) | (v & 0xF) << 4);
    int sh = 2 * (s / 4);
    sc[8 + s % 4] = (uint8_t)((sc[8 + s % 4] & ~(3 << sh)) | (v >> 4) << sh);
}

/* Element e's sub-block grid, value = step·q − offset, both as the decoder forms them in fp32
 * from the stored fields. */
typedef struct grid {
    float step, offset;
} grid;

static grid grid_of(uint32_t t, const uint8_t *b, int e) {
    switch (t) {
    case QC_GGUF_Q2_K: {
        int sc = b[Q2_SCALES + e / 16];
        return (grid){ f16_at(b + Q2_D) * (sc & 0xF), f16_at(b + Q2_DMIN) * (sc >> 4) };
    }
    case QC_GGUF_Q3_K: return (grid){ f16_at(b + Q3_D) * (q3_field(b + Q3_SCALES, e / 16) - 32), 0 };
    case QC_GGUF_Q4_K:
        return (grid){ f16_at(b + Q4_D) * k4_field(b + Q4_SCALES, e / 32, 0),
                       f16_at(b + Q4_DMIN) * k4_field(b + Q4_SCALES, e / 32, 1) };
    case QC_GGUF_Q5_K:
        return (grid){ f16_at(b + Q5_D) * k4_field(b + Q5_SCALES, e / 32, 0),
                       f16_at(b + Q5_DMIN) * k4_field(b + Q5_SCALES, e / 32, 1) };
    default: return (grid){ f16_at(b + Q6_D) * (int8_t)b[Q6_SCALES + e / 16], 0 };
    }
}

/* Element e's code as the value's factor q (Q3_K −4..3, Q6_K −32..31, else 0..qhi). */
static int code_of(uint32_t t, const uint8_t *b, int e) {
    int two = (e % 128) / 32; /* Q2_K/Q3_K: which bit pair of the byte */
    switch (t) {
    case QC_GGUF_Q2_K: return (b[Q2_QS + 32 * (e / 128) + e % 32] >> 2 * two) & 3;
    case QC_GGUF_Q3_K:
        return ((b[Q3_QS + 32 * (e / 128) + e % 32] >> 2 * two) & 3) + 4 * ((b[Q3_HMASK + e % 32] >> (e / 32)) & 1) - 4;
    case QC_GGUF_Q4_K: {
        int byte = b[Q4_QS + 32 * (e / 64) + e % 32];
        return e % 64 < 32 ? byte & 0xF : byte >> 4;
    }
    case QC_GGUF_Q5_K: {
        int byte = b[Q5_QS + 32 * (e / 64) + e % 32];
        return (e % 64 < 32 ? byte & 0xF : byte >> 4) + 16 * ((b[Q5_QH + e % 32] >> (e / 32)) & 1);
    }
    default: {
        int c = e / 128, k = (e % 128) / 32, l = e % 32;
        int lo = b[Q6_QL + 64 * c + 32 * (k % 2) + l];
        return ((k < 2 ? lo & 0xF : lo >> 4) | ((b[Q6_QH + 32 * c + l] >> 2 * k) & 3) << 4) - 32;
    }
    }
}

/* Writes element e's code q (as code_of returns it) into the block. */
static void code_set(uint32_t t, uint8_t *b, int e, int q) {
    int two = (e % 128) / 32;
    switch (t) {
    case QC_GGUF_Q2_K: {
        uint8_t *p = &b[Q2_QS + 32 * (e / 128) + e % 32];
        *p = (uint8_t)((*p & ~(3 << 2 * two)) | q << 2 * two);
        break;
    }
    case QC_GGUF_Q3_K: {
        int u = q + 4;
        uint8_t *p = &b[Q3_QS + 32 * (e / 128) + e % 32], *h = &b[Q3_HMASK + e % 32];
        *p = (uint8_t)((*p & ~(3 << 2 * two)) | (u & 3) << 2 * two);
        *h = (uint8_t)((*h & ~(1 << (e / 32))) | (u >> 2) << (e / 32));
        break;
    }
    case QC_GGUF_Q4_K:
    case QC_GGUF_Q5_K: {
        int qs = t == QC_GGUF_Q4_K ? Q4_QS : Q5_QS;
        uint8_t *p = &b[qs + 32 * (e / 64) + e % 32];
        *p = e % 64 < 32 ? (uint8_t)((*p & 0xF0) | (q & 0xF)) : (uint8_t)((*p & 0x0F) | (q & 0xF) << 4);
        if (t == QC_GGUF_Q5_K) {
            uint8_t *h = &b[Q5_QH + e % 32];
            *h = (uint8_t)((*h & ~(1 << (e / 32))) | (q >> 4) << (e / 32));
        }
        break;
    }
    default: {
        int u = q + 32, c = e / 128, k = (e % 128) / 32, l = e % 32;
        uint8_t *p = &b[Q6_QL + 64 * c + 32 * (k % 2) + l], *h = &b[Q6_QH + 32 * c + l];
        *p = k < 2 ? (uint8_t)((*p & 0xF0) | (u & 0xF)) : (uint8_t)((*p & 0x0F) | (u & 0xF) << 4);
        *h = (uint8_t)((*h & ~(3 << 2 * k)) | (u >> 4) << 2 * k);
    }
    }
}

/* Sets the super-block factors and sub-block s's scale field (signed for Q3_K and Q6_K) and
 * min field (affine types). */
static void factors_set(uint32_t t, uint8_t *b, float d, float dmin) {
    switch (t) {
    case QC_GGUF_Q2_K: f16_put(b + Q2_D, d), f16_put(b + Q2_DMIN, dmin); break;
    case QC_GGUF_Q3_K: f16_put(b + Q3_D, d); break;
    case QC_GGUF_Q4_K: f16_put(b + Q4_D, d), f16_put(b + Q4_DMIN, dmin); break;
    case QC_GGUF_Q5_K: f16_put(b + Q5_D, d), f16_put(b + Q5_DMIN, dmin); break;
    default: f16_put(b + Q6_D, d);
    }
}

static void scale_set(uint32_t t, uint8_t *b, int s, int sc, int m) {
    switch (t) {
    case QC_GGUF_Q2_K: b[Q2_SCALES + s] = (uint8_t)(sc | m << 4); break;
    case QC_GGUF_Q3_K: q3_set(b + Q3_SCALES, s, sc + 32); break;
    case QC_GGUF_Q4_K: k4_set(b + Q4_SCALES, s, 0, sc), k4_set(b + Q4_SCALES, s, 1, m); break;
    case QC_GGUF_Q5_K: k4_set(b + Q5_SCALES, s, 0, sc), k4_set(b + Q5_SCALES, s, 1, m); break;
    default: b[Q6_SCALES + s] = (uint8_t)(int8_t)sc;
    }
}

/* The value the layout gives element e: step·q − offset, in fp32 in the decoder's order. */
static float value_of(uint32_t t, const uint8_t *b, int e) {
    grid g = grid_of(t, b, e);
    return g.step * code_of(t, b, e) - g.offset;
}

static const qc_gguf_type_info *info(const kq_type *k) { return qc_gguf_type_info_of(k->id); }

/* ---- (a) sizes and the type table ----------------------------------------------------------------- */

static void test_block_sizes(void) {
    CHECK(sizeof(qc_block_q2_k) == 84 && sizeof(qc_block_q3_k) == 110 && sizeof(qc_block_q4_k) == 144 &&
          sizeof(qc_block_q5_k) == 176 && sizeof(qc_block_q6_k) == 210, "block sizes");
    /* the fields at ggml-common.h's offsets */
    CHECK(offsetof(qc_block_q2_k, qs) == Q2_QS && offsetof(qc_block_q2_k, d) == Q2_D &&
          offsetof(qc_block_q2_k, dmin) == Q2_DMIN, "Q2_K offsets");
    CHECK(offsetof(qc_block_q3_k, qs) == Q3_QS && offsetof(qc_block_q3_k, scales) == Q3_SCALES &&
          offsetof(qc_block_q3_k, d) == Q3_D, "Q3_K offsets");
    CHECK(offsetof(qc_block_q4_k, dmin) == Q4_DMIN && offsetof(qc_block_q4_k, scales) == Q4_SCALES &&
          offsetof(qc_block_q4_k, qs) == Q4_QS, "Q4_K offsets");
    CHECK(offsetof(qc_block_q5_k, qh) == Q5_QH && offsetof(qc_block_q5_k, qs) == Q5_QS, "Q5_K offsets");
    CHECK(offsetof(qc_block_q6_k, qh) == Q6_QH && offsetof(qc_block_q6_k, scales) == Q6_SCALES &&
          offsetof(qc_block_q6_k, d) == Q6_D, "Q6_K offsets");
    for (int k = 0; k < NTYPES; k++) {
        const qc_gguf_type_info *ti = info(&TYPES[k]);
        CHECK(ti && ti->block == 256 && ti->block_bytes == TYPES[k].bytes && ti->quantized && ti->to_float &&
                  ti->from_float && ti->from_float_weighted && strcmp(ti->name, TYPES[k].name) == 0 &&
                  strcmp(qc_gguf_ggml_type_name(TYPES[k].id), TYPES[k].name) == 0,
              "type table row of %s", TYPES[k].name);
        /* bits per weight: 2.625, 3.4375, 4.5, 5.5, 6.5625 */
        static const double bpw[] = { 2.625, 3.4375, 4.5, 5.5, 6.5625 };
        CHECK(ti && 8.0 * (double)ti->block_bytes / 256 == bpw[k], "%s bits per weight", TYPES[k].name);
    }
    CHECK(qc_gguf_type_info_of(QC_GGUF_Q4_0)->from_float_weighted == NULL, "Q4_0 has no weighted quantizer here");
}

/* ---- (c) decoding ---------------------------------------------------------------------------------- */

/* A few values worked out by hand from the layout. */
static void test_decode_by_hand(void) {
    float out[256];
    /* Q4_K: d = 0.5 (0x3800), dmin = 0.25 (0x3400). Sub-block 1: scale byte 1 = 3, min byte 5 = 4:
     * step 1.5, offset 1. Sub-block 5: scale = low nibble of byte 9 (0x2 | ...) with the top two
     * bits of byte 1 as its bits 4, 5; byte 9 = 0x72, byte 1 = 0x43 -> scale 0x12 = 18, min 7
     * (high nibble of byte 9; byte 5's top bits 0): step 9, offset 1.75. Element 40 (sub-block 1)
     * is the high nibble of qs[8]; element 170 (sub-block 5) the high nibble of qs[64 + 10],
     * element 160 (sub-block 5, code 0) that of qs[64]; element 8 is sub-block 0's, whose scale
     * and min bytes are 0. */
    qc_block_q4_k b4;
    memset(&b4, 0, sizeof b4);
    uint8_t *p = (uint8_t *)&b4;
    p[0] = 0x00, p[1] = 0x38, p[2] = 0x00, p[3] = 0x34;
    p[Q4_SCALES + 1] = 0x43, p[Q4_SCALES + 5] = 4, p[Q4_SCALES + 9] = 0x72;
    p[Q4_QS + 8] = 0xA0;      /* element 40: code 10 */
    p[Q4_QS + 74] = 0x50;     /* element 170: code 5 */
    qc_gguf_q4_k_to_float(&b4, out);
    CHECK(out[40] == 1.5f * 10 - 1.0f && out[170] == 9.0f * 5 - 1.75f && out[160] == -1.75f && out[8] == 0.0f,
          "Q4_K by hand: %g %g %g %g", (double)out[40], (double)out[170], (double)out[160], (double)out[8]);

    /* Q6_K: d = 2 (0x4000); scales[9] = −3. Element e = 128 + 64 + 16 + 5 = 213: c = 1, k = 2,
     * l = 21: the high nibble of ql[64 + 21], bits 4, 5 of qh[32 + 21]; its sub-block is 213/16
     * = 13. Set scales[13] = −3, ql[85] = 0x70, qh[53] = 0x20: code 0x27 = 39, q = 7, value
     * 2·(−3)·7 = −42. Element 208 (l = 16, same sub-block) has code 0: 2·(−3)·(−32) = 192. */
    qc_block_q6_k b6;
    memset(&b6, 0, sizeof b6);
    p = (uint8_t *)&b6;
    p[Q6_D] = 0x00, p[Q6_D + 1] = 0x40;
    p[Q6_SCALES + 13] = (uint8_t)-3;
    p[Q6_QL + 85] = 0x70, p[Q6_QH + 53] = 0x20;
    qc_gguf_q6_k_to_float(&b6, out);
    CHECK(out[213] == -42.0f && out[208] == 192.0f, "Q6_K by hand: %g %g", (double)out[213], (double)out[208]);

    /* Q3_K: d = 1; sub-block 10's scale: low nibble = high nibble of byte 2, high bits = bits 4, 5
     * of byte 10 (8 + 10%4 = 10, shift 2·(10/4) = 4): byte 2 = 0x50, byte 10 = 0x20 -> 0x25 = 37,
     * scale 5. Element 170 (sub-block 10): qs[32 + 10] bits 2, 3 ((170 % 128)/32 = 1); hmask[10]
     * bit 5. qs[42] = 0x08 (low bits 2), hmask bit clear: q = 2 − 4 = −2, value −10. */
    qc_block_q3_k b3;
    memset(&b3, 0, sizeof b3);
    p = (uint8_t *)&b3;
    p[Q3_D] = 0x00, p[Q3_D + 1] = 0x3C;
    p[Q3_SCALES + 2] = 0x50, p[Q3_SCALES + 10] = 0x20;
    p[Q3_QS + 42] = 0x08;
    qc_gguf_q3_k_to_float(&b3, out);
    CHECK(out[170] == -10.0f, "Q3_K by hand: %g", (double)out[170]);
    p[Q3_HMASK + 10] = 1 << 5; /* high bit set: q = 2, value 10 */
    qc_gguf_q3_k_to_float(&b3, out);
    CHECK(out[170] == 10.0f && out[0] == -32.0f * -4, "Q3_K by hand, high bit: %g %g", (double)out[170],
          (double)out[0]);

    /* Q2_K: d = 1, dmin = 0.5; scales[3] = 0x27 (scale 7, min 2). Element 3·16 + 2 = 50: qs[18]
     * bits 2, 3 ((50 % 128)/32 = 1). qs[18] = 0x0C -> q = 3, value 7·3 − 1 = 20. */
    qc_block_q2_k b2;
    memset(&b2, 0, sizeof b2);
    p = (uint8_t *)&b2;
    p[Q2_D + 1] = 0x3C, p[Q2_DMIN + 1] = 0x38;
    p[Q2_SCALES + 3] = 0x27;
    p[Q2_QS + 18] = 0x0C;
    qc_gguf_q2_k_to_float(&b2, out);
    CHECK(out[50] == 20.0f && out[18] == 0.0f && out[48] == -1.0f, "Q2_K by hand: %g %g %g", (double)out[50],
          (double)out[18], (double)out[48]);

    /* Q5_K: as Q4_K's example, with qh[8] bit 1 set (element 40 = 32·1 + 8): code 26,
     * value 1.5·26 − 1; element 8 (sub-block 0, bit 0 of qh[8] clear) is 0. */
    qc_block_q5_k b5;
    memset(&b5, 0, sizeof b5);
    p = (uint8_t *)&b5;
    p[0] = 0x00, p[1] = 0x38, p[2] = 0x00, p[3] = 0x34;
    p[Q5_SCALES + 1] = 0x43, p[Q5_SCALES + 5] = 4, p[Q5_SCALES + 9] = 0x72;
    p[Q5_QS + 8] = 0xA0, p[Q5_QH + 8] = 0x02;
    qc_gguf_q5_k_to_float(&b5, out);
    CHECK(out[40] == 1.5f * 26 - 1.0f && out[8] == 0.0f, "Q5_K by hand: %g %g", (double)out[40], (double)out[8]);
}

/* Random bytes (finite fp16 factors) decoded by the library equal the layout's values here. */
static void test_decode_random_blocks(void) {
    qc_pyrandom r;
    qc_pyrandom_seed(&r, 20);
    uint8_t b[256];
    float out[256];
    for (int k = 0; k < NTYPES; k++) {
        const kq_type *t = &TYPES[k];
        int bad = 0;
        for (int it = 0; it < 200; it++) {
            for (size_t i = 0; i < t->bytes; i++) b[i] = (uint8_t)(qc_pyrandom_random(&r) * 256);
            float d = (float)(qc_pyrandom_random(&r) * 2 - 1) * 0.01f, dm = (float)qc_pyrandom_random(&r) * 0.01f;
            factors_set(t->id, b, d, dm);
            info(t)->to_float(b, out, 256);
            for (int e = 0; e < 256; e++)
                if (out[e] != value_of(t->id, b, e)) bad++;
        }
        CHECK(bad == 0, "%s: %d decoded values differ from the layout's", t->name, bad);
    }
}

/* ---- (b) real weights ------------------------------------------------------------------------------------- */

/* Blocks of 256 real weights from tinystories-656K (dim 128, FFN 384): the first 256 columns of
 * each ffn_down row (rows of 384), and pairs of consecutive rows of every other linear (rows of
 * 128) laid end to end. Returns the count; *x holds count·256 floats. */
static int real_blocks(float **x) {
    qc_err e = { "" };
    qc_checkpoint *ck = NULL;
    CHECK_OK(qc_checkpoint_open(&ck, shared_path(TINY), &e), e);
    if (!ck) return 0;
    const qc_config *c = qc_checkpoint_config(ck);
    const qc_weight lin[] = { QC_W_Q, QC_W_K, QC_W_V, QC_W_O, QC_W_GATE, QC_W_UP, QC_W_DOWN };
    size_t cap = 0, n = 0;
    for (int l = 0; l < c->n_layers; l++)
        for (size_t i = 0; i < sizeof lin / sizeof lin[0]; i++) {
            int rows, cols;
            qc_weight_shape(c, lin[i], &rows, &cols);
            cap += (size_t)rows * cols;
        }
    float *out = malloc(cap * sizeof *out), *buf = malloc(cap * sizeof *buf);
    for (int l = 0; l < c->n_layers && out && buf; l++)
        for (size_t i = 0; i < sizeof lin / sizeof lin[0]; i++) {
            int rows, cols;
            qc_weight_shape(c, lin[i], &rows, &cols);
            CHECK_OK(qc_checkpoint_read(ck, lin[i], l, buf, &e), e);
            if (cols >= 256) {
                for (int rr = 0; rr < rows; rr++) memcpy(out + 256 * n++, buf + (size_t)rr * cols, 256 * sizeof *buf);
            } else {
                CHECK(256 % cols == 0, "rows of %d", cols);
                size_t whole = (size_t)rows * cols / 256;
                memcpy(out + 256 * n, buf, whole * 256 * sizeof *buf);
                n += whole;
            }
        }
    free(buf);
    qc_checkpoint_close(ck);
    *x = out;
    return (int)n;
}

/* The bound. The quantizers' last step computes each code as round((x + offset)/step), clamped
 * to the code range, with step and offset the very fp32 products the decoder forms from the
 * stored fields (d·sc, dmin·m); a sub-block whose step is 0 decodes to −offset whatever its
 * codes. So each decoded value is the point of its sub-block's grid {step·q − offset} nearest
 * to x: within step/2 of x when x lies inside the grid's span, its nearest end otherwise. In
 * fp32 the division costs 2 roundings of |x| + offset (a code can differ from the exact
 * nearest only for x that close to a midpoint, where both neighbours are as near) and the
 * decode 2 roundings of |step·q| + offset: |decoded − x| <= dist(x, grid) + 8u·(|x| + offset +
 * |step|·max|q|).
 * As a sanity check of the fits, the mean squared error over all blocks must also be below
 * the worst case of plain rounding on each sub-block's own range (the error of every value
 * at most half of range/levels). */
static void check_quantized(const kq_type *t, const float *x, const uint8_t *blocks, const float *y, int nblocks,
                            const char *what) {
    int bad = 0, bad_first = -1;
    double sse = 0, worst_case = 0;
    for (int b = 0; b < nblocks; b++) {
        const uint8_t *blk = blocks + (size_t)b * t->bytes;
        for (int e = 0; e < 256; e++) {
            grid g = grid_of(t->id, blk, e);
            double xv = x[256 * b + e], dist = INFINITY;
            for (int q = t->qlo; q <= t->qhi; q++) dist = fmin(dist, fabs((double)g.step * q - g.offset - xv));
            double amax_q = t->qhi > -t->qlo ? t->qhi : -t->qlo;
            double tol = 8 * FP32_U * (fabs(xv) + g.offset + fabs((double)g.step) * amax_q);
            double err = fabs((double)y[256 * b + e] - xv);
            if (err > dist + tol && bad++ == 0) bad_first = 256 * b + e;
            sse += err * err;
        }
        for (int s = 0; s < 256 / t->sub; s++) {
            const float *xs = x + 256 * b + t->sub * s;
            double lo = 0, hi = -INFINITY, amax = 0;
            for (int i = 0; i < t->sub; i++) lo = fmin(lo, xs[i]), hi = fmax(hi, xs[i]), amax = fmax(amax, fabs(xs[i]));
            /* affine grids must reach 0 (min <= 0); symmetric ones of nmax = −qlo levels each way
             * cover [−amax, amax] with steps of amax/(nmax − 1) */
            double step = t->affine ? (hi - lo) / t->qhi : amax / (-t->qlo - 1);
            worst_case += t->sub * step * step / 4;
        }
    }
    CHECK(bad == 0, "%s %s: %d of %d values farther than their grid allows (first: element %d, x %.9g, decoded %.9g)",
          t->name, what, bad, 256 * nblocks, bad_first, bad_first >= 0 ? (double)x[bad_first] : 0.0,
          bad_first >= 0 ? (double)y[bad_first] : 0.0);
    CHECK(sse < worst_case, "%s %s: squared error %g, worst case of plain rounding %g", t->name, what, sse, worst_case);
    printf("    %s %-9s rms error %.3g (worst case of plain rounding %.3g)\n", t->name, what,
           sqrt(sse / (256.0 * nblocks)), sqrt(worst_case / (256.0 * nblocks)));
}

static void test_real_weights(void) {
    float *x = NULL;
    int nb = real_blocks(&x);
    CHECK(nb >= 1000, "%d blocks of real weights", nb);
    if (nb < 1) {
        free(x);
        return;
    }
    float *y = malloc((size_t)nb * 256 * sizeof *y), *qw = malloc((size_t)nb * 256 * sizeof *qw);
    uint8_t *blocks = malloc((size_t)nb * 210);
    for (int k = 0; k < NTYPES; k++) {
        const kq_type *t = &TYPES[k];
        const qc_gguf_type_info *ti = info(t);
        ti->from_float(x, blocks, (int64_t)nb * 256);
        ti->to_float(blocks, y, (int64_t)nb * 256);
        check_quantized(t, x, blocks, y, nb, "reference");
        /* AWQ's searches simulate a K-quant linear by qc_quant_fake: exactly what the file decodes to */
        int bits = qc_gguf_k_bits((qc_gguf_type)t->id);
        qc_quant_spec spec = { .bits = bits, .groupsize = t->sub, .sym = !t->affine, .f16_scales = true,
                               .store_min = t->affine, .kquant = qc_gguf_kquant_fit };
        qc_quant_fake(x, nb, 256, &spec, qw);
        int differ = 0;
        for (int i = 0; i < nb * 256; i++) differ += memcmp(&qw[i], &y[i], sizeof(float)) != 0;
        CHECK(differ == 0, "%s: qc_quant_fake differs from the file's decoded values at %d of %d weights", t->name,
              differ, nb * 256);
        /* importances: positive and varied from column to column, as an imatrix's mean x² per channel */
        for (int i = 0; i < nb * 256; i++) qw[i] = 1.0f + (float)((i * 37) % 256) / 64.0f;
        ti->from_float_weighted(x, qw, blocks, (int64_t)nb * 256);
        ti->to_float(blocks, y, (int64_t)nb * 256);
        check_quantized(t, x, blocks, y, nb, "weighted");
    }
    /* an all-zero block decodes to zeros (no division by a zero scale) */
    float zeros[256] = { 0 }, out[256];
    for (int k = 0; k < NTYPES; k++) {
        info(&TYPES[k])->from_float(zeros, blocks, 256);
        info(&TYPES[k])->to_float(blocks, out, 256);
        int nz = 0;
        for (int e = 0; e < 256; e++) nz += out[e] != 0.0f;
        CHECK(nz == 0, "%s: zero block decodes to %d nonzero values", TYPES[k].name, nz);
    }
    free(x);
    free(y);
    free(qw);
    free(blocks);
}

/* ---- (d) fixed points ---------------------------------------------------------------------------------- */

/* quantize(decode(block)) reproduces the block's bytes when the block is the reference
 * quantizer's own canonical form; otherwise it cannot, since the same values have other
 * encodings and the quantizer picks one:
 * - the largest scale field is the top of its range (Q2_K 15, Q4_K/Q5_K 63; Q3_K −32 and
 *   Q6_K −128, the signed scale of largest magnitude, as the quantizer maps the largest
 *   sub-block scale to −32·d or −128·d), and likewise the largest min (or else d, dmin are
 *   rescaled: a Q4_K block with scales up to 62 comes back with d·62/63 and new fields);
 * - no scale is 0 (a sub-block of step 0 decodes to one value whatever its codes);
 * - each sub-block's codes reach both ends of the range (affine types), or the negative end
 *   (symmetric types: the fit maps the value of largest magnitude to −nmax); otherwise a
 *   wider or shifted grid fits the values as well;
 * - d and dmin are normal fp16 values, so max/63 (or max/−128, ...) rounds back to them.
 * Then the fit recovers each sub-block's step and offset to a few fp32 roundings, the
 * super-block fit recovers the integer fields exactly, and the codes follow. */
static void canonical_block(const kq_type *t, qc_pyrandom *r, uint8_t *b) {
    memset(b, 0, t->bytes);
    float d = (float)(0.001 + qc_pyrandom_random(r) * 0.01), dmin = (float)(0.001 + qc_pyrandom_random(r) * 0.01);
    factors_set(t->id, b, d, dmin);
    int nsub = 256 / t->sub;
    int top = (int)(qc_pyrandom_random(r) * nsub), top_m = (int)(qc_pyrandom_random(r) * nsub);
    for (int s = 0; s < nsub; s++) {
        int sc, m = 0;
        if (t->affine) {
            sc = s == top ? t->scale_max : 1 + (int)(qc_pyrandom_random(r) * t->scale_max);
            m = s == top_m ? t->scale_max : (int)(qc_pyrandom_random(r) * (t->scale_max + 1));
        } else {
            /* signed: −(largest) at the top sub-block, others nonzero of smaller magnitude */
            sc = s == top ? t->scale_min : (int)(qc_pyrandom_random(r) * (2 * t->scale_max)) - (t->scale_max - 1);
            if (sc == 0) sc = 1;
        }
        scale_set(t->id, b, s, sc, m);
        for (int i = 0; i < t->sub; i++) {
            int q = t->qlo + (int)(qc_pyrandom_random(r) * (t->qhi - t->qlo + 1));
            if (i == 0) q = t->qlo;
            if (i == 1 && t->affine) q = t->qhi;
            code_set(t->id, b, t->sub * s + i, q);
        }
    }
}

static void test_fixed_points(void) {
    qc_pyrandom r;
    qc_pyrandom_seed(&r, 21);
    uint8_t b[256], b2[256];
    float y[256];
    for (int k = 0; k < NTYPES; k++) {
        const kq_type *t = &TYPES[k];
        int differ = 0, first = -1;
        for (int it = 0; it < 300; it++) {
            canonical_block(t, &r, b);
            info(t)->to_float(b, y, 256);
            info(t)->from_float(y, b2, 256);
            if (memcmp(b, b2, t->bytes) != 0 && differ++ == 0) first = it;
        }
        CHECK(differ == 0, "%s: %d of 300 canonical blocks not reproduced (first: %d)", t->name, differ, first);
    }
    /* and not otherwise: a Q4_K block whose largest scale is 62 decodes to values the quantizer
     * encodes with d' = d·62/63 and scale field 63 */
    const kq_type *t4 = &TYPES[2];
    canonical_block(t4, &r, b);
    for (int s = 0; s < 8; s++) {
        int sc = k4_field(b + Q4_SCALES, s, 0);
        if (sc == 63) k4_set(b + Q4_SCALES, s, 0, 62);
    }
    info(t4)->to_float(b, y, 256);
    info(t4)->from_float(y, b2, 256);
    int top = 0;
    for (int s = 0; s < 8; s++) top = k4_field(b2 + Q4_SCALES, s, 0) > top ? k4_field(b2 + Q4_SCALES, s, 0) : top;
    CHECK(memcmp(b, b2, t4->bytes) != 0 && top == 63, "Q4_K with scales up to 62 comes back rescaled to 63");
}

/* ---- the GGUF reader ---------------------------------------------------------------------------------- */

/* A synthetic Llama 256 wide (FFN 512) written as F32 GGUF by qcalib's writer, then each linear
 * turned into a K-quant tensor in place: its type field set, its rows' blocks written at the
 * start of its data (the rest of the F32 space left as a gap, which the reader allows). The
 * checkpoint then reads every such weight as the type table's decoder gives its blocks. */
static void test_reader_decodes_kquants(void) {
    qc_err e = { "" };
    qc_synth s = { .seed = 20 };
    CHECK(qc_synth_shape("tiny", &s.cfg), "tiny shape");
    s.cfg.dim = 256, s.cfg.hidden_dim = 512, s.cfg.head_dim = 64;
    qc_tokenizer tok;
    CHECK_OK(qc_tokenizer_load(&tok, shared_path(TOK512), 512, &e), e);
    qc_weight_source src = qc_synth_source(&s);
    qc_gguf_export_opts o = { .float_type = QC_GGUF_F32, .embed_type = QC_GGUF_F32, .output_type = QC_GGUF_F32,
                              .tok = &tok, .name = "kq" };
    const char *path = tmp_path("kq.gguf");
    CHECK_OK(qc_gguf_export(&src, path, &o, NULL, &e), e);
    qc_tokenizer_free(&tok);
    qc_gguf_file f;
    memset(&f, 0, sizeof f);
    CHECK_OK(qc_gguf_file_open(&f, path, &e), e);
    if (!f.map.data) return;
    uint8_t *bytes = malloc(f.map.size);
    memcpy(bytes, f.map.data, f.map.size);
    size_t size = f.map.size, data_start = f.data_start;
    const qc_config *c = &s.cfg;
    const qc_weight lin[] = { QC_W_Q, QC_W_K, QC_W_V, QC_W_O, QC_W_GATE, QC_W_UP, QC_W_DOWN };
    enum { NLIN = sizeof lin / sizeof lin[0] };
    int nw = 0;
    for (int l = 0; l < c->n_layers; l++)
        for (int i = 0; i < NLIN; i++, nw++) {
            const kq_type *t = &TYPES[nw % NTYPES];
            char name[64];
            qc_gguf_tensor_name(lin[i], l, name, sizeof name);
            const qc_gguf_tensor *ts = qc_gguf_find_tensor(&f, name);
            CHECK(ts && ts->n_dims == 2 && ts->ne[0] % 256 == 0, "%s: a matrix with rows of 256s", name);
            if (!ts) continue;
            /* the tensor info: u64 name length, the name, u32 n_dims, i64 ne[n_dims], u32 type */
            size_t at = (size_t)((const uint8_t *)ts->name - f.map.data) + (size_t)ts->name_len + 4 + 8 * 2;
            uint32_t type = (uint32_t)(bytes[at] | bytes[at + 1] << 8 | bytes[at + 2] << 16 | (uint32_t)bytes[at + 3] << 24);
            CHECK(type == QC_GGUF_F32, "%s: type field found (%u)", name, type);
            bytes[at] = (uint8_t)t->id, bytes[at + 1] = bytes[at + 2] = bytes[at + 3] = 0;
            const float *w = (const float *)ts->data; /* F32 little endian, as the host (x86-64) */
            uint8_t *dst = bytes + data_start + ts->offset;
            size_t rb = (size_t)ts->ne[0] / 256 * t->bytes;
            for (int64_t r = 0; r < ts->ne[1]; r++) info(t)->from_float(w + r * ts->ne[0], dst + r * rb, ts->ne[0]);
        }
    qc_gguf_file_close(&f);
    const char *kpath = tmp_path("kq-k.gguf");
    write_file(kpath, bytes, size);
    qc_checkpoint *ck = NULL;
    CHECK_OK(qc_checkpoint_open(&ck, kpath, &e), e);
    float *got = malloc(512 * 256 * sizeof *got), *want = malloc(512 * 256 * sizeof *want);
    nw = 0;
    for (int l = 0; l < c->n_layers && ck; l++)
        for (int i = 0; i < NLIN; i++, nw++) {
            const kq_type *t = &TYPES[nw % NTYPES];
            int rows, cols;
            qc_weight_shape(c, lin[i], &rows, &cols);
            CHECK_OK(qc_checkpoint_read(ck, lin[i], l, got, &e), e);
            char name[64];
            qc_gguf_tensor_name(lin[i], l, name, sizeof name);
            qc_gguf_file_open(&f, kpath, &e);
            const qc_gguf_tensor *ts = qc_gguf_find_tensor(&f, name);
            if (ts) info(t)->to_float(ts->data, want, (int64_t)rows * cols);
            qc_gguf_file_close(&f);
            CHECK(ts && memcmp(got, want, (size_t)rows * cols * sizeof *got) == 0, "%s (%s) reads as its blocks decode",
                  name, t->name);
            const char *qt = qc_checkpoint_qtype(ck, lin[i], l);
            CHECK(qt && strcmp(qt, t->name) == 0, "%s: qtype %s", name, qt ? qt : "(none)");
        }
    qc_checkpoint_close(ck);
    /* a corrupt block, an Inf super-block factor (fp16 0x7c00) in blk.0.attn_v.weight (Q4_K,
     * d at the block's first bytes): reading it is a clean numeric error naming the file */
    CHECK_OK(qc_gguf_file_open(&f, kpath, &e), e);
    const qc_gguf_tensor *tv = qc_gguf_find_tensor(&f, "blk.0.attn_v.weight");
    CHECK(tv && tv->type->id == QC_GGUF_Q4_K, "blk.0.attn_v.weight is Q4_K");
    if (tv) bytes[data_start + tv->offset] = 0x00, bytes[data_start + tv->offset + 1] = 0x7c;
    qc_gguf_file_close(&f);
    const char *bpath = tmp_path("kq-inf.gguf");
    write_file(bpath, bytes, size);
    CHECK_OK(qc_checkpoint_open(&ck, bpath, &e), e);
    if (ck) {
        e.msg[0] = '\0';
        qc_status st = qc_checkpoint_read(ck, QC_W_V, 0, got, &e);
        CHECK(st == QC_ERR_NUMERIC && strstr(e.msg, bpath), "Inf scale: status %d, message \"%s\"", (int)st, e.msg);
    }
    qc_checkpoint_close(ck);
    free(got);
    free(want);
    free(bytes);
}

int main(void) {
    RUN(test_block_sizes);
    RUN(test_decode_by_hand);
    RUN(test_decode_random_blocks);
    RUN(test_real_weights);
    RUN(test_fixed_points);
    RUN(test_reader_decodes_kquants);
    return check_summary();
}
