/* quant.h — what every solver shares (QUANT-SPEC §1): the quantization spec, group
 * parameters the way the GPTQ reference finds them (optionally with its MSE clip search),
 * round-to-nearest, the result every solver produces, and its dequantization.
 *
 * A weight W is (rows, cols) = [out, in]; groups are runs of `groupsize` consecutive input
 * columns of one row (the last may be shorter), or the whole row when groupsize <= 0. */
#ifndef QC_QUANT_H
#define QC_QUANT_H

#include "base/base.h"

/* ---- quantized weights ---------------------------------------------------------------------------- */

/* A weight quantized in groups, as solvers produce it and quantized formats store it: per
 * row, groups of `groupsize` input columns (the last may be shorter; <= 0: the whole row)
 * share a scale and a zero point. Arrays are owned and in ORIGINAL column order.
 *
 * K-quants (GGUF's Q2_K..Q6_K; `super` set): each row is cut into super-blocks of QC_KQ_SUPER
 * (256) columns, each cut into groups (sub-blocks) of 16 (Q2_K, Q3_K, Q6_K) or 32 (Q4_K,
 * Q5_K); bits says the type (Q<bits>_K). The groups' arrays hold what the runtime computes:
 *   scales[g] = d·sc_g            (fp32 product of the stored fp16 d and integer sc_g)
 *   mins[g]   = −(dmin·m_g)       (Q2_K, Q4_K, Q5_K: value = scales[g]·q + mins[g], i.e.
 *                                  d·sc·q − dmin·m, llama.cpp's order of operations; zeros[g]
 *                                  holds −mins[g]/scales[g] (0 for a zero scale), for logs)
 *   zeros[g]  = 4 (Q3_K), 32 (Q6_K), no mins: value = scales[g]·(q − zeros[g])
 * and `super` holds what the file stores, per row and super-block, QC_KQ_SB_FLOATS(groupsize)
 * floats: d, dmin (fp16 values; dmin 0 for Q3_K, Q6_K), then the integer sub-block scales
 * sc_g (Q2_K 0..15, Q3_K −32..31, Q4_K/Q5_K 0..63, Q6_K −128..127), then the integer mins m_g
 * (Q2_K 0..15, Q4_K/Q5_K 0..63; 0 for Q3_K, Q6_K). qc_qweight_dequantize evaluates the
 * same fp32 expressions as ggml's decoders, so it equals the GGUF decoder bit for bit. */
#define QC_KQ_SUPER 256
#define QC_KQ_SB_FLOATS(groupsize) (2 + 2 * (QC_KQ_SUPER / (groupsize)))
/* Q<bits>_K's shape, as the list above gives it: values per sub-block, whether it stores
 * mins, and (without mins) its codes' zero. */
static inline int qc_kquant_sub(int bits) { return bits == 4 || bits == 5 ? 32 : 16; }
static inline bool qc_kquant_has_mins(int bits) { return bits == 2 || bits == 4 || bits == 5; }
static inline float qc_kquant_zero(int bits) { return bits == 3 ? 4.0f : 32.0f; }
/* The stored integers' ranges: sub-block scales [*lo, *hi], mins [0, *mhi] (*mhi 0: none). */
static inline void qc_kquant_ranges(int bits, int *lo, int *hi, int *mhi) {
    *lo = bits == 3 ? -32 : bits == 6 ? -128 : 0;
    *hi = bits == 2 ? 15 : bits == 3 ? 31 : bits == 6 ? 127 : 63;
    *mhi = qc_kquant_has_mins(bits) ? *hi : 0;
}
typedef struct qc_qweight {
    int rows, cols, ngroups;
    int bits;        /* 2..8 */
    int groupsize;   /* columns per group; <= 0: one group per row */
    bool sym;        /* zero = (maxq + 1) / 2 for every group */
    uint8_t *codes;  /* (rows, cols) 0..2^bits − 1 */
    float *scales;   /* (rows, ngroups) */
    float *zeros;    /* (rows, ngroups) zero points, integral values stored as float */
    float *mins;     /* (rows, ngroups) or NULL; when set, value = scale·q + min (GGUF Q4_1's
                        fp16 d and m) and zeros are unused */
    int32_t *g_idx;  /* (cols) the group of each column (not monotonic with act-order) */
    int32_t *perm;   /* (cols) processing order: perm[k] = column quantized k-th */
    float *super;    /* K-quants: (rows, cols / QC_KQ_SUPER, QC_KQ_SB_FLOATS(groupsize)) the
                        stored super-block factors and integer sub-block scales (above);
                        NULL otherwise */
} qc_qweight;

/* Fits one K-quant super-block (QC_KQ_SUPER values x) of type Q<bits>_K: imp NULL, the
 * reference quantizer (llama.cpp's without an importance matrix), else importance-weighted
 * by imp (QC_KQ_SUPER non-negative values). Fills codes (QC_KQ_SUPER), the super-block's
 * groups' scales, zeros and mins (mins NULL for Q3_K and Q6_K) and its stored parameters sb
 * (QC_KQ_SB_FLOATS), as qc_qweight lays them out. x must be finite. io/ provides it (the block
 * formats live there); the solvers call it through their spec. */
typedef void (*qc_kquant_fit_fn)(int bits, const float *x, const float *imp, uint8_t *codes, float *scales, float *zeros,
                                 float *mins, float *sb);

/* The value of code q: scale · (q − zero), the one formula every zero-point format uses. */
static inline float qc_qvalue(float q, float scale, float zero) { return scale * (q - zero); }

/* Allocates codes, scales, zeros, g_idx (c / groupsize) and perm (identity); mins stays NULL. */
qc_status qc_qweight_init(qc_qweight *q, int rows, int cols, int bits, int groupsize, bool sym, qc_err *e);
void qc_qweight_free(qc_qweight *q); /* NULL or zeroed: no-op */
/* w (rows, cols) = the dequantized weight, in fp32. */
void qc_qweight_dequantize(const qc_qweight *q, float *w);

typedef struct qc_quant_spec {
    int bits;        /* 2..8 */
    int groupsize;   /* columns per group; <= 0: one group per row */
    bool sym;        /* symmetric: zero = (maxq + 1) / 2 */
    bool mse;        /* the reference's clip search (norm 2.4, grid 100, maxshrink 0.8) */
    bool f16_scales; /* round each scale to fp16 before use, so a file storing fp16 scales
                        holds exactly the weights the solver compensated for */
    bool store_min;  /* parameters stored as fp16 d and m, value = d·q + m (GGUF Q4_1): the
                        group's true range (0 need not be in it: there is no integer zero
                        point to keep on the grid), m = fp16(min), codes
                        clamp(round((x − m) / d)); zeros then hold −m/d, for logs only;
                        needs f16_scales and asymmetric groups */
    bool signed_scale;  /* symmetric groups whose scale carries the sign of the value of
                           largest magnitude, m: scale = −m / ((maxq + 1) / 2), so m lands
                           exactly on the extra level (llama.cpp's Q4_0 choice; GPTQ's
                           symmetric grid clips the positive extreme instead) */
    bool awq_range;  /* AWQ-style parameters (llm-awq's pseudo_quantize_tensor): the group's own
                        [min, max] (0 not forced in), scale = max(max − min, 1e−5) / maxq,
                        zero = clamp(−round(min / scale), 0, maxq); asymmetric, no --mse */
    qc_kquant_fit_fn kquant; /* non-NULL: GGUF K-quant super-blocks, Q<bits>_K, fitted by
                                this function (groupsize: the type's sub-block, 16 or 32; sym
                                for Q3_K and Q6_K, store_min for Q2_K, Q4_K and Q5_K); rows
                                must be whole super-blocks */
    bool zero_from_one; /* zero points >= 1 (GPTQ "v1" files store zero − 1 and loaders add 1
                           back unsigned: a zero of 0 cannot be stored); costs an all-positive
                           group its top level, and nothing otherwise */
} qc_quant_spec;

/* Checks bits (2..8) and groupsize (-1, 0 or positive; other negatives are refused as
 * likely typos); the message names the option (--wbits, --groupsize). */
qc_status qc_quant_spec_check(const qc_quant_spec *s, qc_err *e);
bool qc_quant_spec_same(const qc_quant_spec *a, const qc_quant_spec *b); /* every field equal */
int qc_quant_maxq(const qc_quant_spec *s);            /* 2^bits - 1 */
int qc_quant_ngroups(const qc_quant_spec *s, int cols); /* ceil(cols / groupsize), or 1 */

/* GPTQ-style parameters of one group: x[0..n) with stride `stride` between elements
 * (1 for a row's contiguous group). The range always contains 0; an all-zero group gets
 * [-1, 1]; with s->mse the clip search of QUANT-SPEC §1. With s->store_min, *min receives
 * the group's m (else min may be NULL). */
void qc_quant_find_params(const qc_quant_spec *s, const float *x, int n, int stride, float *scale,
                          float *zero, float *min);

/* v rounded to the nearest integer, ties to even: nearbyintf in the default rounding mode,
 * signed zeros included, but inline and vectorizable (baseline x86-64 has no rounding
 * instruction, so nearbyintf is a library call). Adding and removing 2^23 leaves the
 * nearest integer for |v| < 2^23; larger floats are integers already. */
static inline float qc_round_half_even(float v) {
#if defined(__FLT_EVAL_METHOD__) && __FLT_EVAL_METHOD__ == 0 && !defined(__FAST_MATH__)
    float t = __builtin_copysignf(0x1p23f, v);
    float r = __builtin_copysignf((v + t) - t, v);
    return __builtin_fabsf(v) < 0x1p23f ? r : v;
#else
    return __builtin_nearbyintf(v);
#endif
}

/* The code of x: clamp(round_half_even(x / scale) + zero, 0, maxq) (a real division). */
static inline float qc_quant_code(float x, float scale, float zero, int maxq) {
    float q = qc_round_half_even(x / scale) + zero;
    return q < 0.0f ? 0.0f : q > (float)maxq ? (float)maxq : q;
}

/* The code of x under fp16 d and m (store_min): clamp(round_half_even((x − m) / d), 0, maxq);
 * its value is d·q + m. */
static inline float qc_quant_code_min(float x, float d, float m, int maxq) {
    float q = qc_round_half_even((x - m) / d);
    return q < 0.0f ? 0.0f : q > (float)maxq ? (float)maxq : q;
}

/* Allocates r (qc_qweight above, what every solver produces) for a (rows, cols) weight
 * quantized by spec s, after checking s. Solvers (qc_quant_rtn, qc_gptq_quantize)
 * initialise their result this way themselves: pass an unused (or freed) one; on failure it
 * is left zeroed. */
qc_status qc_quant_alloc(qc_qweight *r, int rows, int cols, const qc_quant_spec *s, qc_err *e);

/* Round-to-nearest, the baseline: every group's parameters from w itself, each weight
 * rounded on its own. NaN/Inf in w is an error (QC_ERR_NUMERIC). */
qc_status qc_quant_rtn(const float *w, int rows, int cols, const qc_quant_spec *s, qc_qweight *r,
                       qc_err *e);

/* out (rows, cols) = w round-to-nearest quantized by s and dequantized (the "fake
 * quantization" of AWQ's searches); out may be w. s must have passed qc_quant_spec_check and
 * w must be finite. A K-quant spec: llama.cpp's reference quantizer (no importance) on each
 * super-block, the values qc_quant_rtn then qc_qweight_dequantize give; cols must be whole
 * super-blocks. */
void qc_quant_fake(const float *w, int rows, int cols, const qc_quant_spec *s, float *out);

/* Per-token symmetric dynamic activation quantization, as SmoothQuant's W8A8 simulation
 * (quantize_activation_per_token_absmax): each row of x (ntok, cols) becomes
 * round(x / d) · d with d = max(max|row|, 1e−5) / (2^(bits−1) − 1), in place. */
void qc_quant_act_per_token(float *x, int ntok, int cols, int bits);

/* Relative output error of replacing w by q on inputs whose Σ xᵀx is h (cols, cols):
 * ‖X(W−Q)ᵀ‖² / ‖XWᵀ‖² = tr((W−Q) H (W−Q)ᵀ) / tr(W H Wᵀ), accumulated in double (the
 * products by H are fp32 oneDNN products over H's upper triangle, each entry a sum of at
 * most cols terms). Only h's upper triangle is read. Uses OpenMP threads through oneDNN.
 * NaN if memory runs out or a product fails. */
double qc_quant_output_error(const float *w, const float *q, int rows, int cols, const float *h);
/* Its two parts: *err = ‖X(W−Q)ᵀ‖², *energy = ‖XWᵀ‖² (both NaN on failure, which says
 * what failed in e). */
qc_status qc_quant_output_error_parts(const float *w, const float *q, int rows, int cols, const float *h, double *err,
                                      double *energy, qc_err *e);
/* err / energy as qc_quant_output_error reports it: 0 / 0 = 0, x / 0 = ∞, NaN stays NaN. */
static inline double qc_quant_error_ratio(double err, double energy) {
    return err != err ? err : energy > 0.0 ? err / energy : err == 0.0 ? 0.0 : __builtin_inf();
}

#endif
