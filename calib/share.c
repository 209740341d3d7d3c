/* share.c — what the ranks of a distributed run exchange while calibrating (docs/distributed.md).
 * Each rank holds a contiguous share of the windows (qc_windows_take_share); per site, the
 * statistics of every rank are summed in rank order, so every rank holds the site's whole
 * statistics; each linear is solved by one owner rank, which sends the result (and its log
 * row) to the others, who put the same dequantized weights into their copy of the block; the
 * activations between blocks stay with their rank, but for a checkpoint they are gathered on
 * rank 0 in window order (and scattered back on resume), so a checkpoint is the same whatever
 * N made it. With one process (dist NULL) nothing here moves data. */
#include "calib/internal.h"

#include <stdlib.h>
#include <string.h>

/* Elements per packed slice of the Hessian's upper triangle: summing only the triangle
 * halves the traffic, packing it in slices bounds the extra memory. */
#define PACK (QC_SHARE_SLICE_BYTES / sizeof(float))

/* The upper triangle of x (n, n) summed over the ranks, a slice of rows at a time. */
static qc_status sum_upper(const qc_dist *d, float *x, int n, qc_err *e) {
    float *buf = qc_malloc(PACK < (size_t)n * n ? PACK : (size_t)n * n, sizeof(float), e, "Hessian slice");
    qc_status st = qc_dist_agree(d, buf ? QC_OK : QC_ERR_NOMEM, e);
    for (int i0 = 0, i1; i0 < n && !st; i0 = i1) {
        size_t len = 0;
        for (i1 = i0; i1 < n && (i1 == i0 || len + (size_t)(n - i1) <= PACK); i1++) len += (size_t)(n - i1);
        float *at = buf;
        for (int i = i0; i < i1; at += n - i, i++) memcpy(at, x + (size_t)i * n + i, (size_t)(n - i) * sizeof(float));
        st = qc_dist_sum_f32(d, buf, len, e);
        at = buf;
        for (int i = i0; i < i1 && !st; at += n - i, i++) memcpy(x + (size_t)i * n + i, at, (size_t)(n - i) * sizeof(float));
    }
    free(buf);
    return st;
}

qc_status qc_share_stats(const qc_dist *d, qc_stats *s, qc_status st, qc_err *e) {
    st = qc_dist_agree(d, st, e);
    if (st || qc_dist_size(d) == 1) return st;
    size_t n = (size_t)s->n;
    if (s->xtx) st = sum_upper(d, s->xtx, s->n, e);
    if (!st) st = qc_dist_sum_i64(d, &s->count, 1, e);
    if (!st) st = qc_dist_max_f32(d, s->absmax, n, e);
    if (!st) st = qc_dist_max_f32(d, s->max, n, e);
    if (!st) st = qc_dist_min_f32(d, s->min, n, e);
    if (!st) st = qc_dist_sum_f64(d, s->sum_abs, n, e);
    if (!st) st = qc_dist_sum_f64(d, s->sum, n, e);
    if (!st) st = qc_dist_sum_f64(d, s->sum_sq, n, e);
    return st;
}

void qc_share_owners(const qc_config *c, qc_site site, int nranks, double *load, int owner[QC_LIN_COUNT]) {
    double site_load[64] = { 0 };
    if (nranks > 64) nranks = 64; /* owners among the first 64 ranks: a site has at most 3 linears */
    bool done[QC_LIN_COUNT] = { false };
    for (int lin = 0; lin < QC_LIN_COUNT; lin++) owner[lin] = -1;
    for (;;) { /* the largest unassigned linear of the site to the least loaded rank */
        int pick = -1;
        double cost = -1;
        for (int lin = 0; lin < QC_LIN_COUNT; lin++) {
            int rows, cols;
            qc_weight_shape(c, qc_linear_weight(lin), &rows, &cols);
            if (qc_linear_site(lin) != site || done[lin]) continue;
            double w = (double)rows * cols * cols; /* GPTQ's updates: rows × cols² */
            if (w > cost) cost = w, pick = lin;
        }
        if (pick < 0) return;
        int best = 0;
        for (int r = 1; r < nranks; r++)
            if (site_load[r] < site_load[best] || (site_load[r] == site_load[best] && load[r] < load[best])) best = r;
        owner[pick] = best, done[pick] = true;
        site_load[best] += cost, load[best] += cost;
    }
}

/* The shape of a result, as sent ahead of its arrays. */
typedef struct shape {
    int32_t codes, mins, super, rows, cols, ngroups, bits, groupsize, sym;
} shape;

/* Floats of a K-quant result's super-block parameters (its groups are sub-blocks). */
static size_t super_floats(const shape *h) {
    return (size_t)h->rows * (h->cols / QC_KQ_SUPER) * QC_KQ_SB_FLOATS(h->groupsize);
}

qc_status qc_share_result(const qc_dist *d, int owner, qc_qweight *q, qc_layer_report *rep, qc_err *e) {
    if (qc_dist_size(d) == 1) return QC_OK;
    bool mine = qc_dist_rank(d) == owner;
    shape h = { 0 };
    if (mine)
        h = (shape){ q->codes != NULL, q->mins != NULL, q->super != NULL, q->rows, q->cols, q->ngroups, q->bits,
                     q->groupsize, q->sym };
    qc_status st = qc_dist_bcast(d, owner, &h, sizeof h, e);
    if (!st) st = qc_dist_bcast(d, owner, rep, sizeof *rep, e);
    if (st || !h.codes) return st;
    if (!mine) {
        st = qc_qweight_init(q, h.rows, h.cols, h.bits, h.groupsize, h.sym, e);
        if (!st && q->ngroups != h.ngroups) st = qc_fail(e, QC_ERR_ARG, "a shared result's groups do not match its shape");
        size_t ng = (size_t)h.rows * h.ngroups;
        if (!st && h.mins && !(q->mins = qc_malloc(ng, sizeof(float), e, "group minima"))) st = QC_ERR_NOMEM;
        if (!st && h.super && !(q->super = qc_malloc(super_floats(&h), sizeof(float), e, "K-quant super-blocks")))
            st = QC_ERR_NOMEM;
    }
    st = qc_dist_agree(d, st, e);
    size_t n = (size_t)h.rows * h.cols, ng = (size_t)h.rows * h.ngroups;
    if (!st) st = qc_dist_bcast(d, owner, q->codes, n, e);
    if (!st) st = qc_dist_bcast(d, owner, q->scales, ng * sizeof(float), e);
    if (!st) st = qc_dist_bcast(d, owner, q->zeros, ng * sizeof(float), e);
    if (!st && h.mins) st = qc_dist_bcast(d, owner, q->mins, ng * sizeof(float), e);
    if (!st) st = qc_dist_bcast(d, owner, q->g_idx, (size_t)h.cols * sizeof(int32_t), e);
    if (!st) st = qc_dist_bcast(d, owner, q->perm, (size_t)h.cols * sizeof(int32_t), e);
    if (!st && h.super)
        st = qc_dist_bcast(d, owner, q->super, super_floats(&h) * sizeof(float), e);
    return st;
}
