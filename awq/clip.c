/* clip.c — AWQ's clipping search (llm-awq's auto_clip_layer) and its application. Per row
 * and quantization group of a scaled weight, the clip range ±max|w|·(1 − i/20), i = 0..9, is
 * tried: the clamped group is quantized and its partial outputs Σ_group x·w on a subsample of
 * the (scaled) inputs compared with the unclipped group's; the range with the least mean
 * squared difference wins (strict improvements, the first range first).
 *
 * Tokens: every (ntok / 512)-th row of x from the first (at least every row), as the
 * reference's input_feat[:, 0::n // 512]. The partial outputs of one group for all rows are
 * one sgemm per candidate: (tokens × group) · (group × rows). The shrink factor is rounded to
 * fp32 before it multiplies max|w| (torch multiplies an fp32 tensor by a Python float).
 *
 * Given the reference's fp32 inputs this chooses its ranges exactly. With scales an ulp away
 * (AWQ's mean|x| and powf are not bit-reproducible) a row may choose another range: a range
 * clamped at both ends has min / scale = −7.5 in exact arithmetic, so its zero point, 7 or 8,
 * is decided by the range's last bit, and with it whether the weights clamped to ±max (±7.5
 * steps) all round half a step down (levels −8..7) or all up (−7..8): that candidate's loss
 * moved by 12–15% in the shared 8192-token case. Either choice is the least loss of its own
 * candidates; tests/vectors/awq.c checks that. */
#include "awq/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

qc_status qc_awq_search_clip(const float *w, int rows, int cols, const float *x, int64_t ntok,
                             const qc_quant_spec *spec, float *clip_max, qc_err *e) {
    int gs = spec->groupsize > 0 ? spec->groupsize : cols, ng = qc_quant_ngroups(spec, cols);
    int64_t stride = ntok / QC_AWQ_CLIP_TOKENS > 1 ? ntok / QC_AWQ_CLIP_TOKENS : 1;
    int nt = (int)((ntok + stride - 1) / stride);
    float *xs = qc_malloc((size_t)nt, (size_t)gs * sizeof(float), e, "clip search inputs");
    float *wg = xs ? qc_malloc((size_t)rows, (size_t)gs * sizeof(float), e, "clip search weights") : NULL;
    float *ref = wg ? qc_malloc((size_t)nt, (size_t)rows * sizeof(float), e, "clip search outputs") : NULL;
    float *cur = ref ? qc_malloc((size_t)nt, (size_t)rows * sizeof(float), e, "clip search outputs") : NULL;
    double *best = cur ? qc_malloc((size_t)rows, 2 * sizeof(double), e, "clip search errors") : NULL;
    float *gmax = best ? qc_malloc((size_t)rows, sizeof(float), e, "clip search ranges") : NULL;
    if (!gmax) {
        free(xs), free(wg), free(ref), free(cur), free(best);
        return QC_ERR_NOMEM;
    }
    double *err = best + rows;
    qc_compute ct = qc_get_compute(); /* the products stand for the forward's */
    qc_status st = QC_OK;
    for (int g = 0; g < ng && !st; g++) {
        int c0 = g * gs, n = cols - c0 < gs ? cols - c0 : gs;
        for (int t = 0; t < nt; t++) memcpy(xs + (size_t)t * n, x + (size_t)(t * stride) * cols + c0, (size_t)n * sizeof(float));
        st = qc_matmul(ct, false, true, nt, rows, n, 1.0f, xs, n, w + c0, cols, 0.0f, ref, rows, e);
        for (int r = 0; r < rows; r++) {
            const float *src = w + (size_t)r * cols + c0;
            float m = 0.0f;
            for (int j = 0; j < n; j++) m = fabsf(src[j]) > m ? fabsf(src[j]) : m;
            gmax[r] = m;
            clip_max[(size_t)r * ng + g] = m; /* the original range until a clipped one does better */
            best[r] = 1e9;
        }
        for (int i = 0; i < QC_AWQ_CLIP_GRID; i++) {
            float f = (float)(1.0 - i / 20.0);
            for (int r = 0; r < rows; r++) {
                const float *src = w + (size_t)r * cols + c0;
                float hi = gmax[r] * f, lo = -hi;
                for (int j = 0; j < n; j++) wg[(size_t)r * n + j] = src[j] < lo ? lo : src[j] > hi ? hi : src[j];
            }
            qc_quant_fake(wg, rows, n, spec, wg); /* n <= groupsize: each row is one group */
            if (!st) st = qc_matmul(ct, false, true, nt, rows, n, 1.0f, xs, n, wg, n, 0.0f, cur, rows, e);
            if (st) break;
            memset(err, 0, (size_t)rows * sizeof(double));
            for (int t = 0; t < nt; t++)
                for (int r = 0; r < rows; r++) {
                    double d = (double)cur[(size_t)t * rows + r] - (double)ref[(size_t)t * rows + r];
                    err[r] += d * d;
                }
            for (int r = 0; r < rows; r++) {
                double v = err[r] / nt;
                if (v < best[r]) {
                    best[r] = v;
                    clip_max[(size_t)r * ng + g] = gmax[r] * f;
                }
            }
        }
    }
    free(xs), free(wg), free(ref), free(cur), free(best), free(gmax);
    return st;
}

void qc_awq_apply_clip(float *w, int rows, int cols, int groupsize, const float *clip_max) {
    int gs = groupsize > 0 ? groupsize : cols, ng = (cols + gs - 1) / gs;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            float m = clip_max[(size_t)r * ng + c / gs], *v = &w[(size_t)r * cols + c];
            *v = *v < -m ? -m : *v > m ? m : *v;
        }
}
