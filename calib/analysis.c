/* analysis.c — what `qcalib stats` measures: the shape of each weight's distribution (range,
 * moments, outliers, per-output-channel spread, a standardized histogram) and, over
 * calibration windows, every linear input's per-channel statistics in the fp32 model. */
#include "calib/calib.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

qc_status qc_wstats_compute(const float *w, int rows, int cols, qc_wstats *s, qc_err *e) {
    *s = (qc_wstats){ .weight = s->weight, .layer = s->layer, .rows = rows, .cols = cols };
    size_t n = (size_t)rows * cols;
    float *rowmax = qc_malloc((size_t)rows, sizeof(float), e, "weight statistics");
    if (!rowmax) return QC_ERR_NOMEM;
    double sum = 0.0;
    s->min = INFINITY, s->max = -INFINITY;
    for (int r = 0; r < rows; r++) {
        float am = 0.0f;
        for (int c = 0; c < cols; c++) {
            float v = w[(size_t)r * cols + c];
            sum += v;
            if (v < s->min) s->min = v;
            if (v > s->max) s->max = v;
            if (fabsf(v) > am) am = fabsf(v);
        }
        rowmax[r] = am;
    }
    s->mean = sum / (double)n;
    double m2 = 0.0, m4 = 0.0; /* central moments: a second pass, exact where Σw² − n·mean² is not */
    for (size_t i = 0; i < n; i++) {
        double d = w[i] - s->mean, d2 = d * d;
        m2 += d2, m4 += d2 * d2;
    }
    m2 /= (double)n, m4 /= (double)n;
    s->std = sqrt(m2);
    s->kurtosis = m2 > 0.0 ? m4 / (m2 * m2) : NAN;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(w[i] - s->mean);
        s->beyond3 += d > 3.0 * s->std;
        s->beyond6 += d > 6.0 * s->std;
        double z = s->std > 0.0 ? (w[i] - s->mean) / s->std : 0.0;
        double pos = (z + QC_WSTATS_SPAN) * QC_WSTATS_BINS / (2.0 * QC_WSTATS_SPAN);
        int bin = pos < 0.0 ? 0 : pos >= QC_WSTATS_BINS ? QC_WSTATS_BINS - 1 : (int)pos;
        s->hist[bin]++;
    }
    qsort(rowmax, (size_t)rows, sizeof(float), cmp_float);
    s->row_absmax_min = rowmax[0];
    s->row_absmax_max = rowmax[rows - 1];
    s->row_absmax_median = rows % 2 ? rowmax[rows / 2] : 0.5f * (rowmax[rows / 2 - 1] + rowmax[rows / 2]);
    free(rowmax);
    return QC_OK;
}

/* The hook: every site's input of the current block into its statistics. */
static qc_status record(void *ctx, qc_hook_call *call, qc_err *e) {
    qc_stats *block_stats = ctx;
    char what[64];
    snprintf(what, sizeof what, "block %d, input of %s", call->layer, qc_site_name(call->site));
    return qc_stats_add(&block_stats[call->site], call->x, call->ntok, what, e);
}

qc_status qc_activation_stats(qc_model *m, const qc_windows *w, int batch_tokens, const qc_log *log, qc_stats *out,
                              qc_err *e) {
    const qc_config *c = &m->cfg;
    int seqlen = w->seqlen, dim = c->dim, nl = c->n_layers;
    memset(out, 0, (size_t)nl * QC_SITE_COUNT * sizeof *out);
    int per_chunk = (batch_tokens > 0 ? batch_tokens : 2048) / seqlen;
    per_chunk = per_chunk < 1 ? 1 : per_chunk > w->n ? w->n : per_chunk;
    size_t ntok = (size_t)w->n * seqlen;
    float *x = qc_malloc(ntok, (size_t)dim * sizeof(float), e, "activations");
    qc_workspace *ws = x ? qc_workspace_new(c, per_chunk * seqlen, seqlen, e) : NULL;
    qc_status st = ws ? qc_model_embed(m, w->tokens, (int)ntok, x, e) : QC_ERR_NOMEM;
    for (int l = 0; l < nl && !st; l++) {
        qc_stats *bs = out + (size_t)l * QC_SITE_COUNT;
        for (int s = 0; s < QC_SITE_COUNT && !st; s++) st = qc_stats_init_channels(&bs[s], qc_site_width(c, s), e);
        const qc_block *b = NULL;
        if (!st) st = qc_model_block(m, l, &b, e);
        qc_hooks hooks = { record, bs };
        for (int w0 = 0; w0 < w->n && !st; w0 += per_chunk) {
            int nw = w->n - w0 < per_chunk ? w->n - w0 : per_chunk;
            st = qc_block_forward(c, b, l, x + (size_t)w0 * seqlen * dim, nw, seqlen, &hooks, ws, e);
        }
        qc_model_release_block(m, l);
        qc_progress(log, "activations", l + 1, nl, NULL);
    }
    free(x);
    qc_workspace_free(ws);
    if (st)
        for (int i = 0; i < nl * QC_SITE_COUNT; i++) qc_stats_free(&out[i]);
    return st;
}

qc_status qc_wstats_checkpoint(const qc_checkpoint *ck, const qc_log *log, qc_wstats **out, int *n, qc_err *e) {
    const qc_config *c = qc_checkpoint_config(ck);
    int total = 1 + !c->tied_classifier + c->n_layers * QC_LIN_COUNT, k = 0;
    *n = 0;
    qc_wstats *ws = qc_calloc((size_t)total, sizeof *ws, e, "weight statistics");
    if (!ws) return QC_ERR_NOMEM;
    ws[k++] = (qc_wstats){ .weight = QC_W_EMBED, .layer = -1 };
    if (!c->tied_classifier) ws[k++] = (qc_wstats){ .weight = QC_W_CLASSIFIER, .layer = -1 };
    for (int l = 0; l < c->n_layers; l++)
        for (int lin = 0; lin < QC_LIN_COUNT; lin++) ws[k++] = (qc_wstats){ .weight = qc_linear_weight(lin), .layer = l };
    qc_status st = QC_OK;
    for (int i = 0; i < total && !st; i++) {
        qc_wstats *s = &ws[i];
        int rows, cols;
        float *buf = NULL;
        qc_weight_shape(c, s->weight, &rows, &cols);
        st = qc_weight_load(ck, s->weight, s->layer < 0 ? 0 : s->layer, &buf, e);
        if (!st) st = qc_wstats_compute(buf, rows, cols, s, e);
        free(buf);
        qc_progress(log, "weights", i + 1, total, NULL);
    }
    if (st) {
        free(ws);
        return st;
    }
    *out = ws, *n = total;
    return QC_OK;
}
