/* single.c — dist.h for a build without MPI (make MPI=off, or no mpicc): one process, every
 * collective a no-op. Launched by mpirun anyway, it refuses to start: each of the N copies
 * would otherwise run the whole job and write the same output. */
#include "dist/dist.h"

#include <stdlib.h>
#include <string.h>

bool qc_dist_built(void) { return false; }

qc_status qc_dist_open(qc_dist **d, qc_err *e) {
    *d = NULL;
    const char *n = getenv("OMPI_COMM_WORLD_SIZE");
    if (!n) n = getenv("PMI_SIZE");
    if (n && atoi(n) > 1)
        return qc_fail(e, QC_ERR_UNSUPPORTED, "launched as one of %s processes, but this qcalib was built without MPI "
                       "(MPI=off, or no mpicc at build time): install libopenmpi-dev and rebuild, or run it without mpirun", n);
    return QC_OK;
}

void qc_dist_close(qc_dist *d, bool abort_all) {}
int qc_dist_rank(const qc_dist *d) { return 0; }
int qc_dist_size(const qc_dist *d) { return 1; }
int qc_dist_local_size(const qc_dist *d) { return 1; }
qc_status qc_dist_agree(const qc_dist *d, qc_status st, qc_err *e) { return st; }
bool qc_dist_failed_together(const qc_dist *d) { return false; }
qc_status qc_dist_sum_f32(const qc_dist *d, float *x, size_t n, qc_err *e) { return QC_OK; }
qc_status qc_dist_sum_f64(const qc_dist *d, double *x, size_t n, qc_err *e) { return QC_OK; }
qc_status qc_dist_sum_i64(const qc_dist *d, int64_t *x, size_t n, qc_err *e) { return QC_OK; }
qc_status qc_dist_max_f32(const qc_dist *d, float *x, size_t n, qc_err *e) { return QC_OK; }
qc_status qc_dist_min_f32(const qc_dist *d, float *x, size_t n, qc_err *e) { return QC_OK; }
qc_status qc_dist_bcast(const qc_dist *d, int root, void *p, size_t n, qc_err *e) { return QC_OK; }

qc_status qc_dist_gather(const qc_dist *d, int root, const void *p, size_t n, void *all, qc_err *e) {
    memcpy(all, p, n);
    return QC_OK;
}

qc_status qc_dist_scatter(const qc_dist *d, int root, const void *all, void *p, size_t n, qc_err *e) {
    memcpy(p, all, n);
    return QC_OK;
}

qc_status qc_dist_check_same(const qc_dist *d, const char *text, const char *what, qc_err *e) { return QC_OK; }
qc_dist_traffic qc_dist_traffic_of(const qc_dist *d) { return (qc_dist_traffic){ 0 }; }
