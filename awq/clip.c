/* clip.c — AWQ's clipping search (llm-awq's auto_clip_layer) and its application. Per row
 * and quantization group of a scaled weight, the clip range ±max|w|·(1 − i/20), i = 0..9, is
 * tried: the clamped group is quantized and its partial outputs Σ_group x·w on a subsample of
 * the (scaled) inputs compared with the unclipped group's; the range with the least mean
 * squared difference wins (strict improvements, the first range first).
 *
 * A K-quant's clip group is its super-block (qc_awq_clip_group), quantized by the reference
 * K-quant fitter as the linear will be.
 *
 * Tokens: every (ntok / 512)-th row of x from the first (at least every row), as the
 * reference's input_feat[:, 0::n // 512]; in a distributed run, counted over every rank's
 * tokens (sh), each rank summing the errors of its own and the ranks adding them up. The
 * partial outputs of one group for all rows are one sgemm per candidate: (tokens × group) ·
 * (group × rows). The shrink factor is rounded to fp32 before it multiplies max|w| (torch
 * multiplies an fp32 tensor by a Python float).
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

/* This rank's tokens among the search's: every stride-th of all tokens, counted from the
 * first rank's first; their local indices into t (at most ntok), their number returned. */
static int sampled(int64_t ntok, int64_t first, int64_t stride, int64_t *t) {
    int n = 0;
    for (int64_t g = (first + stride - 1) / stride * stride; g < first + ntok; g += stride) t[n++] = g - first;
    return n;
}

int qc_awq_clip_group(const qc_quant_spec *spec, int cols) {
    return spec->kquant ? QC_KQ_SUPER : spec->groupsize > 0 ? spec->groupsize : cols;
}

qc_status qc_awq_search_clip(const float *w, int rows, int cols, const float *x, int64_t ntok,
                             const qc_awq_share *sh, const qc_quant_spec *spec, float *clip_max, qc_err *e) {
    const qc_dist *d = sh ? sh->dist : NULL;
    int64_t total = sh && sh->total ? sh->total : ntok, first = sh ? sh->first : 0;
    int gs = qc_awq_clip_group(spec, cols), ng = (cols + gs - 1) / gs;
    int64_t stride = total / QC_AWQ_CLIP_TOKENS > 1 ? total / QC_AWQ_CLIP_TOKENS : 1;
    int nall = (int)((total + stride - 1) / stride); /* every rank's sampled tokens */
    int64_t *tok = qc_malloc((size_t)ntok + 1, sizeof(int64_t), e, "clip search tokens");
    int nt = tok ? sampled(ntok, first, stride, tok) : 0, ntb = nt ? nt : 1;
    float *xs = tok ? qc_malloc((size_t)ntb, (size_t)gs * sizeof(float), e, "clip search inputs") : NULL;
    float *wg = xs ? qc_malloc((size_t)rows, (size_t)gs * sizeof(float), e, "clip search weights") : NULL;
    float *ref = wg ? qc_malloc((size_t)ntb, (size_t)rows * sizeof(float), e, "clip search outputs") : NULL;
    float *cur = ref ? qc_malloc((size_t)ntb, (size_t)rows * sizeof(float), e, "clip search outputs") : NULL;
    double *err = cur ? qc_malloc((size_t)rows, (QC_AWQ_CLIP_GRID + 1) * sizeof(double), e, "clip search errors") : NULL;
    float *gmax = err ? qc_malloc((size_t)rows, sizeof(float), e, "clip search ranges") : NULL;
    qc_status st = qc_dist_agree(d, gmax ? QC_OK : QC_ERR_NOMEM, e);
    double *best = err + (size_t)rows * QC_AWQ_CLIP_GRID;
    qc_compute ct = qc_get_compute(); /* the products stand for the forward's */
    for (int g = 0; g < ng && !st; g++) {
        int c0 = g * gs, n = cols - c0 < gs ? cols - c0 : gs;
        for (int t = 0; t < nt; t++) memcpy(xs + (size_t)t * n, x + (size_t)tok[t] * cols + c0, (size_t)n * sizeof(float));
        if (nt) st = qc_matmul(ct, false, true, nt, rows, n, 1.0f, xs, n, w + c0, cols, 0.0f, ref, rows, e);
        for (int r = 0; r < rows; r++) {
            const float *src = w + (size_t)r * cols + c0;
            float m = 0.0f;
            for (int j = 0; j < n; j++) m = fabsf(src[j]) > m ? fabsf(src[j]) : m;
            gmax[r] = m;
            clip_max[(size_t)r * ng + g] = m; /* the original range until a clipped one does better */
            best[r] = 1e9;
        }
        memset(err, 0, (size_t)rows * QC_AWQ_CLIP_GRID * sizeof(double));
        for (int i = 0; i < QC_AWQ_CLIP_GRID && !st; i++) { /* this rank's squared errors of each range */
            float f = (float)(1.0 - i / 20.0);
            for (int r = 0; r < rows; r++) {
                const float *src = w + (size_t)r * cols + c0;
                float hi = gmax[r] * f, lo = -hi;
                for (int j = 0; j < n; j++) wg[(size_t)r * n + j] = src[j] < lo ? lo : src[j] > hi ? hi : src[j];
            }
            qc_quant_fake(wg, rows, n, spec, wg); /* n <= clip group: each row is one group (super-block) */
            if (nt) st = qc_matmul(ct, false, true, nt, rows, n, 1.0f, xs, n, wg, n, 0.0f, cur, rows, e);
            double *ei = err + (size_t)i * rows;
            for (int t = 0; t < nt && !st; t++)
                for (int r = 0; r < rows; r++) {
                    double dv = (double)cur[(size_t)t * rows + r] - (double)ref[(size_t)t * rows + r];
                    ei[r] += dv * dv;
                }
        }
        st = qc_dist_agree(d, st, e);
        if (!st) st = qc_dist_sum_f64(d, err, (size_t)rows * QC_AWQ_CLIP_GRID, e); /* every rank's */
        for (int i = 0; i < QC_AWQ_CLIP_GRID && !st; i++) {
            float f = (float)(1.0 - i / 20.0);
            for (int r = 0; r < rows; r++) {
                double v = err[(size_t)i * rows + r] / nall;
                if (v < best[r]) {
                    best[r] = v;
                    clip_max[(size_t)r * ng + g] = gmax[r] * f;
                }
            }
        }
    }
    free(tok), free(xs), free(wg), free(ref), free(cur), free(err), free(gmax);
    return st;
}

void qc_awq_apply_clip(float *w, int rows, int cols, int group, const float *clip_max) {
    int gs = group > 0 ? group : cols, ng = (cols + gs - 1) / gs;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            float m = clip_max[(size_t)r * ng + c / gs], *v = &w[(size_t)r * cols + c];
            *v = *v < -m ? -m : *v > m ? m : *v;
        }
}
