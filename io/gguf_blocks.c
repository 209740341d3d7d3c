/* gguf_blocks.c — ggml's element types as qcalib reads and writes them: the table indexed by
 * ggml type id (name, block size, bytes per block, decoder, reference quantizer), the scalar
 * reference paths for Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 (layouts and bits per weight in gguf.h; the K-quants'
 * are gguf_kquants.c's), encoding a solver's quantized weight into blocks exactly as it is,
 * and the public type names.
 *
 * Decoding follows ggml-quants.c's dequantize_row_q*: the value is computed in fp32 as
 * (float)q·d (+ m), the same expression qc_qweight_dequantize evaluates for the same code,
 * scale and min, so a weight written from a qc_qweight reads back bit-exactly equal to its
 * dequantized form. The reference quantizers follow quantize_row_q*_ref to the operation:
 * they multiply by the fp32 reciprocal of the fp32 scale (not the fp16 one stored) and
 * convert with ggml's casts, so their blocks are byte-identical to llama-quantize's for the
 * same input. fp16 conversion is round to nearest even, as ggml's. */
#include "io/gguf.h"
#include "io/gguf_kquants.h"

#include <float.h>
#include <math.h>
#include <string.h>
#include <strings.h>

/* ---- one block ------------------------------------------------------------------------------- */

void qc_gguf_q4_0_to_float(const qc_block_q4_0 *b, float out[QC_QK4_0]) {
    float d = qc_gguf_get_f16(&b->d);
    for (int j = 0; j < QC_QK4_0 / 2; j++) {
        out[j] = (float)((b->qs[j] & 0x0f) - 8) * d;
        out[j + QC_QK4_0 / 2] = (float)((b->qs[j] >> 4) - 8) * d;
    }
}

void qc_gguf_q4_1_to_float(const qc_block_q4_1 *b, float out[QC_QK4_1]) {
    float d = qc_gguf_get_f16(&b->d), m = qc_gguf_get_f16(&b->m);
    for (int j = 0; j < QC_QK4_1 / 2; j++) {
        out[j] = (float)(b->qs[j] & 0x0f) * d + m;
        out[j + QC_QK4_1 / 2] = (float)(b->qs[j] >> 4) * d + m;
    }
}

void qc_gguf_q8_0_to_float(const qc_block_q8_0 *b, float out[QC_QK8_0]) {
    float d = qc_gguf_get_f16(&b->d);
    for (int j = 0; j < QC_QK8_0; j++) out[j] = (float)b->qs[j] * d;
}

/* The fifth bits of a Q5 block: bit j of the little-endian u32 qh is element j's. */
static uint32_t get_qh(const uint8_t qh[4]) {
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}
static void put_qh(uint8_t qh[4], uint32_t v) {
    for (int k = 0; k < 4; k++) qh[k] = (uint8_t)(v >> 8 * k);
}

/* dequantize_row_q5_0 / _q5_1: the int code (− 16) times d (+ m), in that order. */
void qc_gguf_q5_0_to_float(const qc_block_q5_0 *b, float out[QC_QK5_0]) {
    float d = qc_gguf_get_f16(&b->d);
    uint32_t qh = get_qh(b->qh);
    for (int j = 0; j < QC_QK5_0 / 2; j++) {
        int x0 = ((b->qs[j] & 0x0f) | (int)((qh >> j) & 1) << 4) - 16;
        int x1 = ((b->qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4) - 16;
        out[j] = (float)x0 * d;
        out[j + QC_QK5_0 / 2] = (float)x1 * d;
    }
}

void qc_gguf_q5_1_to_float(const qc_block_q5_1 *b, float out[QC_QK5_1]) {
    float d = qc_gguf_get_f16(&b->d), m = qc_gguf_get_f16(&b->m);
    uint32_t qh = get_qh(b->qh);
    for (int j = 0; j < QC_QK5_1 / 2; j++) {
        int x0 = (b->qs[j] & 0x0f) | (int)((qh >> j) & 1) << 4;
        int x1 = (b->qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
        out[j] = (float)x0 * d + m;
        out[j + QC_QK5_1 / 2] = (float)x1 * d + m;
    }
}

/* The legacy reference quantizers' two range searches: the signed value of largest magnitude
 * (the first of equal magnitudes: Q4_0, Q5_0), and the block's minimum and maximum (Q4_1, Q5_1). */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++)
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    return max;
}

static void min_max(const float *x, int n, float *min, float *max) {
    *min = FLT_MAX, *max = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < *min) *min = x[j];
        if (x[j] > *max) *max = x[j];
    }
}

/* 32 codes 0..31 into a Q5 block's nibbles and fifth bits. */
static void pack_q5(const uint8_t codes[32], uint8_t qs[16], uint8_t qh[4]) {
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((codes[j] & 0x0f) | (codes[j + 16] & 0x0f) << 4);
        h |= (uint32_t)((codes[j] >> 4) & 1) << j | (uint32_t)((codes[j + 16] >> 4) & 1) << (j + 16);
    }
    put_qh(qh, h);
}

void qc_gguf_q5_0_from_codes(const uint8_t codes[QC_QK5_0], float d, qc_block_q5_0 *b) {
    qc_gguf_put_f16(&b->d, d);
    pack_q5(codes, b->qs, b->qh);
}

void qc_gguf_q5_1_from_codes(const uint8_t codes[QC_QK5_1], float d, float m, qc_block_q5_1 *b) {
    qc_gguf_put_f16(&b->d, d);
    qc_gguf_put_f16(&b->m, m);
    pack_q5(codes, b->qs, b->qh);
}

/* quantize_row_q5_0_ref: d = (signed value of largest magnitude) / −16, q = min(31, (int8)(x/d + 16.5)). */
void qc_gguf_q5_0_ref(const float x[QC_QK5_0], qc_block_q5_0 *b) {
    const float d = signed_absmax(x, QC_QK5_0) / -16;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    uint8_t codes[QC_QK5_0];
    for (int j = 0; j < QC_QK5_0; j++) {
        int8_t q = (int8_t)(x[j] * id + 16.5f);
        codes[j] = (uint8_t)(q < 31 ? q : 31);
    }
    qc_gguf_put_f16(&b->d, d);
    pack_q5(codes, b->qs, b->qh);
}

/* quantize_row_q5_1_ref: d = (max − min) / 31, m = min, q = (uint8)((x − min)/d + 0.5). */
void qc_gguf_q5_1_ref(const float x[QC_QK5_1], qc_block_q5_1 *b) {
    float min, max;
    min_max(x, QC_QK5_1, &min, &max);
    const float d = (max - min) / ((1 << 5) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    uint8_t codes[QC_QK5_1];
    for (int j = 0; j < QC_QK5_1; j++) codes[j] = (uint8_t)((x[j] - min) * id + 0.5f);
    qc_gguf_put_f16(&b->d, d);
    qc_gguf_put_f16(&b->m, min);
    pack_q5(codes, b->qs, b->qh);
}

void qc_gguf_q4_0_from_codes(const uint8_t codes[QC_QK4_0], float d, qc_block_q4_0 *b) {
    qc_gguf_put_f16(&b->d, d);
    for (int j = 0; j < QC_QK4_0 / 2; j++)
        b->qs[j] = (uint8_t)((codes[j] & 0x0f) | (codes[j + QC_QK4_0 / 2] & 0x0f) << 4);
}

void qc_gguf_q4_1_from_codes(const uint8_t codes[QC_QK4_1], float d, float m, qc_block_q4_1 *b) {
    qc_gguf_put_f16(&b->d, d);
    qc_gguf_put_f16(&b->m, m);
    for (int j = 0; j < QC_QK4_1 / 2; j++)
        b->qs[j] = (uint8_t)((codes[j] & 0x0f) | (codes[j + QC_QK4_1 / 2] & 0x0f) << 4);
}

void qc_gguf_q8_0_from_codes(const uint8_t codes[QC_QK8_0], float d, qc_block_q8_0 *b) {
    qc_gguf_put_f16(&b->d, d);
    for (int j = 0; j < QC_QK8_0; j++) b->qs[j] = (int8_t)((int)codes[j] - 128);
}

/* quantize_row_q4_0_ref: d = (signed value of largest magnitude) / −8, q = min(15, (int8)(x/d + 8.5)). */
void qc_gguf_q4_0_ref(const float x[QC_QK4_0], qc_block_q4_0 *b) {
    const float d = signed_absmax(x, QC_QK4_0) / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    qc_gguf_put_f16(&b->d, d);
    for (int j = 0; j < QC_QK4_0 / 2; j++) {
        int8_t q0 = (int8_t)(x[j] * id + 8.5f), q1 = (int8_t)(x[j + QC_QK4_0 / 2] * id + 8.5f);
        uint8_t c0 = (uint8_t)(q0 < 15 ? q0 : 15), c1 = (uint8_t)(q1 < 15 ? q1 : 15);
        b->qs[j] = (uint8_t)(c0 | c1 << 4);
    }
}

/* quantize_row_q4_1_ref: d = (max − min) / 15, m = min, q = min(15, (int8)((x − min)/d + 0.5)). */
void qc_gguf_q4_1_ref(const float x[QC_QK4_1], qc_block_q4_1 *b) {
    float min, max;
    min_max(x, QC_QK4_1, &min, &max);
    const float d = (max - min) / ((1 << 4) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    qc_gguf_put_f16(&b->d, d);
    qc_gguf_put_f16(&b->m, min);
    for (int j = 0; j < QC_QK4_1 / 2; j++) {
        int8_t q0 = (int8_t)((x[j] - min) * id + 0.5f), q1 = (int8_t)((x[j + QC_QK4_1 / 2] - min) * id + 0.5f);
        uint8_t c0 = (uint8_t)(q0 < 15 ? q0 : 15), c1 = (uint8_t)(q1 < 15 ? q1 : 15);
        b->qs[j] = (uint8_t)(c0 | c1 << 4);
    }
}

/* quantize_row_q8_0_ref: d = max|x| / 127, q = round(x/d) (roundf: halves away from zero). */
void qc_gguf_q8_0_ref(const float x[QC_QK8_0], qc_block_q8_0 *b) {
    float amax = 0.0f;
    for (int j = 0; j < QC_QK8_0; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / ((1 << 7) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    qc_gguf_put_f16(&b->d, d);
    for (int j = 0; j < QC_QK8_0; j++) b->qs[j] = (int8_t)roundf(x[j] * id);
}

/* ---- rows, and the table ------------------------------------------------------------------------ */

static void f32_to_float(const void *src, float *out, int64_t n) { qc_convert_to_f32(QC_DT_F32, src, (size_t)n, out); }
static void f16_to_float(const void *src, float *out, int64_t n) { qc_convert_to_f32(QC_DT_F16, src, (size_t)n, out); }
static void bf16_to_float(const void *src, float *out, int64_t n) {
    qc_convert_to_f32(QC_DT_BF16, src, (size_t)n, out);
}
static void f32_from_float(const float *x, void *dst, int64_t n) { qc_convert_from_f32(QC_DT_F32, x, (size_t)n, dst); }
static void f16_from_float(const float *x, void *dst, int64_t n) { qc_convert_from_f32(QC_DT_F16, x, (size_t)n, dst); }
static void bf16_from_float(const float *x, void *dst, int64_t n) {
    qc_convert_from_f32(QC_DT_BF16, x, (size_t)n, dst);
}

#define ROW_FUNCS(T, QK)                                                                            \
    static void T##_row_to_float(const void *src, float *out, int64_t n) {                         \
        const qc_block_##T *b = src;                                                                \
        for (int64_t i = 0; i < n / QK; i++) qc_gguf_##T##_to_float(&b[i], out + i * QK);          \
    }                                                                                               \
    static void T##_row_from_float(const float *x, void *dst, int64_t n) {                         \
        qc_block_##T *b = dst;                                                                      \
        for (int64_t i = 0; i < n / QK; i++) qc_gguf_##T##_ref(x + i * QK, &b[i]);                 \
    }
ROW_FUNCS(q4_0, QC_QK4_0)
ROW_FUNCS(q4_1, QC_QK4_1)
ROW_FUNCS(q8_0, QC_QK8_0)
ROW_FUNCS(q5_0, QC_QK5_0)
ROW_FUNCS(q5_1, QC_QK5_1)

/* id, name, block, bytes per block, general.file_type, dtype, quantized, to_float, from_float,
 * from_float_weighted. A K-quant's file_type is the llama_ftype of a model mostly of that type
 * (the _S mixes; Q2_K and Q6_K have one each). */
static const qc_gguf_type_info type_table[] = {
    { QC_GGUF_F32, "F32", 1, 4, 0, QC_DT_F32, false, f32_to_float, f32_from_float, NULL },
    { QC_GGUF_F16, "F16", 1, 2, 1, QC_DT_F16, false, f16_to_float, f16_from_float, NULL },
    { QC_GGUF_Q4_0, "Q4_0", QC_QK4_0, sizeof(qc_block_q4_0), 2, QC_DT_U8, true, q4_0_row_to_float,
      q4_0_row_from_float, NULL },
    { QC_GGUF_Q4_1, "Q4_1", QC_QK4_1, sizeof(qc_block_q4_1), 3, QC_DT_U8, true, q4_1_row_to_float,
      q4_1_row_from_float, NULL },
    { QC_GGUF_Q5_0, "Q5_0", QC_QK5_0, sizeof(qc_block_q5_0), 8, QC_DT_U8, true, q5_0_row_to_float,
      q5_0_row_from_float, NULL },
    { QC_GGUF_Q5_1, "Q5_1", QC_QK5_1, sizeof(qc_block_q5_1), 9, QC_DT_U8, true, q5_1_row_to_float,
      q5_1_row_from_float, NULL },
    { QC_GGUF_Q8_0, "Q8_0", QC_QK8_0, sizeof(qc_block_q8_0), 7, QC_DT_U8, true, q8_0_row_to_float,
      q8_0_row_from_float, NULL },
    { QC_GGUF_BF16, "BF16", 1, 2, 32, QC_DT_BF16, false, bf16_to_float, bf16_from_float, NULL },
#define KQUANT_ROW(ID, NAME, T, FTYPE)                                                                  \
    { ID, NAME, QC_QK_K, sizeof(qc_block_##T), FTYPE, QC_DT_U8, true, qc_gguf_##T##_row_to_float,       \
      qc_gguf_##T##_row_ref, qc_gguf_##T##_row_weighted }
    KQUANT_ROW(QC_GGUF_Q2_K, "Q2_K", q2_k, 10),
    KQUANT_ROW(QC_GGUF_Q3_K, "Q3_K", q3_k, 11),
    KQUANT_ROW(QC_GGUF_Q4_K, "Q4_K", q4_k, 14),
    KQUANT_ROW(QC_GGUF_Q5_K, "Q5_K", q5_k, 16),
    KQUANT_ROW(QC_GGUF_Q6_K, "Q6_K", q6_k, 18),
#undef KQUANT_ROW
};

const qc_gguf_type_info *qc_gguf_type_info_of(uint32_t t) {
    for (size_t i = 0; i < sizeof type_table / sizeof type_table[0]; i++)
        if (type_table[i].id == t) return &type_table[i];
    return NULL;
}

const char *qc_gguf_ggml_type_name(uint32_t t) {
    static const char *const names[] = {
        "F32", "F16", "Q4_0", "Q4_1", NULL, NULL, "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K",
        "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S",
        "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M", "BF16", NULL, NULL, NULL,
        "TQ1_0", "TQ2_0",
    };
    return t < sizeof names / sizeof names[0] ? names[t] : NULL;
}

/* The types the writer produces (qc_gguf_type). */
static bool is_writer_type(int t) {
    return t == QC_GGUF_F32 || t == QC_GGUF_F16 || t == QC_GGUF_Q4_0 || t == QC_GGUF_Q4_1 || t == QC_GGUF_Q5_0 ||
           t == QC_GGUF_Q5_1 || t == QC_GGUF_Q8_0 || qc_gguf_type_is_k((qc_gguf_type)t);
}

const char *qc_gguf_type_name(qc_gguf_type t) {
    return is_writer_type((int)t) ? qc_gguf_type_info_of((uint32_t)t)->name : "?";
}

double qc_gguf_type_bits(qc_gguf_type t) {
    const qc_gguf_type_info *ti = is_writer_type((int)t) ? qc_gguf_type_info_of((uint32_t)t) : NULL;
    return ti ? 8.0 * (double)ti->block_bytes / (double)ti->block : 0.0;
}

int qc_gguf_type_block(qc_gguf_type t) {
    const qc_gguf_type_info *ti = is_writer_type((int)t) ? qc_gguf_type_info_of((uint32_t)t) : NULL;
    return ti ? ti->block : 0;
}

bool qc_gguf_type_parse(const char *name, qc_gguf_type *t) {
    static const qc_gguf_type all[] = { QC_GGUF_F32,  QC_GGUF_F16,  QC_GGUF_Q4_0, QC_GGUF_Q4_1, QC_GGUF_Q5_0,
                                        QC_GGUF_Q5_1, QC_GGUF_Q8_0, QC_GGUF_Q2_K, QC_GGUF_Q3_K, QC_GGUF_Q4_K,
                                        QC_GGUF_Q5_K, QC_GGUF_Q6_K };
    for (size_t i = 0; name && i < sizeof all / sizeof all[0]; i++)
        if (strcasecmp(name, qc_gguf_type_name(all[i])) == 0) {
            *t = all[i];
            return true;
        }
    return false;
}

/* ---- a solver's quantized weight as blocks ------------------------------------------------------- */

static bool fp16_exact(float v) { return isfinite(v) && qc_f16_to_f32(qc_f32_to_f16(v)) == v; }

/* A K-quant weight (q->super set): Q<bits>_K with its type's sub-blocks, whole super-blocks,
 * contiguous groups, every stored factor a finite fp16 value, every integer scale and min in
 * its field's range, and the groups' scales and mins exactly the products the decoder forms. */
static qc_status kquant_type(const qc_qweight *q, const char *what, qc_gguf_type *t, qc_err *e) {
    if (q->bits < 2 || q->bits > 6)
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: %d-bit super-blocks are no K-quant (Q2_K..Q6_K)", what, q->bits);
    *t = (qc_gguf_type)(QC_GGUF_Q2_K + q->bits - 2);
    const char *tn = qc_gguf_type_name(*t);
    bool has_mins = qc_kquant_has_mins(q->bits);
    int sub = qc_kquant_sub(q->bits), nsub = QC_KQ_SUPER / sub;
    if (q->groupsize != sub || q->cols % QC_KQ_SUPER != 0 || q->ngroups != q->cols / sub || (q->mins != NULL) != has_mins)
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: %s needs rows of whole %d-value super-blocks in sub-blocks of %d%s; "
                       "this weight has %d columns in groups of %d (qcalib convert --pad-to 256 widens a model)",
                       what, tn, QC_KQ_SUPER, sub, has_mins ? " with mins" : "", q->cols, q->groupsize);
    for (int c = 0; c < q->cols; c++)
        if (q->g_idx[c] != c / sub)
            return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: column %d is in group %d; %s blocks need contiguous groups "
                           "(act-order without static groups cannot be stored)", what, c, (int)q->g_idx[c], tn);
    int sc_lo, sc_hi, m_hi;
    qc_kquant_ranges(q->bits, &sc_lo, &sc_hi, &m_hi);
    int nsb = q->cols / QC_KQ_SUPER;
    for (int r = 0; r < q->rows; r++)
        for (int b = 0; b < nsb; b++) {
            const float *sb = q->super + ((size_t)r * nsb + b) * QC_KQ_SB_FLOATS(sub);
            for (int k = 0; k < 2; k++)
                if (!fp16_exact(sb[k]) || (k == 1 && !has_mins && sb[k] != 0.0f))
                    return qc_fail(e, isfinite(sb[k]) ? QC_ERR_ARG : QC_ERR_NUMERIC,
                                   "%s: row %d, super-block %d: %s %.9g is not %s; %s stores it in fp16", what, r, b,
                                   k ? "dmin" : "d", (double)sb[k], isfinite(sb[k]) ? "an fp16 value" : "finite", tn);
            for (int s = 0; s < nsub; s++) {
                float sc = sb[2 + s], m = sb[2 + nsub + s];
                size_t g = (size_t)r * q->ngroups + (size_t)b * nsub + s;
                if (!(sc >= sc_lo && sc <= sc_hi && sc == floorf(sc)) || !(m >= 0 && m <= m_hi && m == floorf(m)))
                    return qc_fail(e, QC_ERR_ARG, "%s: row %d, sub-block %d: scale %g or min %g is not an integer %s "
                                   "stores", what, r, b * nsub + s, (double)sc, (double)m, tn);
                bool same = q->scales[g] == sb[0] * sc && (!has_mins || q->mins[g] == -(sb[1] * m));
                if (!same || (!has_mins && q->zeros[g] != qc_kquant_zero(q->bits)))
                    return qc_fail(e, QC_ERR_ARG, "%s: row %d, sub-block %d: the group's scale%s is not the product of "
                                   "the stored factors %s decodes", what, r, b * nsub + s, has_mins ? " or min" : " or zero",
                                   tn);
            }
        }
    int maxq = (1 << q->bits) - 1;
    size_t n = (size_t)q->rows * q->cols;
    for (size_t i = 0; i < n; i++)
        if (q->codes[i] > maxq)
            return qc_fail(e, QC_ERR_ARG, "%s: row %zu, column %zu: code %d is beyond %d bits", what, i / q->cols,
                           i % q->cols, q->codes[i], q->bits);
    return QC_OK;
}

qc_status qc_gguf_qweight_type(const qc_qweight *q, const char *what, qc_gguf_type *t, qc_err *e) {
    if (q->super) return kquant_type(q, what, t, e);
    if (q->bits == 4 && q->mins) *t = QC_GGUF_Q4_1;
    else if (q->bits == 4) *t = QC_GGUF_Q4_0;
    else if (q->bits == 5 && q->mins) *t = QC_GGUF_Q5_1;
    else if (q->bits == 5) *t = QC_GGUF_Q5_0;
    else if (q->bits == 8 && !q->mins) *t = QC_GGUF_Q8_0;
    else
        return qc_fail(e, QC_ERR_UNSUPPORTED,
                       "%s: %d-bit groups%s have no GGUF block type qcalib writes (Q4_0: 4-bit, zero 8; "
                       "Q4_1: 4-bit with mins; Q5_0: 5-bit, zero 16; Q5_1: 5-bit with mins; Q8_0: 8-bit, zero 128)",
                       what, q->bits, q->mins ? " with mins" : "");
    const char *tn = qc_gguf_type_name(*t);
    if (q->groupsize != 32 || q->cols % 32 != 0 || q->ngroups != q->cols / 32)
        return qc_fail(e, QC_ERR_UNSUPPORTED,
                       "%s: %s blocks are groups of 32 columns; this weight has groupsize %d and %d columns%s",
                       what, tn, q->groupsize, q->cols,
                       q->cols % 32 ? " (pad the FFN to a multiple of 32 before quantizing)" : "");
    for (int c = 0; c < q->cols; c++)
        if (q->g_idx[c] != c / 32)
            return qc_fail(e, QC_ERR_UNSUPPORTED,
                           "%s: column %d is in group %d; %s blocks need contiguous groups (g_idx = column / 32: "
                           "act-order without static groups cannot be stored)", what, c, (int)q->g_idx[c], tn);
    int maxq = (1 << q->bits) - 1;
    float zero = *t == QC_GGUF_Q4_0 ? 8.0f : *t == QC_GGUF_Q5_0 ? 16.0f : 128.0f;
    size_t ng = (size_t)q->rows * q->ngroups;
    for (size_t g = 0; g < ng; g++) {
        int r = (int)(g / q->ngroups), gi = (int)(g % q->ngroups);
        if (!fp16_exact(q->scales[g]))
            return qc_fail(e, QC_ERR_ARG,
                           "%s: row %d, group %d: scale %.9g is not an fp16 value; %s stores d in fp16, so the solver "
                           "must quantize with fp16-rounded scales", what, r, gi, (double)q->scales[g], tn);
        if (q->mins && !fp16_exact(q->mins[g]))
            return qc_fail(e, QC_ERR_ARG,
                           "%s: row %d, group %d: min %.9g is not an fp16 value; %s stores m in fp16", what, r, gi,
                           (double)q->mins[g], tn);
        if (!q->mins && q->zeros[g] != zero)
            return qc_fail(e, QC_ERR_UNSUPPORTED,
                           "%s: row %d, group %d: zero point %g; %s blocks have zero %g (symmetric groups)%s", what, r,
                           gi, (double)q->zeros[g], tn, (double)zero,
                           q->bits != 8 ? "; asymmetric groups are Q4_1 or Q5_1 and need mins (value = scale·q + min)"
                                        : "");
    }
    size_t n = (size_t)q->rows * q->cols;
    for (size_t i = 0; i < n; i++)
        if (q->codes[i] > maxq)
            return qc_fail(e, QC_ERR_ARG, "%s: row %zu, column %zu: code %d is beyond %d bits", what,
                           i / q->cols, i % q->cols, q->codes[i], q->bits);
    return QC_OK;
}

void qc_gguf_encode_qweight_row(const qc_qweight *q, qc_gguf_type t, int r, void *blocks) {
    const uint8_t *codes = q->codes + (size_t)r * q->cols;
    if (qc_gguf_type_is_k(t)) {
        int nsb = q->cols / QC_KQ_SUPER;
        size_t bytes = qc_gguf_type_info_of((uint32_t)t)->block_bytes;
        for (int b = 0; b < nsb; b++)
            qc_gguf_kquant_pack(q->bits, codes + (size_t)b * QC_KQ_SUPER,
                                q->super + ((size_t)r * nsb + b) * QC_KQ_SB_FLOATS(q->groupsize),
                                (uint8_t *)blocks + (size_t)b * bytes);
        return;
    }
    const float *sc = q->scales + (size_t)r * q->ngroups;
    for (int g = 0; g < q->ngroups; g++) {
        const uint8_t *c = codes + (size_t)g * 32;
        switch (t) {
        case QC_GGUF_Q4_0: qc_gguf_q4_0_from_codes(c, sc[g], (qc_block_q4_0 *)blocks + g); break;
        case QC_GGUF_Q4_1:
            qc_gguf_q4_1_from_codes(c, sc[g], q->mins[(size_t)r * q->ngroups + g], (qc_block_q4_1 *)blocks + g);
            break;
        case QC_GGUF_Q5_0: qc_gguf_q5_0_from_codes(c, sc[g], (qc_block_q5_0 *)blocks + g); break;
        case QC_GGUF_Q5_1:
            qc_gguf_q5_1_from_codes(c, sc[g], q->mins[(size_t)r * q->ngroups + g], (qc_block_q5_1 *)blocks + g);
            break;
        case QC_GGUF_Q8_0: qc_gguf_q8_0_from_codes(c, sc[g], (qc_block_q8_0 *)blocks + g); break;
        default: QC_ASSERT(!"not a block type");
        }
    }
}
