/* prestep.c — the function-preserving rescaling of a block before its linears are solved
 * (QUANT-SPEC §4–5). One fp32 pass of the block over every calibration window captures the
 * inputs of its four sites (and the block's output, when the next block is to see fp32
 * inputs); SmoothQuant's scales come from the captured norm outputs' max|x|, AWQ's searches
 * run on the captured inputs (divided by the smoothing first). Memory: the four sites'
 * inputs for every calibration token, (2·dim + heads·head_dim + hidden) floats per token. */
#include "calib/internal.h"
#include "smooth/smooth.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The capture hook's state: where the current chunk's rows go. */
typedef struct capture {
    float *x[QC_SITE_COUNT]; /* (ntok, width) per site; NULL: not captured */
    size_t row0;             /* the chunk's first token */
} capture;

static qc_status on_input(void *ctx, qc_hook_call *call, qc_err *e) {
    capture *k = ctx;
    if (k->x[call->site])
        memcpy(k->x[call->site] + k->row0 * call->cols, call->x, (size_t)call->ntok * call->cols * sizeof(float));
    return QC_OK;
}

static void divide_rows(float *x, size_t ntok, int width, const float *s) {
    for (size_t t = 0; t < ntok; t++)
        for (int j = 0; j < width; j++) x[t * width + j] /= s[j];
}

static void absmax(const float *x, size_t ntok, int width, float *m) {
    memset(m, 0, (size_t)width * sizeof(float));
    for (size_t t = 0; t < ntok; t++)
        for (int j = 0; j < width; j++) m[j] = fabsf(x[t * width + j]) > m[j] ? fabsf(x[t * width + j]) : m[j];
}

static qc_status smooth(const qc_config *c, qc_block *b, capture *k, size_t ntok, float alpha, const qc_dist *d,
                        qc_prestep *p, qc_err *e) {
    int dim = c->dim;
    float *m = qc_malloc((size_t)dim, 2 * sizeof(float), e, "activation ranges");
    float *sq = m ? qc_malloc((size_t)dim, sizeof(float), e, "smoothing scales") : NULL;
    float *sg = sq ? qc_malloc((size_t)dim, sizeof(float), e, "smoothing scales") : NULL;
    qc_status st = qc_dist_agree(d, sg ? QC_OK : QC_ERR_NOMEM, e);
    if (!st) {
        absmax(k->x[QC_SITE_QKV], ntok, dim, m);
        absmax(k->x[QC_SITE_GATE_UP], ntok, dim, m + dim);
        st = qc_dist_max_f32(d, m, 2 * (size_t)dim, e); /* over every rank's tokens */
    }
    if (st) {
        free(m), free(sq), free(sg);
        return st;
    }
    qc_smooth_block(c, b, m, m + dim, alpha, sq, sg);
    free(m);
    p->s[QC_STAGE_SMOOTH][QC_SITE_QKV] = sq;
    p->s[QC_STAGE_SMOOTH][QC_SITE_GATE_UP] = sg;
    for (int site = QC_SITE_QKV; site <= QC_SITE_GATE_UP; site += QC_SITE_GATE_UP - QC_SITE_QKV) {
        const float *s = p->s[QC_STAGE_SMOOTH][site];
        p->smooth_min[site] = p->smooth_max[site] = s[0];
        for (int j = 1; j < dim; j++) {
            p->smooth_min[site] = s[j] < p->smooth_min[site] ? s[j] : p->smooth_min[site];
            p->smooth_max[site] = s[j] > p->smooth_max[site] ? s[j] : p->smooth_max[site];
        }
    }
    qc_block_scale(c, b, (const float *const *)p->s[QC_STAGE_SMOOTH]);
    divide_rows(k->x[QC_SITE_QKV], ntok, dim, sq);
    divide_rows(k->x[QC_SITE_GATE_UP], ntok, dim, sg);
    return QC_OK;
}

qc_status qc_prestep_block(const qc_config *c, qc_block *b, int layer, const float *x, const qc_windows *w, int chunk,
                           const qc_calib_opts *o, qc_workspace *ws, float *x_out, qc_prestep *p, qc_err *e) {
    memset(p, 0, sizeof *p);
    int nwin = w->n, seqlen = w->seqlen;
    bool awq = qc_method_info_of(o->method)->awq, sm = o->smooth_alpha > 0.0f;
    size_t ntok = (size_t)nwin * seqlen, dim = (size_t)c->dim;
    capture k = { { 0 }, 0 };
    qc_status st = QC_OK;
    for (int s = 0; s < QC_SITE_COUNT && !st; s++) {
        bool need = awq || (sm && (s == QC_SITE_QKV || s == QC_SITE_GATE_UP));
        if (need && !(k.x[s] = qc_malloc(ntok, (size_t)qc_site_width(c, s) * sizeof(float), e, "captured inputs")))
            st = QC_ERR_NOMEM;
    }
    float *tmp = st ? NULL : qc_malloc((size_t)chunk * seqlen, dim * sizeof(float), e, "activations");
    if (!tmp) st = st ? st : QC_ERR_NOMEM;
    qc_hooks hooks = { on_input, &k };
    for (int w0 = 0; w0 < nwin && !st; w0 += chunk) { /* the fp32 pass */
        int nw = nwin - w0 < chunk ? nwin - w0 : chunk;
        size_t off = (size_t)w0 * seqlen * dim, n = (size_t)nw * seqlen * dim;
        float *xc = x_out ? x_out + off : tmp;
        memcpy(xc, x + off, n * sizeof(float));
        k.row0 = (size_t)w0 * seqlen;
        st = qc_block_forward(c, b, layer, xc, nw, seqlen, &hooks, ws, e);
    }
    free(tmp);
    st = qc_dist_agree(o->dist, st, e);
    if (!st && sm) st = smooth(c, b, &k, ntok, o->smooth_alpha, o->dist, p, e);
    if (!st && awq) {
        qc_awq_opts ao = o->awq;
        ao.chunk_windows = chunk;
        ao.share = (qc_awq_share){ o->dist, (int64_t)w->first * seqlen, (int64_t)qc_windows_total(w) * seqlen };
        bool keep[QC_LIN_COUNT];
        const qc_quant_spec *spec[QC_LIN_COUNT]; /* the searches simulate each linear's own */
        for (int l = 0; l < QC_LIN_COUNT; l++) {
            keep[l] = qc_calib_keeps(o, layer, (qc_linear)l);
            spec[l] = keep[l] ? NULL : qc_calib_spec(o, layer, (qc_linear)l);
        }
        st = qc_awq_block(c, b, layer, k.x, nwin, seqlen, spec, keep, &ao, ws, &p->awq, e);
        for (int s = 0; !st && s < QC_SITE_COUNT; s++) {
            p->awq_site[s] = p->awq.s[s] != NULL;
            p->s[QC_STAGE_AWQ][s] = p->awq.s[s], p->awq.s[s] = NULL;
        }
    }
    for (int s = 0; s < QC_SITE_COUNT; s++) free(k.x[s]);
    if (st) qc_prestep_free(p);
    return st;
}

void qc_prestep_report(const qc_prestep *p, qc_linear lin, qc_layer_report *rep) {
    qc_site site = qc_linear_site(lin);
    rep->awq_grid = -1;
    rep->clip_mean = rep->clip_min = 1.0;
    if (p->awq_site[site]) {
        const qc_awq_group *g = &p->awq.group[site];
        rep->awq_grid = g->best;
        rep->awq_loss = g->loss[g->best];
        rep->awq_loss0 = g->loss[0];
    }
    if (p->awq.clipped[lin]) {
        rep->clip_mean = p->awq.clip_mean[lin];
        rep->clip_min = p->awq.clip_min[lin];
    }
    rep->smooth_min = p->smooth_min[site];
    rep->smooth_max = p->smooth_max[site];
}

void qc_prestep_free(qc_prestep *p) {
    if (!p) return;
    for (int t = 0; t < QC_SCALE_STAGES; t++)
        for (int s = 0; s < QC_SITE_COUNT; s++) free(p->s[t][s]);
    qc_awq_block_result_free(&p->awq);
    memset(p, 0, sizeof *p);
}
