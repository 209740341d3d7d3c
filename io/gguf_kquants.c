/* gguf_kquants.c — ggml's K-quant block formats (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K; layouts in
 * gguf_kquants.h): their decoders, ggml's reference quantizers without importance weights
 * (quantize_row_*_K_ref, what `llama-quantize --pure` runs without an imatrix), the
 * importance-weighted ones (quantize_row_*_K_impl, what it runs with one), the searches
 * they share, and a solver's K-quant weight to and from blocks (quant.h's qc_qweight with
 * super-blocks: qc_gguf_kquant_fit, the fitter solvers get through their spec, and
 * qc_gguf_kquant_pack, the writer's encoder).
 *
 * Bit-exact agreement with llama.cpp (ggml/src/ggml-quants.c, read at ggml-org/llama.cpp
 * 01243c58) is the point of this file, so each computation is written as ggml evaluates it:
 * - fp32 throughout, every expression in ggml's order of operations (a·b·c is (a·b)·c; a sum
 *   accumulates in the loop's order). Contracting a·b + c into an fma would change the bits:
 *   qcalib builds with -std=c11, under which GCC does not contract, and ggml-base is built
 *   without FMA instructions on x86-64, so neither side fuses.
 * - rounding to an integer is ggml's nearest_int (round_int below): adding 1.5·2^23 rounds
 *   to nearest, ties to even, in fp32; only valid for |v| < 2^22, as in ggml.
 * - divisions stay divisions, reciprocals stay reciprocals, as ggml wrote them.
 * - fp16 stores round to nearest even (qc_f32_to_f16, as ggml's conversion); the codes are
 *   then recomputed against the stored fp16 factors, so the codes fit the values the runtime
 *   decodes.
 * - integer conversions into uint8/int8 fields wrap as ggml's implicit ones do.
 * Names and structure are qcalib's own; the searches are described at each function.
 *
 * Checked by hand outside the repository (December 2026): `llama-quantize --pure` (a llama.cpp
 * tree whose K-quant code equals ggml-org/ggml d99724f2's), without and with a legacy imatrix,
 * on a synthetic 256-wide Llama written as F32 GGUF by qcalib: Q2_K, Q3_K_M, Q4_K_M, Q5_K_M and
 * Q6_K files, 16 K-quant tensors each, every block byte-identical to this file's quantizers
 * (the table's from_float, and from_float_weighted with the same importances); and against
 * ggml's ggml_quantize_chunk and to_float on tinystories-656K's linears and 4000 random blocks
 * (scales 1e-32 to 1e3, zeros, outliers), and 20000 random-byte blocks per type decoded: no
 * difference in any byte or bit. */
#include "io/gguf.h"
#include "io/gguf_kquants.h"

#include <math.h>
#include <string.h>

/* ggml's GROUP_MAX_EPS: a group whose largest magnitude is below this is all zeros. */
#define ZERO_GROUP 1e-15f

/* Nearest integer, ties to even, for |v| < 2^22: v + 1.5·2^23 lands in the binade where an
 * fp32's unit in the last place is 1, so the addition itself rounds; the integer is read
 * back from the mantissa bits. */
static inline int round_int(float v) {
    float shifted = v + 12582912.0f;
    int32_t bits;
    memcpy(&bits, &shifted, sizeof bits);
    return (bits & 0x007fffff) - 0x00400000;
}

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

/* The value of largest magnitude among x[0..n) (the first of equals; 0 when all are 0). */
static float largest_magnitude(const float *x, int n) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    return max;
}

/* ---- the searches -------------------------------------------------------------------------------- */

/* Codes l = clamp(round(iscale·x), −nmax, nmax−1) into L as l + offset, with the weighted
 * sums Σw·x·l and Σw·l² (weights w[i], or x[i]² when w is NULL) in ggml's order. */
static void symmetric_codes(int n, int nmax, float iscale, const float *x, const float *w, int8_t *L, int offset,
                            float *sumlx, float *suml2) {
    float slx = 0, sl2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = imax(-nmax, imin(nmax - 1, round_int(iscale * x[i])));
        L[i] = (int8_t)(l + offset);
        float wi = w ? w[i] : x[i] * x[i];
        slx += wi * x[i] * l;
        sl2 += wi * l * l;
    }
    *sumlx = slx, *suml2 = sl2;
}

/* Symmetric codes l in −nmax..nmax−1 for n values with x ≈ scale·l (make_qx_quants with
 * rmse_type 1): start from the scale that maps the value of largest magnitude to −nmax,
 * take the weighted least-squares scale of those codes, then try 18 nearby starting scales
 * −(nmax ± 0.1·k)/max and keep the codes whose least-squares fit explains most of Σw·x²
 * (largest (Σw·x·l)²/Σw·l²). Weights: w[i], or x[i]² when w is NULL. Stores l + nmax in L;
 * returns the scale (0 and codes 0 for an all-zero group). */
static float fit_symmetric(int n, int nmax, const float *x, int8_t *L, const float *w) {
    float max = largest_magnitude(x, n);
    if (fabsf(max) < ZERO_GROUP) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx, suml2;
    symmetric_codes(n, nmax, iscale, x, w, L, nmax, &sumlx, &suml2);
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int k = -9; k <= 9; ++k) {
        if (k == 0) continue;
        iscale = -(nmax + 0.1f * k) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = imax(-nmax, imin(nmax - 1, round_int(iscale * x[i])));
            float wi = w ? w[i] : x[i] * x[i];
            sumlx += wi * x[i] * l;
            suml2 += wi * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i)
                L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, round_int(iscale * x[i]))));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Q3_K's symmetric fit (make_q3_quants with do_rmse): codes from the scale mapping the value
 * of largest magnitude to −nmax, then up to 5 sweeps that move one code at a time to the
 * value the other codes' least-squares scale implies, when that raises (Σw·x·l)²/Σw·l²
 * (weights x²). Stores l + nmax in L; returns the least-squares scale. */
static float fit_symmetric_refined(int n, int nmax, const float *x, int8_t *L) {
    float max = largest_magnitude(x, n);
    if (fabsf(max) < ZERO_GROUP) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx, suml2;
    symmetric_codes(n, nmax, iscale, x, NULL, L, 0, &sumlx, &suml2);
    for (int sweep = 0; sweep < 5; ++sweep) {
        int changed = 0;
        for (int i = 0; i < n; ++i) {
            float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int l = imax(-nmax, imin(nmax - 1, round_int(x[i] * sl2 / slx)));
                if (l != L[i]) {
                    slx += w * x[i] * l;
                    sl2 += w * l * l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)l;
                        sumlx = slx;
                        suml2 = sl2;
                        ++changed;
                    }
                }
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; ++i) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* Affine codes l in 0..nmax with x ≈ scale·l + min, min <= 0 (make_qkx2_quants): start from
 * the range [min(x, 0), max(x)], then for nstep+1 scales (rmin + rdelta·k + nmax)/range
 * round the codes and fit scale and min by weighted least squares (min clamped to 0, the
 * scale refitted alone then), keeping the fit of smallest weighted error (|error| when mad,
 * squared otherwise). Stores the codes in L (Laux: scratch); *neg_min = −min; returns the
 * scale.
 * guarded: as the weighted quantizers run it (make_qkx3_quants): a range collapsed to a point
 * is max <= min rather than max == min, and each candidate code comes from a clamped
 * v = iscale·(x − min), 0 when v <= 0 and round_int(min(v, nmax)) otherwise (the same codes
 * for finite v in range; no overflow of round_int when min has moved up to max). */
static float fit_affine(int n, int nmax, const float *x, const float *w, uint8_t *L, float *neg_min, uint8_t *Laux,
                        float rmin, float rdelta, int nstep, bool mad, bool guarded) {
    float min = x[0], max = x[0];
    float sum_w = w[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (guarded ? max <= min : max == min) {
        memset(L, 0, (size_t)n);
        *neg_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; ++i) {
        int l = round_int(iscale * (x[i] - min));
        L[i] = (uint8_t)imax(0, imin(nmax, l));
        float diff = scale * L[i] + min - x[i];
        diff = mad ? fabsf(diff) : diff * diff;
        best_error += w[i] * diff;
    }
    if (nstep < 1) {
        *neg_min = -min;
        return scale;
    }
    for (int k = 0; k <= nstep; ++k) {
        iscale = (rmin + rdelta * k + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            const float v = iscale * (x[i] - min);
            int l = guarded ? (v > 0 ? round_int(v < nmax ? v : (float)nmax) : 0) : imax(0, imin(nmax, round_int(v)));
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float error = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = mad ? fabsf(diff) : diff * diff;
                error += w[i] * diff;
            }
            if (error < best_error) {
                for (int i = 0; i < n; ++i) L[i] = Laux[i];
                best_error = error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *neg_min = -min;
    return scale;
}

/* Codes l in 0..nmax for n non-negative values (the sub-block scales or mins) with
 * x ≈ scale·l, weighted by w (make_qp_quants): the scale nmax/max and 8 neighbours
 * (nmax ± 0.1·k)/max tried by weighted squared error, then up to 5 sweeps moving one code at
 * a time as fit_symmetric_refined does. Returns the least-squares scale (0 when max is
 * negligible). */
static float fit_positive(int n, int nmax, const float *x, uint8_t *L, const float *w) {
    float max = 0;
    for (int i = 0; i < n; ++i) max = max > x[i] ? max : x[i];
    if (max < ZERO_GROUP) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    float iscale = nmax / max;
    for (int i = 0; i < n; ++i) L[i] = (uint8_t)round_int(iscale * x[i]);
    float scale = 1 / iscale;
    float best_mse = 0;
    for (int i = 0; i < n; ++i) {
        float diff = x[i] - scale * L[i];
        best_mse += w[i] * diff * diff;
    }
    for (int k = -4; k <= 4; ++k) {
        if (k == 0) continue;
        float iscale_k = (0.1f * k + nmax) / max;
        float scale_k = 1 / iscale_k;
        float mse = 0;
        for (int i = 0; i < n; ++i) {
            int l = imin(nmax, round_int(iscale_k * x[i]));
            float diff = x[i] - scale_k * l;
            mse += w[i] * diff * diff;
        }
        if (mse < best_mse) {
            best_mse = mse;
            iscale = iscale_k;
        }
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = imin(nmax, round_int(iscale * x[i]));
        L[i] = (uint8_t)l;
        sumlx += w[i] * x[i] * l;
        suml2 += w[i] * l * l;
    }
    for (int sweep = 0; sweep < 5; ++sweep) {
        int changed = 0;
        for (int i = 0; i < n; ++i) {
            float slx = sumlx - w[i] * x[i] * L[i];
            float sl2 = suml2 - w[i] * L[i] * L[i];
            if (slx > 0 && sl2 > 0) {
                int l = imin(nmax, round_int(x[i] * sl2 / slx));
                if (l != L[i]) {
                    slx += w[i] * x[i] * l;
                    sl2 += w[i] * l * l;
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (uint8_t)l;
                        sumlx = slx;
                        suml2 = sl2;
                        ++changed;
                    }
                }
            }
        }
        if (!changed) break;
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* ---- packing --------------------------------------------------------------------------------------- */

/* Q4_K/Q5_K: sub-block s's 6-bit scale and min (layout in gguf_kquants.h). Called for s in
 * order 0..7: s >= 4 ORs its high bits into bytes that s − 4 wrote. */
static void pack_scale_min6(uint8_t *sc, int s, uint8_t ls, uint8_t lm) {
    if (s < 4) {
        sc[s] = ls;
        sc[s + 4] = lm;
    } else {
        sc[s + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
        sc[s - 4] |= (uint8_t)((ls >> 4) << 6);
        sc[s] |= (uint8_t)((lm >> 4) << 6);
    }
}

static void unpack_scale_min6(const uint8_t *sc, int s, uint8_t *ls, uint8_t *lm) {
    if (s < 4) {
        *ls = sc[s] & 63;
        *lm = sc[s + 4] & 63;
    } else {
        *ls = (uint8_t)((sc[s + 4] & 0xF) | ((sc[s - 4] >> 6) << 4));
        *lm = (uint8_t)((sc[s + 4] >> 4) | ((sc[s] >> 6) << 4));
    }
}

/* Q3_K: sub-block s's 6-bit scale field (0..63, the scale + 32); the 12 bytes start zeroed. */
static void pack_scale6(uint8_t *sc, int s, int v) {
    if (s < 8) sc[s] = (uint8_t)(v & 0xF);
    else sc[s - 8] |= (uint8_t)((v & 0xF) << 4);
    sc[s % 4 + 8] |= (uint8_t)((v >> 4) << (2 * (s / 4)));
}

/* Q3_K: sub-block s's signed scale (−32..31). */
static int unpack_scale6(const uint8_t *sc, int s) {
    int low = s < 8 ? sc[s] & 0xF : sc[s - 8] >> 4;
    return (low | ((sc[8 + s % 4] >> (2 * (s / 4))) & 3) << 4) - 32;
}

/* Q2_K/Q3_K: four 2-bit codes per byte; byte 32·c + l holds elements 128·c + l + 32·k in
 * bits 2k, 2k+1. */
static void pack_2bit(const uint8_t *L, uint8_t *qs) {
    for (int c = 0; c < QC_QK_K; c += 128)
        for (int l = 0; l < 32; ++l)
            qs[c / 4 + l] = (uint8_t)(L[c + l] | (L[c + l + 32] << 2) | (L[c + l + 64] << 4) | (L[c + l + 96] << 6));
}

/* Q4_K/Q5_K: byte 32·c + l holds element 64·c + l in its low nibble, 64·c + l + 32 in its
 * high one (Q5_K: the fifth bits go to qh first). */
static void pack_4bit(const uint8_t *L, uint8_t *qs) {
    for (int c = 0; c < QC_QK_K; c += 64)
        for (int l = 0; l < 32; ++l) qs[c / 2 + l] = (uint8_t)(L[c + l] | (L[c + l + 32] << 4));
}

/* Q5_K: splits codes 0..31 into the fifth bit (bit 2·(e/64) or 2·(e/64) + 1 of qh[e%32]) and
 * the low nibbles, packed as Q4_K's. */
static void pack_5bit(const uint8_t *L, uint8_t *qh, uint8_t *qs) {
    uint8_t low[QC_QK_K];
    memset(qh, 0, QC_QK_K / 8);
    for (int e = 0; e < QC_QK_K; ++e) {
        low[e] = L[e] & 0xF;
        if (L[e] > 15) qh[e % 32] |= (uint8_t)(1u << (e / 32));
    }
    pack_4bit(low, qs);
}

/* Q3_K: codes 0..7: the high bit to bit e/32 of hmask[e%32], the low two bits packed as Q2_K. */
static void pack_3bit(uint8_t *L, uint8_t *hmask, uint8_t *qs) {
    memset(hmask, 0, QC_QK_K / 8);
    for (int e = 0; e < QC_QK_K; ++e)
        if (L[e] > 3) {
            hmask[e % 32] |= (uint8_t)(1u << (e / 32));
            L[e] -= 4;
        }
    pack_2bit(L, qs);
}

/* Q6_K: codes 0..63: low nibbles and high bit pairs as gguf_kquants.h lays them out. */
static void pack_6bit(const uint8_t *L, uint8_t *ql, uint8_t *qh) {
    for (int c = 0; c < QC_QK_K; c += 128) {
        for (int l = 0; l < 32; ++l) {
            const uint8_t *q = L + c + l;
            ql[c / 2 + l] = (uint8_t)((q[0] & 0xF) | ((q[64] & 0xF) << 4));
            ql[c / 2 + l + 32] = (uint8_t)((q[32] & 0xF) | ((q[96] & 0xF) << 4));
            qh[c / 4 + l] = (uint8_t)((q[0] >> 4) | ((q[32] >> 4) << 2) | ((q[64] >> 4) << 4) | ((q[96] >> 4) << 6));
        }
    }
}

/* ---- decoders ---------------------------------------------------------------------------------------- */

/* Codes 0..2^bits − 1 of every element of a block, unsigned (Q3_K's and Q6_K's offsets 4 and 32
 * are the decoders'): the one statement of each layout's bit positions, for the decoders and
 * for a solver's fit (qc_gguf_kquant_fit). Element e sits in 128-value half c, 32-value
 * quarter k of it, lane l. */
static void block_codes(int bits, const void *block, uint8_t L[QC_QK_K]) {
    switch (bits) {
    case 2: {
        const qc_block_q2_k *b = block;
        for (int e = 0; e < QC_QK_K; ++e) L[e] = (uint8_t)((b->qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3);
        break;
    }
    case 3: {
        const qc_block_q3_k *b = block;
        for (int e = 0; e < QC_QK_K; ++e)
            L[e] = (uint8_t)(((b->qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3) |
                             ((b->hmask[e % 32] >> (e / 32)) & 1) << 2);
        break;
    }
    case 4:
    case 5: {
        const uint8_t *qs = bits == 4 ? ((const qc_block_q4_k *)block)->qs : ((const qc_block_q5_k *)block)->qs;
        for (int e = 0; e < QC_QK_K; ++e) {
            uint8_t byte = qs[32 * (e / 64) + e % 32];
            L[e] = (uint8_t)(e % 64 < 32 ? byte & 0xF : byte >> 4);
            if (bits == 5 && (((const qc_block_q5_k *)block)->qh[e % 32] >> (e / 32)) & 1) L[e] += 16;
        }
        break;
    }
    default: {
        const qc_block_q6_k *b = block;
        for (int e = 0; e < QC_QK_K; ++e) {
            int c = e / 128, k = (e % 128) / 32, l = e % 32;
            uint8_t lo = b->ql[64 * c + 32 * (k % 2) + l];
            L[e] = (uint8_t)((k < 2 ? lo & 0xF : lo >> 4) | ((b->qh[32 * c + l] >> (2 * k)) & 3) << 4);
        }
    }
    }
}

void qc_gguf_q2_k_to_float(const qc_block_q2_k *b, float out[QC_QK_K]) {
    const float d = qc_gguf_get_f16(&b->d), dmin = qc_gguf_get_f16(&b->dmin);
    uint8_t L[QC_QK_K];
    block_codes(2, b, L);
    for (int e = 0; e < QC_QK_K; ++e) {
        uint8_t sc = b->scales[e / 16];
        const float dl = d * (sc & 0xF), ml = dmin * (sc >> 4);
        out[e] = dl * L[e] - ml;
    }
}

void qc_gguf_q3_k_to_float(const qc_block_q3_k *b, float out[QC_QK_K]) {
    const float d = qc_gguf_get_f16(&b->d);
    uint8_t L[QC_QK_K];
    block_codes(3, b, L);
    for (int e = 0; e < QC_QK_K; ++e) out[e] = d * unpack_scale6(b->scales, e / 16) * (L[e] - 4);
}

/* Q4_K and Q5_K: dl·q − ml per sub-block of 32. */
static void q45_to_float(int bits, const void *b, const uint16_t *dfield, const uint16_t *dminfield,
                         const uint8_t *scbytes, float out[QC_QK_K]) {
    const float d = qc_gguf_get_f16(dfield), dmin = qc_gguf_get_f16(dminfield);
    uint8_t L[QC_QK_K];
    block_codes(bits, b, L);
    for (int s = 0; s < QC_QK_K / 32; ++s) {
        uint8_t ls, lm;
        unpack_scale_min6(scbytes, s, &ls, &lm);
        const float dl = d * ls, ml = dmin * lm;
        for (int l = 0; l < 32; ++l) out[32 * s + l] = dl * L[32 * s + l] - ml;
    }
}

void qc_gguf_q4_k_to_float(const qc_block_q4_k *b, float out[QC_QK_K]) { q45_to_float(4, b, &b->d, &b->dmin, b->scales, out); }
void qc_gguf_q5_k_to_float(const qc_block_q5_k *b, float out[QC_QK_K]) { q45_to_float(5, b, &b->d, &b->dmin, b->scales, out); }

void qc_gguf_q6_k_to_float(const qc_block_q6_k *b, float out[QC_QK_K]) {
    const float d = qc_gguf_get_f16(&b->d);
    uint8_t L[QC_QK_K];
    block_codes(6, b, L);
    for (int e = 0; e < QC_QK_K; ++e) out[e] = d * b->scales[e / 16] * (L[e] - 32);
}

/* ---- reference quantizers (no importance weights) ------------------------------------------------------ */

/* Q2_K: per sub-block of 16, fit_affine with weights |x|, 3 levels, mean absolute error;
 * scales and mins as 4-bit multiples of max/15; codes recomputed against the stored values. */
void qc_gguf_q2_k_ref(const float x[QC_QK_K], qc_block_q2_k *b) {
    uint8_t L[QC_QK_K], Laux[16];
    float w[16], mins[QC_QK_K / 16], scales[QC_QK_K / 16];
    const float levels = 15.f;
    float max_scale = 0, max_min = 0;
    for (int s = 0; s < QC_QK_K / 16; ++s) {
        for (int l = 0; l < 16; ++l) w[l] = fabsf(x[16 * s + l]);
        scales[s] = fit_affine(16, 3, x + 16 * s, w, L + 16 * s, &mins[s], Laux, -0.5f, 0.1f, 15, true, false);
        if (scales[s] > max_scale) max_scale = scales[s];
        if (mins[s] > max_min) max_min = mins[s];
    }
    if (max_scale > 0) {
        float iscale = levels / max_scale;
        for (int s = 0; s < QC_QK_K / 16; ++s) b->scales[s] = (uint8_t)round_int(iscale * scales[s]);
        qc_gguf_put_f16(&b->d, max_scale / levels);
    } else {
        for (int s = 0; s < QC_QK_K / 16; ++s) b->scales[s] = 0;
        qc_gguf_put_f16(&b->d, 0.f);
    }
    if (max_min > 0) {
        float iscale = levels / max_min;
        for (int s = 0; s < QC_QK_K / 16; ++s) b->scales[s] |= (uint8_t)(round_int(iscale * mins[s]) << 4);
        qc_gguf_put_f16(&b->dmin, max_min / levels);
    } else {
        qc_gguf_put_f16(&b->dmin, 0.f);
    }
    for (int s = 0; s < QC_QK_K / 16; ++s) {
        const float d = qc_gguf_get_f16(&b->d) * (b->scales[s] & 0xF);
        if (!d) continue;
        const float dm = qc_gguf_get_f16(&b->dmin) * (b->scales[s] >> 4);
        for (int i = 0; i < 16; ++i)
            L[16 * s + i] = (uint8_t)imax(0, imin(3, round_int((x[16 * s + i] + dm) / d)));
    }
    pack_2bit(L, b->qs);
}

/* Q3_K: per sub-block of 16, fit_symmetric_refined with 8 levels; the scales as 6-bit signed
 * multiples of d = max/−32 (max: the scale of largest magnitude, with its sign). */
void qc_gguf_q3_k_ref(const float x[QC_QK_K], qc_block_q3_k *b) {
    int8_t L[QC_QK_K];
    float scales[QC_QK_K / 16];
    float max_scale = 0, amax = 0;
    for (int s = 0; s < QC_QK_K / 16; ++s) {
        scales[s] = fit_symmetric_refined(16, 4, x + 16 * s, L + 16 * s);
        float a = fabsf(scales[s]);
        if (a > amax) {
            amax = a;
            max_scale = scales[s];
        }
    }
    memset(b->scales, 0, sizeof b->scales);
    if (max_scale) {
        float iscale = -32.f / max_scale;
        for (int s = 0; s < QC_QK_K / 16; ++s) {
            int8_t l = (int8_t)round_int(iscale * scales[s]);
            pack_scale6(b->scales, s, imax(-32, imin(31, l)) + 32);
        }
        qc_gguf_put_f16(&b->d, 1 / iscale);
    } else {
        qc_gguf_put_f16(&b->d, 0.f);
    }
    for (int s = 0; s < QC_QK_K / 16; ++s) {
        float d = qc_gguf_get_f16(&b->d) * (int8_t)unpack_scale6(b->scales, s);
        if (!d) continue;
        for (int i = 0; i < 16; ++i)
            L[16 * s + i] = (int8_t)(imax(-4, imin(3, round_int(x[16 * s + i] / d))) + 4);
    }
    pack_3bit((uint8_t *)L, b->hmask, b->qs);
}

/* Q4_K/Q5_K: the codes 0..nmax of each 32-value sub-block against the scale and min as stored
 * (fp16 d, dmin times the 6-bit ls, lm); a sub-block whose scale is 0 keeps the codes it has. */
static void q45_codes(const float x[QC_QK_K], int nmax, const uint16_t *dfield, const uint16_t *dminfield,
                      const uint8_t *scbytes, uint8_t L[QC_QK_K]) {
    for (int s = 0; s < QC_QK_K / 32; ++s) {
        uint8_t ls, lm;
        unpack_scale_min6(scbytes, s, &ls, &lm);
        const float d = qc_gguf_get_f16(dfield) * ls;
        if (!d) continue;
        const float dm = qc_gguf_get_f16(dminfield) * lm;
        for (int i = 0; i < 32; ++i)
            L[32 * s + i] = (uint8_t)imax(0, imin(nmax, round_int((x[32 * s + i] + dm) / d)));
    }
}

/* Q4_K and Q5_K (nmax 15 or 31): per sub-block of 32, fit_affine with weights
 * rms(sub-block) + |x| and squared error; scales and mins as 6-bit multiples of max/63;
 * codes recomputed against the stored values into L. */
static void ref_q45(const float x[QC_QK_K], int nmax, float rmin, int nstep, uint16_t *dfield, uint16_t *dminfield,
                    uint8_t *scbytes, uint8_t L[QC_QK_K]) {
    uint8_t Laux[32];
    float w[32], mins[QC_QK_K / 32], scales[QC_QK_K / 32];
    float max_scale = 0, max_min = 0;
    for (int s = 0; s < QC_QK_K / 32; ++s) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * s + l] * x[32 * s + l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) w[l] = av_x + fabsf(x[32 * s + l]);
        scales[s] = fit_affine(32, nmax, x + 32 * s, w, L + 32 * s, &mins[s], Laux, rmin, 0.1f, nstep, false, false);
        if (scales[s] > max_scale) max_scale = scales[s];
        if (mins[s] > max_min) max_min = mins[s];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int s = 0; s < QC_QK_K / 32; ++s) {
        uint8_t ls = (uint8_t)round_int(inv_scale * scales[s]);
        uint8_t lm = (uint8_t)round_int(inv_min * mins[s]);
        pack_scale_min6(scbytes, s, ls < 63 ? ls : 63, lm < 63 ? lm : 63);
    }
    qc_gguf_put_f16(dfield, max_scale / 63.f);
    qc_gguf_put_f16(dminfield, max_min / 63.f);
    q45_codes(x, nmax, dfield, dminfield, scbytes, L);
}

void qc_gguf_q4_k_ref(const float x[QC_QK_K], qc_block_q4_k *b) {
    uint8_t L[QC_QK_K];
    ref_q45(x, 15, -1.f, 20, &b->d, &b->dmin, b->scales, L);
    pack_4bit(L, b->qs);
}

void qc_gguf_q5_k_ref(const float x[QC_QK_K], qc_block_q5_k *b) {
    uint8_t L[QC_QK_K];
    ref_q45(x, 31, -0.5f, 15, &b->d, &b->dmin, b->scales, L);
    pack_5bit(L, b->qh, b->qs);
}

/* Q6_K: per sub-block of 16, fit_symmetric with 64 levels (weights x², or the importances
 * when qw is given); the scales as int8 multiples of d = max/−128 (max: the scale of
 * largest magnitude, with its sign); an all-zero super-block is all zero bytes. */
static void q6_k_fit(const float x[QC_QK_K], const float *qw, qc_block_q6_k *b) {
    int8_t L[QC_QK_K];
    float scales[QC_QK_K / 16];
    float max_scale = 0, max_abs_scale = 0;
    for (int s = 0; s < QC_QK_K / 16; ++s) {
        scales[s] = fit_symmetric(16, 32, x + 16 * s, L + 16 * s, qw ? qw + 16 * s : NULL);
        const float a = fabsf(scales[s]);
        if (a > max_abs_scale) {
            max_abs_scale = a;
            max_scale = scales[s];
        }
    }
    if (max_abs_scale < ZERO_GROUP) {
        memset(b, 0, sizeof *b);
        qc_gguf_put_f16(&b->d, 0.f);
        return;
    }
    float iscale = -128.f / max_scale;
    qc_gguf_put_f16(&b->d, 1 / iscale);
    for (int s = 0; s < QC_QK_K / 16; ++s) b->scales[s] = (int8_t)imin(127, round_int(iscale * scales[s]));
    for (int s = 0; s < QC_QK_K / 16; ++s) {
        float d = qc_gguf_get_f16(&b->d) * b->scales[s];
        if (!d) continue;
        for (int i = 0; i < 16; ++i)
            L[16 * s + i] = (int8_t)(imax(-32, imin(31, round_int(x[16 * s + i] / d))) + 32);
    }
    pack_6bit((const uint8_t *)L, b->ql, b->qh);
}

void qc_gguf_q6_k_ref(const float x[QC_QK_K], qc_block_q6_k *b) { q6_k_fit(x, NULL, b); }

/* ---- importance-weighted quantizers ---------------------------------------------------------------------
 * Each value's weight is its column's importance times sqrt(σ² + x²), σ² from the super-block's
 * mean square (Q3_K, Q4_K, Q5_K: twice it); the sub-block scales and mins are then fitted to
 * 4 or 6 bits by fit_positive (fit_symmetric for Q3_K's signed scales), weighted by their
 * sub-block's total weight, instead of as multiples of their maximum. */

/* Σx² over a super-block, in order (the weighted quantizers' σ² is a multiple of it). */
static float block_sum_sq(const float x[QC_QK_K]) {
    float sum = 0;
    for (int j = 0; j < QC_QK_K; ++j) sum += x[j] * x[j];
    return sum;
}

/* One sub-block's weights w[l] = q[l]·sqrt(σ² + x[l]²) (importance q), returning Σw in order. */
static float sub_weights(const float *x, const float *q, float sigma2, int len, float *w) {
    float sum = 0;
    for (int l = 0; l < len; ++l) w[l] = q[l] * sqrtf(sigma2 + x[l] * x[l]);
    for (int l = 0; l < len; ++l) sum += w[l];
    return sum;
}

void qc_gguf_q2_k_weighted(const float x[QC_QK_K], const float qw[QC_QK_K], qc_block_q2_k *b) {
    uint8_t L[QC_QK_K], Laux[16], Ls[QC_QK_K / 16], Lm[QC_QK_K / 16];
    float mins[QC_QK_K / 16], scales[QC_QK_K / 16], sw[QC_QK_K / 16], w[16];
    float sigma2 = block_sum_sq(x) / QC_QK_K;
    for (int s = 0; s < QC_QK_K / 16; ++s) {
        sw[s] = sub_weights(x + 16 * s, qw + 16 * s, sigma2, 16, w);
        scales[s] = fit_affine(16, 3, x + 16 * s, w, L + 16 * s, &mins[s], Laux, -0.9f, 0.05f, 36, false, true);
    }
    float dm = fit_positive(QC_QK_K / 16, 15, scales, Ls, sw);
    float mm = fit_positive(QC_QK_K / 16, 15, mins, Lm, sw);
    qc_gguf_put_f16(&b->d, dm);
    qc_gguf_put_f16(&b->dmin, mm);
    dm = qc_gguf_get_f16(&b->d);
    mm = qc_gguf_get_f16(&b->dmin);
    for (int s = 0; s < QC_QK_K / 16; ++s) b->scales[s] = (uint8_t)(Ls[s] | (Lm[s] << 4));
    for (int s = 0; s < QC_QK_K / 16; ++s) {
        const float d = dm * (b->scales[s] & 0xF);
        if (!d) continue;
        const float m = mm * (b->scales[s] >> 4);
        for (int i = 0; i < 16; ++i) L[16 * s + i] = (uint8_t)imax(0, imin(3, round_int((x[16 * s + i] + m) / d)));
    }
    pack_2bit(L, b->qs);
}

void qc_gguf_q3_k_weighted(const float x[QC_QK_K], const float qw[QC_QK_K], qc_block_q3_k *b) {
    int8_t L[QC_QK_K], Ls[QC_QK_K / 16];
    float scales[QC_QK_K / 16], w[16], sw[QC_QK_K / 16];
    float sigma2 = 2 * block_sum_sq(x) / QC_QK_K;
    for (int s = 0; s < QC_QK_K / 16; ++s) {
        sw[s] = sub_weights(x + 16 * s, qw + 16 * s, sigma2, 16, w);
        scales[s] = fit_symmetric(16, 4, x + 16 * s, L + 16 * s, w);
    }
    memset(b->scales, 0, sizeof b->scales);
    float d_block = fit_symmetric(QC_QK_K / 16, 32, scales, Ls, sw);
    for (int s = 0; s < QC_QK_K / 16; ++s) pack_scale6(b->scales, s, Ls[s]);
    qc_gguf_put_f16(&b->d, d_block);
    for (int s = 0; s < QC_QK_K / 16; ++s) {
        float d = qc_gguf_get_f16(&b->d) * (int8_t)unpack_scale6(b->scales, s);
        if (!d) continue;
        for (int i = 0; i < 16; ++i)
            L[16 * s + i] = (int8_t)(imax(-4, imin(3, round_int(x[16 * s + i] / d))) + 4);
    }
    pack_3bit((uint8_t *)L, b->hmask, b->qs);
}

/* Q4_K and Q5_K weighted: as ref_q45 with the weights above, guarded fit_affine (steps
 * −0.9 + 0.05·k, 37 of them) and the 6-bit scales and mins fitted by fit_positive. */
static void weighted_q45(const float x[QC_QK_K], const float qw[QC_QK_K], int nmax, uint16_t *dfield,
                         uint16_t *dminfield, uint8_t *scbytes, uint8_t L[QC_QK_K]) {
    uint8_t Laux[32], Ls[QC_QK_K / 32], Lm[QC_QK_K / 32];
    float w[32], sw[QC_QK_K / 32], mins[QC_QK_K / 32], scales[QC_QK_K / 32];
    float sigma2 = 2 * block_sum_sq(x) / QC_QK_K;
    for (int s = 0; s < QC_QK_K / 32; ++s) {
        sw[s] = sub_weights(x + 32 * s, qw + 32 * s, sigma2, 32, w);
        scales[s] = fit_affine(32, nmax, x + 32 * s, w, L + 32 * s, &mins[s], Laux, -0.9f, 0.05f, 36, false, true);
    }
    float d_block = fit_positive(QC_QK_K / 32, 63, scales, Ls, sw);
    float m_block = fit_positive(QC_QK_K / 32, 63, mins, Lm, sw);
    for (int s = 0; s < QC_QK_K / 32; ++s) pack_scale_min6(scbytes, s, Ls[s] < 63 ? Ls[s] : 63, Lm[s] < 63 ? Lm[s] : 63);
    qc_gguf_put_f16(dfield, d_block);
    qc_gguf_put_f16(dminfield, m_block);
    q45_codes(x, nmax, dfield, dminfield, scbytes, L);
}

void qc_gguf_q4_k_weighted(const float x[QC_QK_K], const float qw[QC_QK_K], qc_block_q4_k *b) {
    uint8_t L[QC_QK_K];
    weighted_q45(x, qw, 15, &b->d, &b->dmin, b->scales, L);
    pack_4bit(L, b->qs);
}

void qc_gguf_q5_k_weighted(const float x[QC_QK_K], const float qw[QC_QK_K], qc_block_q5_k *b) {
    uint8_t L[QC_QK_K];
    weighted_q45(x, qw, 31, &b->d, &b->dmin, b->scales, L);
    pack_5bit(L, b->qh, b->qs);
}

/* Q6_K weighted: the importances themselves weight fit_symmetric (no σ² term). */
void qc_gguf_q6_k_weighted(const float x[QC_QK_K], const float qw[QC_QK_K], qc_block_q6_k *b) { q6_k_fit(x, qw, b); }

/* ---- rows ------------------------------------------------------------------------------------------------- */

#define KQUANT_ROWS(T)                                                                                  \
    void qc_gguf_##T##_row_to_float(const void *blocks, float *out, int64_t n) {                        \
        const qc_block_##T *b = blocks;                                                                 \
        for (int64_t i = 0; i < n / QC_QK_K; i++) qc_gguf_##T##_to_float(&b[i], out + i * QC_QK_K);     \
    }                                                                                                   \
    void qc_gguf_##T##_row_ref(const float *x, void *blocks, int64_t n) {                               \
        qc_block_##T *b = blocks;                                                                       \
        for (int64_t i = 0; i < n / QC_QK_K; i++) qc_gguf_##T##_ref(x + i * QC_QK_K, &b[i]);            \
    }                                                                                                   \
    void qc_gguf_##T##_row_weighted(const float *x, const float *qw, void *blocks, int64_t n) {         \
        qc_block_##T *b = blocks;                                                                       \
        for (int64_t i = 0; i < n / QC_QK_K; i++)                                                       \
            qc_gguf_##T##_weighted(x + i * QC_QK_K, qw + i * QC_QK_K, &b[i]);                           \
    }
KQUANT_ROWS(q2_k)
KQUANT_ROWS(q3_k)
KQUANT_ROWS(q4_k)
KQUANT_ROWS(q5_k)
KQUANT_ROWS(q6_k)

/* ---- a solver's K-quant weight: blocks to and from qc_qweight's layout (quant.h) -------------------------
 * The fields are read and written exactly as the decoders above read them, so the groups'
 * scales d·sc and mins −(dmin·m) are the decoders' own fp32 products. */

void qc_gguf_kquant_fit(int bits, const float *x, const float *imp, uint8_t *codes, float *scales, float *zeros,
                        float *mins, float *sb) {
    union {
        qc_block_q2_k q2;
        qc_block_q3_k q3;
        qc_block_q4_k q4;
        qc_block_q5_k q5;
        qc_block_q6_k q6;
    } b;
    int nsub = QC_QK_K / qc_kquant_sub(bits);
    float d, dmin = 0.0f;
    switch (bits) {
    case 2: imp ? qc_gguf_q2_k_weighted(x, imp, &b.q2) : qc_gguf_q2_k_ref(x, &b.q2); break;
    case 3: imp ? qc_gguf_q3_k_weighted(x, imp, &b.q3) : qc_gguf_q3_k_ref(x, &b.q3); break;
    case 4: imp ? qc_gguf_q4_k_weighted(x, imp, &b.q4) : qc_gguf_q4_k_ref(x, &b.q4); break;
    case 5: imp ? qc_gguf_q5_k_weighted(x, imp, &b.q5) : qc_gguf_q5_k_ref(x, &b.q5); break;
    default: imp ? qc_gguf_q6_k_weighted(x, imp, &b.q6) : qc_gguf_q6_k_ref(x, &b.q6); break;
    }
    switch (bits) {
    case 2: d = qc_gguf_get_f16(&b.q2.d), dmin = qc_gguf_get_f16(&b.q2.dmin); break;
    case 3: d = qc_gguf_get_f16(&b.q3.d); break;
    case 4: d = qc_gguf_get_f16(&b.q4.d), dmin = qc_gguf_get_f16(&b.q4.dmin); break;
    case 5: d = qc_gguf_get_f16(&b.q5.d), dmin = qc_gguf_get_f16(&b.q5.dmin); break;
    default: d = qc_gguf_get_f16(&b.q6.d); break;
    }
    sb[0] = d, sb[1] = dmin;
    for (int s = 0; s < nsub; ++s) {
        int sc, m = 0;
        switch (bits) {
        case 2: sc = b.q2.scales[s] & 0xF, m = b.q2.scales[s] >> 4; break;
        case 3: sc = unpack_scale6(b.q3.scales, s); break;
        case 4:
        case 5: {
            uint8_t ls, lm;
            unpack_scale_min6(bits == 4 ? b.q4.scales : b.q5.scales, s, &ls, &lm);
            sc = ls, m = lm;
            break;
        }
        default: sc = b.q6.scales[s]; break;
        }
        sb[2 + s] = (float)sc, sb[2 + nsub + s] = (float)m;
        scales[s] = d * sc; /* the decoders' dl */
        if (mins) {
            mins[s] = -(dmin * m); /* the decoders' ml, negated: dl·q − ml = dl·q + (−ml) exactly */
            zeros[s] = scales[s] != 0.0f ? -mins[s] / scales[s] : 0.0f;
        } else {
            zeros[s] = qc_kquant_zero(bits);
        }
    }
    block_codes(bits, &b, codes);
}

void qc_gguf_kquant_pack(int bits, const uint8_t *codes, const float *sb, void *block) {
    int nsub = QC_QK_K / qc_kquant_sub(bits);
    const float *sc = sb + 2, *m = sb + 2 + nsub;
    uint8_t L[QC_QK_K];
    memcpy(L, codes, QC_QK_K);
    switch (bits) {
    case 2: {
        qc_block_q2_k *b = block;
        qc_gguf_put_f16(&b->d, sb[0]);
        qc_gguf_put_f16(&b->dmin, sb[1]);
        for (int s = 0; s < nsub; ++s) b->scales[s] = (uint8_t)((int)sc[s] | (int)m[s] << 4);
        pack_2bit(L, b->qs);
        break;
    }
    case 3: {
        qc_block_q3_k *b = block;
        qc_gguf_put_f16(&b->d, sb[0]);
        memset(b->scales, 0, sizeof b->scales);
        for (int s = 0; s < nsub; ++s) pack_scale6(b->scales, s, (int)sc[s] + 32);
        pack_3bit(L, b->hmask, b->qs);
        break;
    }
    case 4:
    case 5: {
        uint16_t *d = bits == 4 ? &((qc_block_q4_k *)block)->d : &((qc_block_q5_k *)block)->d;
        uint16_t *dmin = bits == 4 ? &((qc_block_q4_k *)block)->dmin : &((qc_block_q5_k *)block)->dmin;
        uint8_t *scb = bits == 4 ? ((qc_block_q4_k *)block)->scales : ((qc_block_q5_k *)block)->scales;
        qc_gguf_put_f16(d, sb[0]);
        qc_gguf_put_f16(dmin, sb[1]);
        memset(scb, 0, QC_K_SCALE_BYTES);
        for (int s = 0; s < nsub; ++s) pack_scale_min6(scb, s, (uint8_t)sc[s], (uint8_t)m[s]);
        if (bits == 4) pack_4bit(L, ((qc_block_q4_k *)block)->qs);
        else pack_5bit(L, ((qc_block_q5_k *)block)->qh, ((qc_block_q5_k *)block)->qs);
        break;
    }
    default: {
        qc_block_q6_k *b = block;
        qc_gguf_put_f16(&b->d, sb[0]);
        for (int s = 0; s < nsub; ++s) b->scales[s] = (int8_t)sc[s];
        pack_6bit(L, b->ql, b->qh);
    }
    }
}
