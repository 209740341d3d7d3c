/* stats.c — the statistics a site's hook accumulates (QUANT-SPEC §2): Σ xᵀx in fp32 by
 * oneDNN products over its upper triangle (unless channels only), the token count, and per input channel
 * max|x|, max, min in fp32 and Σ|x|, Σx, Σx² in double (OpenMP over blocks of channels). */
#include "calib/calib.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static qc_status init(qc_stats *s, int n, bool hessian, qc_err *e) {
    memset(s, 0, sizeof *s);
    s->n = n;
    if (hessian && !(s->xtx = qc_calloc((size_t)n * n, sizeof(float), e, "Hessian statistics"))) return QC_ERR_NOMEM;
    s->absmax = qc_calloc((size_t)n, sizeof(float), e, "statistics");
    s->max = s->absmax ? qc_malloc((size_t)n, sizeof(float), e, "statistics") : NULL;
    s->min = s->max ? qc_malloc((size_t)n, sizeof(float), e, "statistics") : NULL;
    s->sum_abs = s->min ? qc_calloc((size_t)n, sizeof(double), e, "statistics") : NULL;
    s->sum = s->sum_abs ? qc_calloc((size_t)n, sizeof(double), e, "statistics") : NULL;
    s->sum_sq = s->sum ? qc_calloc((size_t)n, sizeof(double), e, "statistics") : NULL;
    if (!s->sum_sq) {
        qc_stats_free(s);
        return QC_ERR_NOMEM;
    }
    for (int j = 0; j < n; j++) s->max[j] = -INFINITY, s->min[j] = INFINITY;
    return QC_OK;
}

qc_status qc_stats_init(qc_stats *s, int n, qc_err *e) { return init(s, n, true, e); }
qc_status qc_stats_init_channels(qc_stats *s, int n, qc_err *e) { return init(s, n, false, e); }

/* Columns per strip of XᵀX's upper triangle: wide enough for oneDNN's kernels to run at full
 * rate, narrow enough to skip most of the lower half. */
#define XTX_STRIP 512

/* Columns per unit of work of the per-channel loop: each thread owns whole channels, so
 * every sum adds its tokens in order and the result does not depend on the thread count. */
#define CHANNEL_BLOCK 64

qc_status qc_stats_add(qc_stats *s, const float *x, int ntok, const char *what, qc_err *e) {
    int n = s->n;
    double t0 = qc_now();
    int64_t first_bad = INT64_MAX; /* token * n + channel of the first non-finite value */
#pragma omp parallel for schedule(static) reduction(min : first_bad) if ((int64_t)ntok * n > (1 << 16))
    for (int j0 = 0; j0 < n; j0 += CHANNEL_BLOCK) {
        int j1 = j0 + CHANNEL_BLOCK < n ? j0 + CHANNEL_BLOCK : n;
        for (int t = 0; t < ntok; t++) {
            const float *r = x + (size_t)t * n;
            for (int j = j0; j < j1; j++) {
                float v = r[j];
                if (!isfinite(v)) {
                    int64_t at = (int64_t)t * n + j;
                    first_bad = at < first_bad ? at : first_bad;
                    continue;
                }
                float a = fabsf(v);
                if (a > s->absmax[j]) s->absmax[j] = a;
                if (v > s->max[j]) s->max[j] = v;
                if (v < s->min[j]) s->min[j] = v;
                s->sum_abs[j] += a;
                s->sum[j] += v;
                s->sum_sq[j] += (double)v * v;
            }
        }
    }
    if (first_bad != INT64_MAX)
        return qc_fail(e, QC_ERR_NUMERIC, "%s: non-finite activation (%g) at token %lld, channel %d", what,
                       (double)x[first_bad], (long long)(s->count + first_bad / n), (int)(first_bad % n));
    /* XᵀX in fp32 whatever the run's compute type (the Hessian is a statistic). oneDNN has no
     * syrk, so the upper triangle is covered by column strips: strip [c0, c1) needs rows
     * [0, c1), one product each. That is n²/2 + n·XTX_STRIP/2 of the n² products of the whole
     * square (0.52 of it at 11008 columns); the few below the diagonal inside a strip are
     * overwritten by qc_stats_finish from the upper half, so both halves agree. */
    for (int c0 = 0; s->xtx && c0 < n; c0 += XTX_STRIP) {
        int c1 = c0 + XTX_STRIP < n ? c0 + XTX_STRIP : n;
        qc_status st = qc_matmul(QC_COMPUTE_F32, true, false, c1, c1 - c0, ntok, 1.0f, x, n, x + c0, n, 1.0f,
                                 s->xtx + c0, n, e);
        if (st) return qc_fail_prefix(e, st, "%s: Hessian", what);
    }
    s->count += ntok;
    s->seconds += qc_now() - t0;
    return QC_OK;
}

void qc_stats_finish(qc_stats *s) {
    if (s->xtx) qc_mirror_upper(s->xtx, s->n);
}

void qc_stats_free(qc_stats *s) {
    if (!s) return;
    free(s->xtx);
    free(s->absmax);
    free(s->max);
    free(s->min);
    free(s->sum_abs);
    free(s->sum);
    free(s->sum_sq);
    memset(s, 0, sizeof *s);
}
