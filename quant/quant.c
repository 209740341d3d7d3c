/* quant.c — the shared quantizer (QUANT-SPEC §1): group parameters the way the GPTQ
 * reference's Quantizer.find_params finds them (with its optional MSE clip search),
 * round-to-nearest, the result every solver fills, its dequantization, and the relative
 * output error used in the per-layer logs.
 *
 * Exactness: every expression that decides a code is the reference's fp32 expression in
 * the same order (a real division x / scale, round half to even — qc_round_half_even, which
 * equals nearbyintf in the default rounding mode — the shrink factor p rounded to fp32
 * before it multiplies the range, as torch does with a Python scalar), so that codes agree
 * bit for bit with the reference's. Only the MSE search's error sum differs in summation
 * order (it is accumulated in double here, torch sums fp32), which can matter only when two
 * candidates are within rounding of each other; the search costs 80 powf per weight.
 *
 * fp16 scales (qcalib's addition): each candidate scale is rounded to fp16 as soon as it
 * is computed, the zero point is computed from the rounded scale, and the MSE search
 * compares candidates with their rounded scales, so the parameters chosen are the best the
 * fp16 file can hold and exactly what the solver compensates for. GGUF's Q4_1 stores d and
 * m in fp16 instead of a zero point (store_min): the group's own range [min, max], as
 * llama.cpp's Q4_1 quantizer takes it (measured on stories260K: KL divergence 0.057 vs 0.064
 * with GPTQ's 0-containing range), then codes and values in that form. Signed scales
 * (signed_scale) are llama.cpp's Q4_0 choice: the extreme value sits on the −8 level
 * (0.070 vs 0.087). */
#include "quant/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Below this many weights a loop runs on one thread: waking the others costs more. */
#define PAR_MIN_WORK (1 << 15)

qc_status qc_quant_spec_check(const qc_quant_spec *s, qc_err *e) {
    if (!s) return qc_fail(e, QC_ERR_ARG, "no quantization spec");
    if (s->signed_scale && !s->sym)
        return qc_fail(e, QC_ERR_ARG, "a signed scale is for symmetric groups");
    if (s->store_min && (s->sym || !s->f16_scales))
        return qc_fail(e, QC_ERR_ARG, "parameters stored as fp16 d and m need asymmetric groups and fp16 scales");
    if (s->awq_range && (s->sym || s->mse || s->store_min || s->signed_scale))
        return qc_fail(e, QC_ERR_ARG, "AWQ-style parameters are asymmetric, without --mse or stored minima");
    if (s->bits < 2 || s->bits > 8)
        return qc_fail(e, QC_ERR_ARG, "--wbits %d: supported widths are 2 to 8 bits", s->bits);
    if (s->kquant) {
        bool mins = qc_kquant_has_mins(s->bits);
        int sub = qc_kquant_sub(s->bits);
        if (s->bits > 6 || s->groupsize != sub || s->sym == mins || s->store_min != mins || s->mse || s->awq_range ||
            s->signed_scale || s->zero_from_one)
            return qc_fail(e, QC_ERR_ARG, "K-quant Q%d_K: not a K-quant type, or settings it does not have (sub-blocks "
                           "of %d, %s)", s->bits, sub, mins ? "with mins" : "symmetric");
    }
    if (s->groupsize < -1)
        return qc_fail(e, QC_ERR_ARG, "--groupsize %d: expected a positive number of columns, or -1 (or 0) for one group per row",
                       s->groupsize);
    return QC_OK;
}

bool qc_quant_spec_same(const qc_quant_spec *a, const qc_quant_spec *b) {
    return a->bits == b->bits && a->groupsize == b->groupsize && a->sym == b->sym && a->mse == b->mse &&
           a->f16_scales == b->f16_scales && a->store_min == b->store_min && a->signed_scale == b->signed_scale &&
           a->awq_range == b->awq_range && a->zero_from_one == b->zero_from_one && a->kquant == b->kquant;
}

int qc_quant_maxq(const qc_quant_spec *s) { return (1 << s->bits) - 1; }

int qc_quant_ngroups(const qc_quant_spec *s, int cols) {
    if (s->groupsize <= 0 || cols <= 0) return 1;
    return (int)(((int64_t)cols + s->groupsize - 1) / s->groupsize);
}

/* The scale as a file of fp16 scales stores it. A scale that fp16 cannot hold is clamped to
 * its range (the smallest subnormal, the largest finite) rather than becoming 0 or Inf. */
static float f16_round(float scale) {
    float r = qc_f16_to_f32(qc_f32_to_f16(scale));
    if (r == 0.0f) return 0x1p-24f;
    if (isinf(r)) return 65504.0f;
    return r;
}

/* f16_round for a scale of either sign. */
static float f16_round_signed(float scale) { return scale < 0.0f ? -f16_round(-scale) : f16_round(scale); }


/* scale, zero (and with store_min, m) for the range [xmin, xmax] (not both 0). */
static void range_params(const qc_quant_spec *s, float xmin, float xmax, float maxq, float *scale,
                         float *zero, float *min) {
    float sc = (xmax - xmin) / maxq;
    if (s->f16_scales) sc = f16_round(sc);
    *scale = sc;
    *zero = s->sym ? (maxq + 1.0f) / 2.0f : qc_round_half_even(-xmin / sc);
    if (s->zero_from_one && *zero < 1.0f) *zero = 1.0f;
    if (s->store_min) { /* m is the range's own minimum: no integer zero point to keep 0 on the grid */
        float m = qc_f16_to_f32(qc_f32_to_f16(xmin));
        *min = isinf(m) ? copysignf(65504.0f, m) : m;
        *zero = -*min / sc;
    }
}

/* signed_scale: the extreme m on level 0 (value −half·scale = m); the MSE search shrinks m. */
static void signed_params(const qc_quant_spec *s, const float *x, int n, int stride, float m, float *scale,
                          float *zero) {
    int maxq_i = qc_quant_maxq(s);
    float half = (float)(maxq_i + 1) / 2.0f;
    *zero = half;
    *scale = s->f16_scales ? f16_round_signed(-m / half) : -m / half;
    if (!s->mse) return;
    double best = INFINITY;
    for (int i = 0; i < 80; i++) {
        float p = (float)(1.0 - i / 100.0), sc = -(p * m) / half;
        if (s->f16_scales) sc = f16_round_signed(sc);
        double err = 0.0;
        for (int j = 0; j < n; j++) {
            float v = x[(size_t)j * stride];
            err += (double)powf(fabsf(qc_qvalue(qc_quant_code(v, sc, half, maxq_i), sc, half) - v), 2.4f);
        }
        if (err < best) best = err, *scale = sc;
    }
}

/* AWQ-style parameters: the group's own range, the reference's clamp of the range at 1e-5. */
static void awq_params(const qc_quant_spec *s, const float *x, int n, int stride, float maxq, float *scale,
                       float *zero) {
    float xmin = x[0], xmax = x[0];
    for (int i = 1; i < n; i++) {
        float v = x[(size_t)i * stride];
        xmin = v < xmin ? v : xmin;
        xmax = v > xmax ? v : xmax;
    }
    float range = xmax - xmin, sc = (range > 1e-5f ? range : 1e-5f) / maxq;
    if (s->f16_scales) sc = f16_round(sc);
    float z = -qc_round_half_even(xmin / sc);
    z = z < 0.0f ? 0.0f : z > maxq ? maxq : z;
    if (s->zero_from_one && z < 1.0f) z = 1.0f;
    *scale = sc;
    *zero = z;
}

void qc_quant_find_params(const qc_quant_spec *s, const float *x, int n, int stride, float *scale,
                          float *zero, float *min) {
    int maxq_i = qc_quant_maxq(s);
    float maxq = (float)maxq_i;
    if (s->awq_range && n > 0) {
        awq_params(s, x, n, stride, maxq, scale, zero);
        return;
    }
    float xmin = 0.0f, xmax = 0.0f; /* the range contains 0, except for store_min (below) */
    for (int i = 0; i < n; i++) {
        float v = x[(size_t)i * stride];
        xmin = v < xmin ? v : xmin;
        xmax = v > xmax ? v : xmax;
    }
    if (s->store_min && n > 0) { /* Q4_1: the group's true range, as llama.cpp's Q4_1 */
        xmin = xmax = x[0];
        for (int i = 1; i < n; i++) {
            float v = x[(size_t)i * stride];
            xmin = v < xmin ? v : xmin;
            xmax = v > xmax ? v : xmax;
        }
        if (xmin == xmax) xmax = xmin + 1.0f; /* a constant group: any scale reproduces it via m */
    }
    if (s->signed_scale && (xmin != 0.0f || xmax != 0.0f)) {
        signed_params(s, x, n, stride, -xmin > xmax ? xmin : xmax, scale, zero);
        return;
    }
    if (s->sym) {
        float a = fabsf(xmin);
        xmax = a > xmax ? a : xmax;
        if (xmin < 0.0f) xmin = -xmax;
    }
    if (xmin == 0.0f && xmax == 0.0f) xmin = -1.0f, xmax = 1.0f;
    range_params(s, xmin, xmax, maxq, scale, zero, min);
    if (!s->mse) return;

    /* The reference's grid search: norm 2.4, grid 100, maxshrink 0.8; strict improvements
     * only, so the first of equal candidates stays. |q - x|^2.4 is computed in fp32 with the
     * exponent rounded to fp32 (2.4f), as torch's vectorized pow does. */
    double best = INFINITY;
    for (int i = 0; i < 80; i++) {
        float p = (float)(1.0 - i / 100.0);
        float sc, zp, mn = 0.0f;
        range_params(s, p * xmin, p * xmax, maxq, &sc, &zp, &mn);
        double err = 0.0;
        for (int j = 0; j < n; j++) {
            float v = x[(size_t)j * stride];
            float d = (s->store_min ? sc * qc_quant_code_min(v, sc, mn, maxq_i) + mn
                                    : qc_qvalue(qc_quant_code(v, sc, zp, maxq_i), sc, zp)) - v;
            err += (double)powf(fabsf(d), 2.4f);
        }
        if (err < best) {
            best = err, *scale = sc, *zero = zp;
            if (s->store_min) *min = mn;
        }
    }
}

qc_status qc_quant_alloc(qc_qweight *r, int rows, int cols, const qc_quant_spec *s, qc_err *e) {
    memset(r, 0, sizeof *r);
    qc_status st = qc_quant_spec_check(s, e);
    if (!st) st = qc_qweight_init(r, rows, cols, s->bits, s->groupsize, s->sym, e);
    if (!st && s->kquant && cols % QC_KQ_SUPER != 0) {
        qc_qweight_free(r);
        return qc_fail(e, QC_ERR_UNSUPPORTED, "Q%d_K: rows of %d values are not whole super-blocks of %d", s->bits, cols,
                       QC_KQ_SUPER);
    }
    if (!st && s->store_min && !(r->mins = qc_calloc((size_t)rows * r->ngroups, sizeof(float), e, "group minima")))
        st = QC_ERR_NOMEM;
    if (!st && s->kquant &&
        !(r->super = qc_calloc((size_t)rows * (cols / QC_KQ_SUPER) * QC_KQ_SB_FLOATS(s->groupsize), sizeof(float), e,
                               "K-quant super-blocks")))
        st = QC_ERR_NOMEM;
    if (st) qc_qweight_free(r);
    return st;
}

/* Row i of r (K-quant) from x, one super-block at a time by the spec's fitter. */
static void kquant_row(const qc_quant_spec *s, const float *x, int cols, qc_qweight *r, int i) {
    int per = QC_KQ_SUPER / s->groupsize, nsb = cols / QC_KQ_SUPER, sbf = QC_KQ_SB_FLOATS(s->groupsize);
    for (int b = 0; b < nsb; b++) {
        size_t g = (size_t)i * r->ngroups + (size_t)b * per;
        s->kquant(s->bits, x + (size_t)b * QC_KQ_SUPER, NULL, r->codes + (size_t)i * cols + (size_t)b * QC_KQ_SUPER,
                  r->scales + g, r->zeros + g, r->mins ? r->mins + g : NULL, r->super + ((size_t)i * nsb + b) * sbf);
    }
}

qc_status qc_quant_rtn(const float *w, int rows, int cols, const qc_quant_spec *s, qc_qweight *r,
                       qc_err *e) {
    qc_status st = qc_quant_alloc(r, rows, cols, s, e);
    if (st) return st;
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        if (!isfinite(w[i])) {
            qc_qweight_free(r);
            return qc_fail(e, QC_ERR_NUMERIC, "round-to-nearest: the weight has a non-finite value (%g) at [%zu, %zu]",
                           (double)w[i], i / (size_t)cols, i % (size_t)cols);
        }
    int gs = s->groupsize > 0 ? s->groupsize : cols, ng = r->ngroups, maxq = qc_quant_maxq(s);
#pragma omp parallel for schedule(static) if ((int64_t)rows * cols > PAR_MIN_WORK)
    for (int i = 0; i < rows; i++) {
        const float *x = w + (size_t)i * cols;
        uint8_t *q = r->codes + (size_t)i * cols;
        if (s->kquant) {
            kquant_row(s, x, cols, r, i);
            continue;
        }
        for (int g = 0; g < ng; g++) {
            int c0 = g * gs, c1 = c0 + gs < cols ? c0 + gs : cols;
            float sc, zp, mn = 0.0f;
            qc_quant_find_params(s, x + c0, c1 - c0, 1, &sc, &zp, &mn);
            r->scales[(size_t)i * ng + g] = sc;
            r->zeros[(size_t)i * ng + g] = zp;
            if (s->store_min) {
                r->mins[(size_t)i * ng + g] = mn;
                for (int c = c0; c < c1; c++) q[c] = (uint8_t)qc_quant_code_min(x[c], sc, mn, maxq);
            } else {
                for (int c = c0; c < c1; c++) q[c] = (uint8_t)qc_quant_code(x[c], sc, zp, maxq);
            }
        }
    }
    return QC_OK;
}

/* One K-quant super-block x (QC_KQ_SUPER values) fitted by the reference quantizer and
 * dequantized into o, the arithmetic of qc_quant_rtn's kquant_row and qc_qweight_dequantize. */
static void kquant_fake(const qc_quant_spec *s, const float *x, float *o) {
    uint8_t codes[QC_KQ_SUPER];
    float scales[QC_KQ_SUPER / 16], zeros[QC_KQ_SUPER / 16], mins[QC_KQ_SUPER / 16], sb[QC_KQ_SB_FLOATS(16)];
    bool has_mins = qc_kquant_has_mins(s->bits);
    s->kquant(s->bits, x, NULL, codes, scales, zeros, has_mins ? mins : NULL, sb);
    for (int c = 0; c < QC_KQ_SUPER; c++) {
        int g = c / s->groupsize;
        o[c] = has_mins ? scales[g] * (float)codes[c] + mins[g] : qc_qvalue((float)codes[c], scales[g], zeros[g]);
    }
}

void qc_quant_fake(const float *w, int rows, int cols, const qc_quant_spec *s, float *out) {
    QC_ASSERT(!s->kquant || cols % QC_KQ_SUPER == 0);
    if (s->kquant) {
#pragma omp parallel for schedule(static) if ((int64_t)rows * cols > PAR_MIN_WORK)
        for (int i = 0; i < rows; i++)
            for (int c0 = 0; c0 < cols; c0 += QC_KQ_SUPER)
                kquant_fake(s, w + (size_t)i * cols + c0, out + (size_t)i * cols + c0);
        return;
    }
    int gs = s->groupsize > 0 ? s->groupsize : cols, maxq = qc_quant_maxq(s);
#pragma omp parallel for schedule(static) if ((int64_t)rows * cols > PAR_MIN_WORK)
    for (int i = 0; i < rows; i++) {
        const float *x = w + (size_t)i * cols;
        float *o = out + (size_t)i * cols;
        for (int c0 = 0; c0 < cols; c0 += gs) {
            int n = cols - c0 < gs ? cols - c0 : gs;
            float sc, zp, mn = 0.0f;
            qc_quant_find_params(s, x + c0, n, 1, &sc, &zp, &mn);
            for (int c = c0; c < c0 + n; c++)
                o[c] = s->store_min ? sc * qc_quant_code_min(x[c], sc, mn, maxq) + mn
                                    : qc_qvalue(qc_quant_code(x[c], sc, zp, maxq), sc, zp);
        }
    }
}

void qc_quant_act_per_token(float *x, int ntok, int cols, int bits) {
    float qmax = (float)((1 << (bits - 1)) - 1);
#pragma omp parallel for schedule(static) if ((int64_t)ntok * cols > PAR_MIN_WORK)
    for (int t = 0; t < ntok; t++) {
        float *r = x + (size_t)t * cols, amax = 0.0f;
        for (int j = 0; j < cols; j++) amax = fabsf(r[j]) > amax ? fabsf(r[j]) : amax;
        float d = (amax > 1e-5f ? amax : 1e-5f) / qmax;
        for (int j = 0; j < cols; j++) r[j] = qc_round_half_even(r[j] / d) * d;
    }
}

/* The output error's products by H. Rows go in chunks of ERR_CHUNK, [W; W−Q] of a chunk
 * stacked as one operand A (2m, cols); H's columns in strips of ERR_STRIP. Only H's upper
 * triangle is read, and only about half of the full product A·H is formed: strip [c0, c1)
 * takes its strictly-upper rows [0, c0) once, doubled (they stand for their mirror images
 * too), and its diagonal block mirrored into a full copy (all of them made once, cols ×
 * ERR_STRIP floats, before the row chunks). Then
 *   Σ_{j ∈ strip} A[:, j] ∘ (2·A[:, 0:c0]·H[0:c0, j] + A[:, c0:c1]·Hblk[:, j])
 * summed over the strips is Σ_ij A_i H_ij A_j, each row's quadratic form, with every entry
 * of the product still a sum of at most cols fp32 terms. (A full oneDNN sgemm on a
 * mirrored H would need an n² copy; OpenBLAS's ssymm does the whole square, and on one
 * core at half oneDNN's rate.) */
#define ERR_CHUNK 256
#define ERR_STRIP 512

double qc_quant_output_error(const float *w, const float *q, int rows, int cols, const float *h) {
    double num, den;
    if (qc_quant_output_error_parts(w, q, rows, cols, h, &num, &den, NULL)) return NAN;
    return qc_quant_error_ratio(num, den);
}

qc_status qc_quant_output_error_parts(const float *w, const float *q, int rows, int cols, const float *h, double *err,
                                      double *energy, qc_err *e) {
    const int chunk = rows < ERR_CHUNK ? rows : ERR_CHUNK, strip = cols < ERR_STRIP ? cols : ERR_STRIP;
    *err = *energy = NAN;
    float *a = qc_malloc((size_t)2 * chunk * cols, sizeof(float), e, "output error");
    float *b = a ? qc_malloc((size_t)2 * chunk * strip, sizeof(float), e, "output error") : NULL;
    float *hb = b ? qc_malloc((size_t)cols * strip, sizeof(float), e, "output error") : NULL;
    if (!hb) {
        free(a), free(b);
        return QC_ERR_NOMEM;
    }
    /* strip [c0, c1)'s diagonal block, mirrored, at hb + c0·strip, (sw, sw) */
    for (int c0 = 0; c0 < cols; c0 += strip) {
        const int sw = c0 + strip < cols ? strip : cols - c0;
        float *blk = hb + (size_t)c0 * strip;
        for (int i = 0; i < sw; i++)
            for (int j = i; j < sw; j++) blk[(size_t)i * sw + j] = blk[(size_t)j * sw + i] = h[(size_t)(c0 + i) * cols + c0 + j];
    }
    double num = 0.0, den = 0.0;
    qc_status st = QC_OK;
    for (int r0 = 0; r0 < rows && !st; r0 += chunk) {
        const int m = rows - r0 < chunk ? rows - r0 : chunk;
        const size_t n = (size_t)m * cols;
        memcpy(a, w + (size_t)r0 * cols, n * sizeof(float));
        for (size_t i = 0; i < n; i++) a[n + i] = w[(size_t)r0 * cols + i] - q[(size_t)r0 * cols + i];
        for (int c0 = 0; c0 < cols && !st; c0 += strip) {
            const int c1 = c0 + strip < cols ? c0 + strip : cols, sw = c1 - c0;
            st = qc_matmul(QC_COMPUTE_F32, false, false, 2 * m, sw, sw, 1.0f, a + c0, cols, hb + (size_t)c0 * strip, sw,
                           0.0f, b, sw, e);
            if (!st && c0 > 0)
                st = qc_matmul(QC_COMPUTE_F32, false, false, 2 * m, sw, c0, 2.0f, a, cols, h + c0, cols, 1.0f, b, sw, e);
            if (st) break;
            /* tr(W H Wᵀ) from the first m rows, tr(D H Dᵀ) from the last m */
            for (int r = 0; r < 2 * m; r++) {
                const float *ar = a + (size_t)r * cols + c0, *br = b + (size_t)r * sw;
                double acc = 0.0;
                for (int j = 0; j < sw; j++) acc += (double)ar[j] * br[j];
                *(r < m ? &den : &num) += acc;
            }
        }
    }
    free(a), free(b), free(hb);
    if (st) return qc_fail_prefix(e, st, "output error of a (%d, %d) weight", rows, cols);
    *err = num, *energy = den;
    return QC_OK;
}
