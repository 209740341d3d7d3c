/* mpi.c — dist.h over MPI (built when the Makefile finds mpicc). Sums are made in pieces: the
 * owner of each piece (piece p: rank p mod N) gathers it from every rank, adds the copies in
 * rank order and broadcasts the sum, so the order of additions is fixed by this file rather
 * than by the MPI library's choice of reduction algorithm, and the adding work is spread over
 * the ranks. Payloads larger than MPI's int counts are sent in slices. */
#include "dist/dist.h"

#include <mpi.h>
#include <stdlib.h>
#include <string.h>

struct qc_dist {
    int rank, size, local_size;
    qc_status broken; /* an error every rank learned (qc_dist_agree): no collective runs after it */
    int nested;       /* inside a collective made of others: only the outer one is counted */
    qc_dist_traffic t;
};

#define PIECE ((size_t)1 << 20) /* elements per summed piece: QC_DIST_PIECE_BYTES of doubles */
#define SLICE ((size_t)1 << 30) /* bytes per point-to-point message */

bool qc_dist_built(void) { return true; }

/* Started by mpirun (Open MPI), or by a PMI launcher (Slurm's srun, MPICH's hydra). */
static bool launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

static qc_status mpi_fail(qc_err *e, int rc, const char *what) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "error %d", rc);
    return qc_fail(e, QC_ERR_IO, "MPI %s: %s", what, text);
}

/* Every rank runs the same executable: its bytes hash alike. */
static qc_status same_binary(qc_dist *d, qc_err *e) {
    qc_map m;
    qc_status st = qc_map_open(&m, "/proc/self/exe", e);
    char text[64] = "";
    if (!st) snprintf(text, sizeof text, "qcalib executable %016llx\n", (unsigned long long)qc_hash64(0, m.data, m.size));
    if (!st) qc_map_close(&m);
    st = qc_dist_agree(d, st, e);
    return st ? st : qc_dist_check_same(d, text, "this rank's qcalib binary (its content hash)", e);
}

qc_status qc_dist_open(qc_dist **d, qc_err *e) {
    *d = NULL;
    if (!launched()) return QC_OK;
    int provided, rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return qc_fail(e, QC_ERR_IO, "MPI could not start (MPI_Init_thread failed)");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    qc_dist *s = calloc(1, sizeof *s);
    MPI_Comm local;
    if (!s) {
        MPI_Finalize();
        return qc_fail(e, QC_ERR_NOMEM, "out of memory");
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &s->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &s->size);
    s->local_size = 1;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) == MPI_SUCCESS) {
        MPI_Comm_size(local, &s->local_size);
        MPI_Comm_free(&local);
    }
    *d = s;
    return same_binary(s, e);
}

void qc_dist_close(qc_dist *d, bool abort_all) {
    if (!d) return;
    if (abort_all && d->size > 1) MPI_Abort(MPI_COMM_WORLD, 1);
    MPI_Finalize();
    free(d);
}

int qc_dist_rank(const qc_dist *d) { return d ? d->rank : 0; }
int qc_dist_size(const qc_dist *d) { return d ? d->size : 1; }
int qc_dist_local_size(const qc_dist *d) { return d ? d->local_size : 1; }

qc_dist_traffic qc_dist_traffic_of(const qc_dist *d) { return d ? d->t : (qc_dist_traffic){ 0 }; }

/* Accounting around one collective. */
static void account(const qc_dist *d, double t0, size_t sent, size_t recv) {
    qc_dist *m = (qc_dist *)d; /* the counters are the handle's own bookkeeping */
    if (m->nested) return;
    m->t.seconds += qc_now() - t0;
    m->t.bytes_sent += sent;
    m->t.bytes_recv += recv;
    m->t.calls++;
}

/* "rank 12: " already begins msg (an error shared before, passed up). */
static bool has_rank_prefix(const char *msg) {
    if (strncmp(msg, "rank ", 5) != 0) return false;
    const char *p = msg + 5;
    while (*p >= '0' && *p <= '9') p++;
    return p > msg + 5 && p[0] == ':' && p[1] == ' ';
}

bool qc_dist_failed_together(const qc_dist *d) { return d && d->broken; }

qc_status qc_dist_agree(const qc_dist *d, qc_status st, qc_err *e) {
    if (!d || d->size == 1) return st;
    if (d->broken) return st ? st : d->broken; /* e still holds the shared message */
    double t0 = qc_now();
    /* the lowest failing rank, and whether every rank failed (then no rank is named) */
    int mine[2] = { st ? d->rank : d->size, st ? 0 : -1 }, got[2];
    int rc = MPI_Allreduce(mine, got, 2, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_fail(e, rc, "agreement");
    int first = got[0];
    bool everyone = got[1] == 0;
    if (first == d->size) {
        account(d, t0, sizeof mine, sizeof got);
        return QC_OK;
    }
    struct {
        int status;
        char msg[sizeof e->msg];
    } what = { (int)st, "" };
    if (d->rank == first) snprintf(what.msg, sizeof what.msg, "%s", e->msg);
    rc = MPI_Bcast(&what, (int)sizeof what, MPI_BYTE, first, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_fail(e, rc, "agreement");
    account(d, t0, sizeof what, sizeof what);
    ((qc_dist *)d)->broken = what.status ? (qc_status)what.status : QC_ERR_IO;
    if (everyone || has_rank_prefix(what.msg)) return qc_fail(e, (qc_status)what.status, "%s", what.msg);
    return qc_fail(e, (qc_status)what.status, "rank %d: %s", first, what.msg);
}

/* x (n elements of `size` bytes) summed over the ranks in rank order, piece by piece. */
static qc_status sum(const qc_dist *d, void *x, size_t n, size_t size, MPI_Datatype type,
                     void (*add)(void *acc, const void *y, size_t n), qc_err *e) {
    if (!d || d->size == 1 || n == 0) return QC_OK;
    if (d->broken) return d->broken;
    double t0 = qc_now();
    int N = d->size;
    size_t piece = n < PIECE ? n : PIECE;
    uint8_t *all = qc_malloc((size_t)N * piece, size, e, "the ranks' partial sums");
    ((qc_dist *)d)->nested++;
    qc_status st = qc_dist_agree(d, all ? QC_OK : QC_ERR_NOMEM, e);
    ((qc_dist *)d)->nested--;
    if (st) {
        free(all);
        return st;
    }
    size_t sent = 0, recv = 0;
    int rc = MPI_SUCCESS;
    for (size_t p0 = 0, k = 0; p0 < n && rc == MPI_SUCCESS; p0 += piece, k++) {
        int m = (int)(n - p0 < piece ? n - p0 : piece), owner = (int)(k % (size_t)N);
        uint8_t *mine = (uint8_t *)x + p0 * size;
        rc = MPI_Gather(mine, m, type, all, m, type, owner, MPI_COMM_WORLD);
        if (rc == MPI_SUCCESS && d->rank == owner) {
            for (int r = 1; r < N; r++) add(all, all + (size_t)r * m * size, (size_t)m);
            memcpy(mine, all, (size_t)m * size);
        }
        if (rc == MPI_SUCCESS) rc = MPI_Bcast(mine, m, type, owner, MPI_COMM_WORLD);
        sent += (size_t)m * size * (d->rank == owner ? (size_t)N - 1 : 1);
        recv += (size_t)m * size * (d->rank == owner ? (size_t)N - 1 : 1);
    }
    free(all);
    account(d, t0, sent, recv);
    return rc == MPI_SUCCESS ? QC_OK : mpi_fail(e, rc, "sum");
}

static void add_f32(void *acc, const void *y, size_t n) {
    float *a = acc;
    const float *b = y;
    for (size_t i = 0; i < n; i++) a[i] += b[i];
}

static void add_f64(void *acc, const void *y, size_t n) {
    double *a = acc;
    const double *b = y;
    for (size_t i = 0; i < n; i++) a[i] += b[i];
}

qc_status qc_dist_sum_f32(const qc_dist *d, float *x, size_t n, qc_err *e) {
    return sum(d, x, n, sizeof *x, MPI_FLOAT, add_f32, e);
}

qc_status qc_dist_sum_f64(const qc_dist *d, double *x, size_t n, qc_err *e) {
    return sum(d, x, n, sizeof *x, MPI_DOUBLE, add_f64, e);
}

/* An order-free reduction (exact: integer sums, max, min) by MPI itself. */
static qc_status reduce(const qc_dist *d, void *x, size_t n, size_t size, MPI_Datatype type, MPI_Op op, qc_err *e) {
    if (!d || d->size == 1) return QC_OK;
    if (d->broken) return d->broken;
    double t0 = qc_now();
    int rc = MPI_SUCCESS;
    for (size_t p0 = 0; p0 < n && rc == MPI_SUCCESS; p0 += PIECE)
        rc = MPI_Allreduce(MPI_IN_PLACE, (uint8_t *)x + p0 * size, (int)(n - p0 < PIECE ? n - p0 : PIECE), type, op,
                           MPI_COMM_WORLD);
    account(d, t0, n * size, n * size);
    return rc == MPI_SUCCESS ? QC_OK : mpi_fail(e, rc, "reduction");
}

qc_status qc_dist_sum_i64(const qc_dist *d, int64_t *x, size_t n, qc_err *e) {
    return reduce(d, x, n, sizeof *x, MPI_INT64_T, MPI_SUM, e);
}

qc_status qc_dist_max_f32(const qc_dist *d, float *x, size_t n, qc_err *e) {
    return reduce(d, x, n, sizeof *x, MPI_FLOAT, MPI_MAX, e);
}

qc_status qc_dist_min_f32(const qc_dist *d, float *x, size_t n, qc_err *e) {
    return reduce(d, x, n, sizeof *x, MPI_FLOAT, MPI_MIN, e);
}

qc_status qc_dist_bcast(const qc_dist *d, int root, void *p, size_t n, qc_err *e) {
    if (!d || d->size == 1) return QC_OK;
    if (d->broken) return d->broken;
    double t0 = qc_now();
    int rc = MPI_SUCCESS;
    for (size_t o = 0; o < n && rc == MPI_SUCCESS; o += SLICE)
        rc = MPI_Bcast((uint8_t *)p + o, (int)(n - o < SLICE ? n - o : SLICE), MPI_BYTE, root, MPI_COMM_WORLD);
    account(d, t0, d->rank == root ? n * (size_t)(d->size - 1) : 0, d->rank == root ? 0 : n);
    return rc == MPI_SUCCESS ? QC_OK : mpi_fail(e, rc, "broadcast");
}

/* n bytes between this rank and `peer`, in slices: sent (send) or received. */
static int transfer(void *p, size_t n, int peer, bool send) {
    int rc = MPI_SUCCESS;
    for (size_t o = 0; o < n && rc == MPI_SUCCESS; o += SLICE) {
        int m = (int)(n - o < SLICE ? n - o : SLICE);
        rc = send ? MPI_Send((uint8_t *)p + o, m, MPI_BYTE, peer, 0, MPI_COMM_WORLD)
                  : MPI_Recv((uint8_t *)p + o, m, MPI_BYTE, peer, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    }
    return rc;
}

/* gather (to root) or scatter (from root) of each rank's n bytes at p, all on root. */
static qc_status exchange(const qc_dist *d, int root, void *p, size_t n, void *all, bool gather, qc_err *e) {
    if (!d || d->size == 1) {
        if (gather) memcpy(all, p, n);
        else memcpy(p, all, n);
        return QC_OK;
    }
    if (d->broken) return d->broken;
    double t0 = qc_now();
    uint64_t *c = d->rank == root ? qc_malloc((size_t)d->size, sizeof *c, e, "sizes") : NULL;
    ((qc_dist *)d)->nested++; /* the others must not wait for a root that cannot take part */
    qc_status st = qc_dist_agree(d, d->rank == root && !c ? QC_ERR_NOMEM : QC_OK, e);
    ((qc_dist *)d)->nested--;
    if (st) {
        free(c);
        return st;
    }
    uint64_t mine = n; /* every rank's n into c on root */
    int rc = MPI_Gather(&mine, 1, MPI_UINT64_T, c, 1, MPI_UINT64_T, root, MPI_COMM_WORLD);
    size_t moved = 0;
    if (d->rank == root) {
        uint8_t *at = all;
        for (int r = 0; r < d->size && rc == MPI_SUCCESS; at += c[r], r++) {
            if (r == root) memcpy(gather ? at : p, gather ? p : at, n);
            else rc = transfer(at, c[r], r, !gather), moved += c[r];
        }
    } else {
        rc = transfer(p, n, root, gather);
        moved = n;
    }
    free(c);
    account(d, t0, gather == (d->rank != root) ? moved : 0, gather == (d->rank == root) ? moved : 0);
    return rc == MPI_SUCCESS ? QC_OK : mpi_fail(e, rc, gather ? "gather" : "scatter");
}

qc_status qc_dist_gather(const qc_dist *d, int root, const void *p, size_t n, void *all, qc_err *e) {
    return exchange(d, root, (void *)p, n, all, true, e);
}

qc_status qc_dist_scatter(const qc_dist *d, int root, const void *all, void *p, size_t n, qc_err *e) {
    return exchange(d, root, p, n, (void *)all, false, e);
}

qc_status qc_dist_check_same(const qc_dist *d, const char *text, const char *what, qc_err *e) {
    if (!d || d->size == 1) return QC_OK;
    uint64_t len = strlen(text);
    qc_status st = qc_dist_bcast(d, 0, &len, sizeof len, e);
    char *ref = st ? NULL : qc_malloc(len + 1, 1, e, what);
    if (!st && !ref) st = QC_ERR_NOMEM;
    st = qc_dist_agree(d, st, e);
    if (!st && d->rank == 0) memcpy(ref, text, len + 1);
    if (!st) st = qc_dist_bcast(d, 0, ref, len + 1, e);
    if (!st && strcmp(ref, text) != 0) {
        char a[400], b[400];
        qc_str_first_difference(ref, text, a, b, sizeof a);
        st = qc_fail(e, QC_ERR_ARG, "%s differs from rank 0's: rank 0 has \"%s\", this rank \"%s\"; every rank must "
                     "run the same qcalib on the same files with the same options", what, a, b);
    }
    free(ref);
    return qc_dist_agree(d, st, e);
}
