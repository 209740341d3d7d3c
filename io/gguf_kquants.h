/* gguf_kquants.h — internal to io/ (and to io's tests): ggml's K-quant block formats, Q2_K,
 * Q3_K, Q4_K, Q5_K and Q6_K, declared once as ggml-common.h declares them, and their scalar
 * reference paths (gguf_kquants.c).
 *
 * Every K-quant block is a super-block of QC_QK_K = 256 consecutive weights of a row (a row of
 * n weights is n/256 blocks; ggml needs ne[0], the input dimension, to be a multiple of 256).
 * The super-block is cut into sub-blocks of 16 (Q2_K, Q3_K, Q6_K) or 32 (Q4_K, Q5_K) weights,
 * each with its own small integer scale (and, for Q2_K, Q4_K and Q5_K, its own min); those
 * are themselves quantized against one or two fp16 super-block factors d (and dmin). fp16
 * fields are little endian and read and written byte by byte, whatever the host.
 *
 * Element e (0..255) of a super-block, by type (c = e / 128 or e / 64 as said, s = sub-block):
 *   Q2_K  s = e/16. value = (d·sc_s)·q − dmin·m_s, q in 0..3, sc_s = scales[s] & 15,
 *         m_s = scales[s] >> 4; q = (qs[32·(e/128) + e%32] >> 2·((e%128)/32)) & 3.
 *   Q3_K  s = e/16. value = (d·(sc_s − 32))·(q − 4), q in 0..7 = low 2 bits as Q2_K's
 *         qs, plus 4 when bit e/32 of hmask[e%32] is set; sc_s is 6 bits: low 4 bits from
 *         scales[s] (s < 8) or scales[s−8] >> 4 (s >= 8), high 2 bits from
 *         scales[8 + s%4] >> 2·(s/4).
 *   Q4_K  s = e/32. value = (d·sc_s)·q − dmin·m_s, q in 0..15, the low nibble of
 *         qs[32·(e/64) + e%32] when e%64 < 32, else its high nibble; sc_s, m_s 6 bits
 *         each in scales[12] (pack_scale_min6 in gguf_kquants.c: s < 4: sc_s = scales[s] & 63,
 *         m_s = scales[s+4] & 63; s >= 4: low 4 bits in the nibbles of scales[s+4], high 2
 *         bits in the top bits of scales[s−4] and scales[s]).
 *   Q5_K  as Q4_K with q in 0..31: the Q4_K nibble plus 16 when bit s of qh[e%32] is set.
 *   Q6_K  s = e/16. value = (d·scales[s])·(q − 32), scales int8, q in 0..63: with
 *         c = e/128, k = (e%128)/32, l = e%32, the low 4 bits are the low (k < 2) or high
 *         (k >= 2) nibble of ql[64·c + 32·(k%2) + l], the high 2 bits are bits 2k, 2k+1 of
 *         qh[32·c + l].
 * Each product is evaluated in fp32 in exactly that order (ggml-quants.c's dequantize_row_*),
 * so decoded values are bit-identical to llama.cpp's. */
#ifndef QC_IO_GGUF_KQUANTS_H
#define QC_IO_GGUF_KQUANTS_H

#include <assert.h>
#include <stdint.h>

#define QC_QK_K 256          /* weights per super-block */
#define QC_K_SCALE_BYTES 12  /* Q4_K/Q5_K: 8 six-bit scales and 8 six-bit mins */

/* Their ggml type ids are io.h's qc_gguf_type (QC_GGUF_Q2_K = 10 .. QC_GGUF_Q6_K = 14). */

/* Q2_K: 2.625 bits per weight (84 bytes / 256). Value d·sc·q − dmin·m, q in 0..3; 16
 * sub-blocks of 16, each with a 4-bit scale and a 4-bit min in one byte. */
typedef struct qc_block_q2_k {
    uint8_t scales[QC_QK_K / 16]; /* low nibble: scale, high nibble: min, of sub-block s */
    uint8_t qs[QC_QK_K / 4];      /* 2-bit codes, four per byte */
    uint16_t d;                   /* fp16 factor of the scales */
    uint16_t dmin;                /* fp16 factor of the mins */
} qc_block_q2_k;
static_assert(sizeof(qc_block_q2_k) == 4 + QC_QK_K / 16 + QC_QK_K / 4, "Q2_K block is 84 bytes");

/* Q3_K: 3.4375 bits per weight (110 bytes / 256). Value d·(sc − 32)·(q − 4), q in 0..7;
 * 16 sub-blocks of 16 with 6-bit scales; no mins. */
typedef struct qc_block_q3_k {
    uint8_t hmask[QC_QK_K / 8];   /* the codes' high bits */
    uint8_t qs[QC_QK_K / 4];      /* the codes' low 2 bits, as Q2_K's */
    uint8_t scales[12];           /* 16 six-bit scales, offset by 32 */
    uint16_t d;                   /* fp16 factor of the scales */
} qc_block_q3_k;
static_assert(sizeof(qc_block_q3_k) == 2 + QC_QK_K / 8 + QC_QK_K / 4 + 12, "Q3_K block is 110 bytes");

/* Q4_K: 4.5 bits per weight (144 bytes / 256). Value d·sc·q − dmin·m, q in 0..15; 8
 * sub-blocks of 32 with 6-bit scales and mins. */
typedef struct qc_block_q4_k {
    uint16_t d;                        /* fp16 factor of the scales */
    uint16_t dmin;                     /* fp16 factor of the mins */
    uint8_t scales[QC_K_SCALE_BYTES];  /* 6-bit scales and mins */
    uint8_t qs[QC_QK_K / 2];           /* 4-bit codes */
} qc_block_q4_k;
static_assert(sizeof(qc_block_q4_k) == 4 + QC_K_SCALE_BYTES + QC_QK_K / 2, "Q4_K block is 144 bytes");

/* Q5_K: 5.5 bits per weight (176 bytes / 256). As Q4_K with a fifth code bit, q in 0..31. */
typedef struct qc_block_q5_k {
    uint16_t d;                        /* fp16 factor of the scales */
    uint16_t dmin;                     /* fp16 factor of the mins */
    uint8_t scales[QC_K_SCALE_BYTES];  /* 6-bit scales and mins, as Q4_K */
    uint8_t qh[QC_QK_K / 8];           /* the codes' fifth bits */
    uint8_t qs[QC_QK_K / 2];           /* the codes' low 4 bits, as Q4_K's */
} qc_block_q5_k;
static_assert(sizeof(qc_block_q5_k) == 4 + QC_K_SCALE_BYTES + QC_QK_K / 8 + QC_QK_K / 2, "Q5_K block is 176 bytes");

/* Q6_K: 6.5625 bits per weight (210 bytes / 256). Value d·sc·(q − 32), q in 0..63; 16
 * sub-blocks of 16 with signed 8-bit scales; no mins. */
typedef struct qc_block_q6_k {
    uint8_t ql[QC_QK_K / 2];      /* the codes' low 4 bits */
    uint8_t qh[QC_QK_K / 4];      /* the codes' high 2 bits */
    int8_t scales[QC_QK_K / 16];  /* signed scales */
    uint16_t d;                   /* fp16 factor of the scales */
} qc_block_q6_k;
static_assert(sizeof(qc_block_q6_k) == 2 + QC_QK_K / 16 + 3 * QC_QK_K / 4, "Q6_K block is 210 bytes");

/* ---- one super-block: the scalar reference paths --------------------------------------------
 * Decoders (dequantize_row_*_K): the oracle every other path is held to. Reference quantizers
 * (quantize_row_*_K_ref, what llama-quantize runs without an importance matrix): byte-identical
 * to llama.cpp's for the same finite input. Weighted quantizers (quantize_row_*_K_impl, what
 * llama-quantize runs with an importance matrix): qw holds the 256 importances of the block's
 * columns (llama.cpp's imatrix values: the mean x² of each input channel), none negative. */
void qc_gguf_q2_k_to_float(const qc_block_q2_k *b, float out[QC_QK_K]);
void qc_gguf_q3_k_to_float(const qc_block_q3_k *b, float out[QC_QK_K]);
void qc_gguf_q4_k_to_float(const qc_block_q4_k *b, float out[QC_QK_K]);
void qc_gguf_q5_k_to_float(const qc_block_q5_k *b, float out[QC_QK_K]);
void qc_gguf_q6_k_to_float(const qc_block_q6_k *b, float out[QC_QK_K]);

void qc_gguf_q2_k_ref(const float x[QC_QK_K], qc_block_q2_k *b);
void qc_gguf_q3_k_ref(const float x[QC_QK_K], qc_block_q3_k *b);
void qc_gguf_q4_k_ref(const float x[QC_QK_K], qc_block_q4_k *b);
void qc_gguf_q5_k_ref(const float x[QC_QK_K], qc_block_q5_k *b);
void qc_gguf_q6_k_ref(const float x[QC_QK_K], qc_block_q6_k *b);

void qc_gguf_q2_k_weighted(const float x[QC_QK_K], const float qw[QC_QK_K], qc_block_q2_k *b);
void qc_gguf_q3_k_weighted(const float x[QC_QK_K], const float qw[QC_QK_K], qc_block_q3_k *b);
void qc_gguf_q4_k_weighted(const float x[QC_QK_K], const float qw[QC_QK_K], qc_block_q4_k *b);
void qc_gguf_q5_k_weighted(const float x[QC_QK_K], const float qw[QC_QK_K], qc_block_q5_k *b);
void qc_gguf_q6_k_weighted(const float x[QC_QK_K], const float qw[QC_QK_K], qc_block_q6_k *b);

/* ---- rows, for the type table (gguf_blocks.c): n a multiple of QC_QK_K ---------------------- */
#define QC_KQUANT_ROW_DECLS(T)                                                                     \
    void qc_gguf_##T##_row_to_float(const void *blocks, float *out, int64_t n);                    \
    void qc_gguf_##T##_row_ref(const float *x, void *blocks, int64_t n);                           \
    void qc_gguf_##T##_row_weighted(const float *x, const float *qw, void *blocks, int64_t n);
QC_KQUANT_ROW_DECLS(q2_k)
QC_KQUANT_ROW_DECLS(q3_k)
QC_KQUANT_ROW_DECLS(q4_k)
QC_KQUANT_ROW_DECLS(q5_k)
QC_KQUANT_ROW_DECLS(q6_k)
#undef QC_KQUANT_ROW_DECLS

/* ---- a solver's K-quant weight (quant.h's qc_qweight with `super`) ---------------------------
 * One super-block of Q<bits>_K from its codes (QC_QK_K) and stored parameters sb
 * (QC_KQ_SB_FLOATS: d, dmin, the integer scales, the integer mins), into `block` (the type's
 * block struct). The fields are stored as given: the caller has checked them (fp16 d and dmin,
 * integers in the type's range, codes below 2^bits). */
void qc_gguf_kquant_pack(int bits, const uint8_t *codes, const float *sb, void *block);

#endif
