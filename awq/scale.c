/* scale.c — AWQ's scale search for one group (llm-awq's _search_module_scale; AutoAWQ's
 * duo scaling): for each of 20 exponents, the group's linears are replaced by Q(W·s)/s and
 * the inspected module (the whole attention or MLP for the groups fed by an RMSNorm, the
 * linear itself otherwise) is run on the site's calibration inputs; the first exponent with
 * the least mean squared output difference against the unchanged module wins.
 *
 * Floating point as the reference: the exponent r/20 is rounded to fp32 before powf (torch
 * raises an fp32 tensor to a Python float), x^0 is exactly 1, the normalisation
 * sqrt(max·min) is fp32. The loss is summed in double (torch sums fp32), which can matter
 * only for two grid points within rounding of each other. The inspected forward runs in
 * chunks of o->chunk_windows windows, so memory is the site's inputs, one fp32 output of the
 * whole calibration set and one chunk. In a distributed run each rank sums its tokens'
 * errors and the ranks add them up (o->share) before the least is chosen. */
#include "awq/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int qc_awq_site_linears(qc_site site, qc_linear lin[3]) {
    int n = 0;
    for (int l = 0; l < QC_LIN_COUNT; l++)
        if (qc_linear_site(l) == site) lin[n++] = (qc_linear)l;
    return n;
}

qc_status qc_awq_mean_abs(const float *x, int64_t ntok, int cols, const qc_awq_share *sh, float *x_mean, qc_err *e) {
    double *sum = qc_calloc((size_t)cols, sizeof(double), e, "AWQ activation means");
    const qc_dist *d = sh ? sh->dist : NULL;
    qc_status st = qc_dist_agree(d, sum ? QC_OK : QC_ERR_NOMEM, e);
    for (int64_t t = 0; t < ntok && !st; t++)
        for (int j = 0; j < cols; j++) sum[j] += fabsf(x[(size_t)t * cols + j]);
    if (!st) st = qc_dist_sum_f64(d, sum, (size_t)cols, e);
    int64_t total = sh && sh->total ? sh->total : ntok;
    for (int j = 0; j < cols && !st; j++) x_mean[j] = total ? (float)(sum[j] / (double)total) : 0.0f;
    free(sum);
    return st;
}

void qc_awq_candidate(const float *x_mean, const float *wmean, int n, int r, bool duo, float *s) {
    double ratio = r / (double)QC_AWQ_GRID;
    float p = (float)ratio, q = (float)(1.0 - ratio);
    float max = 0.0f, min = INFINITY;
    for (int j = 0; j < n; j++) {
        float v = r == 0 ? 1.0f : powf(x_mean[j], p);
        if (duo) v = v / (powf(wmean[j], q) + 1e-4f);
        s[j] = v < 1e-4f ? 1e-4f : v;
        if (x_mean[j] > 0.0f) {
            max = s[j] > max ? s[j] : max;
            min = s[j] < min ? s[j] : min;
        }
    }
    if (!(min <= max)) { /* no active channel: normalise over all */
        max = 0.0f, min = INFINITY;
        for (int j = 0; j < n; j++) max = s[j] > max ? s[j] : max, min = s[j] < min ? s[j] : min;
    }
    float norm = sqrtf(max * min);
    for (int j = 0; j < n; j++) s[j] /= norm;
}

/* wmean (cols) for duo scaling: over the rows of all the group's linears, the mean of
 * |w| / (max|w| of the quantization group + 1e−6). */
static qc_status weight_mean(const qc_block *b, const qc_config *c, const qc_linear *lin, int nlin, int cols,
                             const qc_quant_spec *const spec[QC_LIN_COUNT], float *wmean, qc_err *e) {
    double *sum = qc_calloc((size_t)cols, sizeof(double), e, "AWQ weight means");
    if (!sum) return QC_ERR_NOMEM;
    int64_t nrows = 0;
    for (int k = 0; k < nlin; k++) {
        const qc_quant_spec *sk = spec[lin[k]];
        int gs = sk && sk->groupsize > 0 ? sk->groupsize : cols, rows, cc;
        qc_weight_shape(c, qc_linear_weight(lin[k]), &rows, &cc);
        for (int i = 0; i < rows; i++) {
            const float *w = b->w[lin[k]] + (size_t)i * cols;
            for (int c0 = 0; c0 < cols; c0 += gs) {
                int c1 = c0 + gs < cols ? c0 + gs : cols;
                float m = 0.0f;
                for (int j = c0; j < c1; j++) m = fabsf(w[j]) > m ? fabsf(w[j]) : m;
                for (int j = c0; j < c1; j++) sum[j] += fabsf(w[j]) / (m + 1e-6f);
            }
        }
        nrows += rows;
    }
    for (int j = 0; j < cols; j++) wmean[j] = (float)(sum[j] / (double)nrows);
    free(sum);
    return QC_OK;
}

/* The inspected module of the site on windows [w0, w0+nw) of x; out (nw*seqlen, dim). */
static qc_status inspect(const qc_config *c, const qc_block *b, int layer, qc_site site, const float *x, int w0,
                         int nw, int seqlen, qc_workspace *ws, float *out, qc_err *e) {
    int width = qc_site_width(c, site);
    const float *xc = x + (size_t)w0 * seqlen * width;
    if (site == QC_SITE_QKV || site == QC_SITE_GATE_UP)
        return qc_subblock_forward(c, b, layer, site == QC_SITE_QKV ? QC_SUB_ATTENTION : QC_SUB_MLP, xc, nw, seqlen,
                                   out, ws, e);
    return qc_matmul_xwt(xc, nw * seqlen, b->w[site == QC_SITE_O ? QC_LIN_O : QC_LIN_DOWN], c->dim, width, out, ws, e);
}

qc_status qc_awq_search_scale(const qc_config *c, const qc_block *b, int layer, qc_site site, const float *x,
                              int nwin, int seqlen, const qc_quant_spec *const spec[QC_LIN_COUNT],
                              const qc_awq_opts *o, qc_workspace *ws, float *s, qc_awq_group *g, qc_err *e) {
    qc_linear lin[3];
    int nlin = qc_awq_site_linears(site, lin), width = qc_site_width(c, site), dim = c->dim;
    int chunk = o->chunk_windows > 0 ? o->chunk_windows : 1;
    size_t ntok = (size_t)nwin * seqlen, wsize[3];
    float *buf[3] = { 0 }, *x_mean = NULL, *wmean = NULL, *cand = NULL, *ref = NULL, *out = NULL;
    qc_status st = QC_OK;
    x_mean = qc_malloc((size_t)width, 3 * sizeof(float), e, "AWQ scales");
    ref = x_mean ? qc_malloc(ntok, (size_t)dim * sizeof(float), e, "AWQ reference output") : NULL;
    out = ref ? qc_malloc((size_t)chunk * seqlen, (size_t)dim * sizeof(float), e, "AWQ output") : NULL;
    for (int k = 0; k < nlin && out; k++) {
        int rows, cols;
        qc_weight_shape(c, qc_linear_weight(lin[k]), &rows, &cols);
        wsize[k] = (size_t)rows * cols;
        if (!(buf[k] = qc_malloc(wsize[k], sizeof(float), e, "AWQ candidate weights"))) st = QC_ERR_NOMEM;
    }
    if (!out) st = QC_ERR_NOMEM;
    st = qc_dist_agree(o->share.dist, st, e); /* the ranks meet in every search's sums */
    if (st) goto done;
    wmean = x_mean + width;
    cand = wmean + width;
    st = qc_awq_mean_abs(x, (int64_t)ntok, width, &o->share, x_mean, e);
    if (!st && o->duo_scaling) st = weight_mean(b, c, lin, nlin, width, spec, wmean, e);
    for (int w0 = 0; w0 < nwin && !st; w0 += chunk)
        st = inspect(c, b, layer, site, x, w0, nwin - w0 < chunk ? nwin - w0 : chunk, seqlen, ws,
                     ref + (size_t)w0 * seqlen * dim, e);
    qc_block trial = *b; /* the same block with the group's linears replaced */
    for (int k = 0; k < nlin; k++) trial.w[lin[k]] = buf[k];
    for (int r = 0; r < QC_AWQ_GRID && !st; r++) { /* this rank's squared errors of each grid point */
        qc_awq_candidate(x_mean, wmean, width, r, o->duo_scaling, cand);
        for (int k = 0; k < nlin; k++) { /* Q(W·s)/s */
            int rows = (int)(wsize[k] / (size_t)width);
            const float *w = b->w[lin[k]];
            if (!spec[lin[k]]) { /* kept unquantized: its scaled copy computes what it did */
                memcpy(buf[k], w, wsize[k] * sizeof(float));
                continue;
            }
            for (size_t i = 0; i < wsize[k]; i++) buf[k][i] = w[i] * cand[i % (size_t)width];
            qc_quant_fake(buf[k], rows, width, spec[lin[k]], buf[k]);
            for (size_t i = 0; i < wsize[k]; i++) buf[k][i] /= cand[i % (size_t)width];
        }
        double sum = 0.0;
        for (int w0 = 0; w0 < nwin && !st; w0 += chunk) {
            int nw = nwin - w0 < chunk ? nwin - w0 : chunk;
            st = inspect(c, &trial, layer, site, x, w0, nw, seqlen, ws, out, e);
            const float *rf = ref + (size_t)w0 * seqlen * dim;
            for (size_t i = 0; i < (size_t)nw * seqlen * dim; i++) {
                double d = (double)rf[i] - (double)out[i];
                sum += d * d;
            }
        }
        g->loss[r] = sum;
    }
    st = qc_dist_agree(o->share.dist, st, e);
    if (!st) st = qc_dist_sum_f64(o->share.dist, g->loss, QC_AWQ_GRID, e); /* every rank's */
    int64_t total = o->share.total ? o->share.total : (int64_t)ntok;
    g->best = -1;
    double best = INFINITY;
    for (int r = 0; r < QC_AWQ_GRID && !st; r++) {
        g->loss[r] /= (double)total * dim;
        if (!isfinite(g->loss[r]))
            st = qc_fail(e, QC_ERR_NUMERIC, "block %d, AWQ scales of %s: non-finite loss at grid point %d", layer,
                         qc_site_name(site), r);
        else if (g->loss[r] < best)
            best = g->loss[r], g->best = r;
    }
    if (!st) qc_awq_candidate(x_mean, wmean, width, g->best, o->duo_scaling, s);
done:
    for (int k = 0; k < 3; k++) free(buf[k]);
    free(x_mean);
    free(ref);
    free(out);
    return st;
}
