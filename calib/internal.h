/* internal.h — internal to calib/: the rescaling pre-step of a block (prestep.c), which the
 * runner calls before solving the block's linears; the embedding and the classifier, which it
 * quantizes after the blocks (embedding.c, classifier.c); the work folder's lock (worklock.c). */
#ifndef QC_CALIB_INTERNAL_H
#define QC_CALIB_INTERNAL_H

#include "calib/calib.h"

/* Quantizes w (rows, cols) with spec as o's method does: GPTQ on st's Σ xᵀx (scratch, rows ×
 * cols, receives its compensated weights; the diagonal it changes is put back), else
 * round-to-nearest; res is initialised here. info is filled by GPTQ only. */
qc_status qc_calib_quantize_linear(const qc_calib_opts *o, const qc_quant_spec *spec, const float *w, int rows, int cols,
                                   qc_stats *st, float *scratch, qc_qweight *res, qc_gptq_info *info, qc_err *e);

/* ---- what the ranks of a distributed run exchange (share.c); no-ops for one process ---- */

/* The packed slice of a Hessian's upper triangle that share.c sums at a time. */
#define QC_SHARE_SLICE_BYTES (((size_t)1 << 22) * sizeof(float))

/* Collective: agrees on st, then sums s (rank order) over the ranks: every rank holds the
 * site's whole statistics (the Hessian's upper triangle, as qc_stats_add leaves it). */
qc_status qc_share_stats(const qc_dist *d, qc_stats *s, qc_status st, qc_err *e);
/* The rank that solves each linear of site (-1: another site): the site's linears, largest
 * first, each to the rank with the least work in this site, ties to the least work so far
 * (load: nranks running totals, updated). The same on every rank. */
void qc_share_owners(const qc_config *c, qc_site site, int nranks, double *load, int owner[QC_LIN_COUNT]);
/* Collective: owner's result q and log row rep to every rank (q initialised there). */
qc_status qc_share_result(const qc_dist *d, int owner, qc_qweight *q, qc_layer_report *rep, qc_err *e);

/* The token embedding of m quantized with o->embed into q (initialised here; with ranks, on
 * rank 0 only): with o->embed_gptq GPTQ against the error it causes in the linears that read
 * it, their gains measured on the first chunk of windows of the whole set (each rank measures
 * its windows of it); else round-to-nearest (embedding.c). */
qc_status qc_calib_embedding(const qc_model *m, const qc_windows *w, const qc_calib_opts *o, qc_qweight *q, qc_err *e);
/* The classifier of m quantized with o->classifier into out->classifier, from x (w->n ·
 * seqlen, dim; o->act_dtype), the residual stream leaving the last block (classifier.c); with
 * ranks, every rank's statistics, solved on rank 0. */
qc_status qc_calib_classifier(const qc_model *m, const qc_windows *w, const void *x, const qc_calib_opts *o,
                              qc_quantized *out, qc_err *e);

/* What the pre-step did to one block. */
typedef struct qc_prestep {
    float *s[QC_SCALE_STAGES][QC_SITE_COUNT]; /* owned until moved into a qc_quantized */
    qc_awq_block_result awq;                  /* its s entries moved to s[QC_STAGE_AWQ] */
    bool awq_site[QC_SITE_COUNT];             /* the sites AWQ scaled */
    float smooth_min[QC_SITE_COUNT], smooth_max[QC_SITE_COUNT]; /* 0: not smoothed */
} qc_prestep;

/* Runs block b (fp32, as loaded) over the windows w of x (w->n*seqlen, dim; unchanged), in
 * chunks of `chunk` windows, capturing every site's input; with x_out, writes the block's
 * output there (the next block's fp32 inputs). Then, as o says: smooths b (SmoothQuant, α),
 * and runs AWQ on it (scales, clipping); b is rescaled in place, function unchanged but for
 * rounding and clipping. With ranks (o->dist), the smoothing's maxima and AWQ's sums run
 * over every rank's windows. */
qc_status qc_prestep_block(const qc_config *c, qc_block *b, int layer, const float *x, const qc_windows *w, int chunk,
                           const qc_calib_opts *o, qc_workspace *ws, float *x_out, qc_prestep *p, qc_err *e);
/* The pre-step's figures for one linear's log row. */
void qc_prestep_report(const qc_prestep *p, qc_linear lin, qc_layer_report *rep);
void qc_prestep_free(qc_prestep *p); /* NULL or zeroed: no-op */

/* Takes the lock of the work folder dir (its file "lock", flock'ed, holding this pid) into
 * *fd, to close when done with the folder; taken by a live run: an error naming its pid. */
qc_status qc_work_lock(const char *dir, int *fd, qc_err *e);
/* Removes everything in the work folder dir but its lock. */
void qc_work_clear(const char *dir);

#endif
