/* dist.h — the processes of one run (docs/distributed.md): under `mpirun -np N` each of N
 * ranks calibrates its share of the windows, and these collectives combine what they found.
 * A NULL qc_dist is one process: every call is then a no-op (sums leave the data as it is),
 * so library code calls them unconditionally and a plain run does exactly what it did before.
 *
 * Every collective is called by every rank in the same order. Sums are added in rank order,
 * ((x0 + x1) + x2) + …, whatever the MPI library's own reduction algorithms would do, so a
 * fixed N gives the same bits on every run and every rank holds the same result.
 *
 * A rank that fails must still reach the next collective: qc_dist_agree is where ranks learn
 * whether any of them failed. Built without MPI (Makefile: no mpicc), qc_dist_open refuses a launch
 * by mpirun, so N copies never each run the whole job. */
#ifndef QC_DIST_H
#define QC_DIST_H

#include "base/base.h"

typedef struct qc_dist qc_dist;

/* The largest buffer a sum takes per rank (its N pieces are N of these): for memory plans. */
#define QC_DIST_PIECE_BYTES ((size_t)8 << 20)

/* Whether this build can run under mpirun (MPI found at build time). */
bool qc_dist_built(void);
/* Joins the run's processes when launched by mpirun (*d set), or leaves *d NULL for a plain
 * run. An error (MPI failed to start, or this build lacks MPI) names the cause. */
qc_status qc_dist_open(qc_dist **d, qc_err *e);
/* Leaves the run; abort_all: after an error of this rank alone, ends every rank at once (they
 * may be waiting for it in a collective). NULL: no-op. */
void qc_dist_close(qc_dist *d, bool abort_all);

int qc_dist_rank(const qc_dist *d); /* NULL: 0 */
int qc_dist_size(const qc_dist *d); /* NULL: 1 */
/* Ranks sharing this rank's machine (NULL: 1): for the default thread count. */
int qc_dist_local_size(const qc_dist *d);

/* Collective. If st or any other rank's status is an error, every rank returns the error of
 * the lowest failing rank, its message prefixed "rank R: " unless every rank failed; else
 * QC_OK. After
 * such an error no collective communicates again (each returns the error at once), so the
 * ranks may leave by different paths. Hence the rule every caller keeps: between a point
 * where one rank may fail alone and the next collective of any other kind, an agreement. */
qc_status qc_dist_agree(const qc_dist *d, qc_status st, qc_err *e);
/* Every rank has learned of this run's error (rank 0 reports it); else an error of this rank
 * alone, which only this rank can report. */
bool qc_dist_failed_together(const qc_dist *d);

/* Collective: x (n values, the same n on every rank) becomes their sum over the ranks, in
 * rank order, on every rank. */
qc_status qc_dist_sum_f32(const qc_dist *d, float *x, size_t n, qc_err *e);
qc_status qc_dist_sum_f64(const qc_dist *d, double *x, size_t n, qc_err *e);
qc_status qc_dist_sum_i64(const qc_dist *d, int64_t *x, size_t n, qc_err *e);
/* Collective: elementwise max or min over the ranks (exact, order-free). */
qc_status qc_dist_max_f32(const qc_dist *d, float *x, size_t n, qc_err *e);
qc_status qc_dist_min_f32(const qc_dist *d, float *x, size_t n, qc_err *e);
/* Collective: rank root's n bytes at p to every rank. */
qc_status qc_dist_bcast(const qc_dist *d, int root, void *p, size_t n, qc_err *e);
/* Collective: rank root gets every rank's n bytes at p into all, concatenated in rank order
 * (each rank's n may differ; all is NULL on other ranks); scatter hands such a concatenation
 * out, each rank taking its own n bytes. */
qc_status qc_dist_gather(const qc_dist *d, int root, const void *p, size_t n, void *all, qc_err *e);
qc_status qc_dist_scatter(const qc_dist *d, int root, const void *all, void *p, size_t n, qc_err *e);

/* Collective: the ranks hold the same text (e.g. the run's fingerprint with the binary's);
 * else an error naming the first rank and line that differ from rank 0's. what names it. */
qc_status qc_dist_check_same(const qc_dist *d, const char *text, const char *what, qc_err *e);

/* What the collectives cost this rank so far (for summary.json and the benchmark). */
typedef struct qc_dist_traffic {
    double seconds;      /* inside collectives, waiting included */
    uint64_t bytes_sent; /* payload this rank sent */
    uint64_t bytes_recv;
    int64_t calls;
} qc_dist_traffic;
qc_dist_traffic qc_dist_traffic_of(const qc_dist *d); /* NULL: zeros */

#endif
