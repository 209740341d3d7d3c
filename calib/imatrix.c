/* imatrix.c — the activation statistics of `qcalib stats` (qc_activation_stats: the
 * full-precision model on the calibration windows, one qc_stats per block and input site) as
 * llama.cpp's importance matrix: each linear's entry is its site's Σx² (q, k and v share the
 * attention norm's output, gate and up the FFN norm's), over every token of every window. */
#include "calib/calib.h"

typedef struct imatrix_ctx {
    const qc_stats *act;
} imatrix_ctx;

static const double *site_sums(void *ctx, qc_weight w, int layer) {
    const imatrix_ctx *x = ctx;
    for (int l = 0; l < QC_LIN_COUNT; l++)
        if (qc_linear_weight((qc_linear)l) == w) return x->act[layer * QC_SITE_COUNT + qc_linear_site((qc_linear)l)].sum_sq;
    QC_ASSERT(!"a linear weight");
    return NULL;
}

qc_status qc_stats_imatrix_write(const char *path, const qc_config *c, const qc_stats *act, const qc_windows *w,
                                 const char *const *datasets, int ndatasets, qc_err *e) {
    imatrix_ctx x = { act };
    qc_imatrix_src m = { c, site_sums, &x, act[0].count, w->n, w->seqlen, datasets, ndatasets };
    return qc_imatrix_write(path, &m, e);
}
