/* log.c — the reporting interface of library code, the clock, and thread settings. */
#include "base/base.h"

#include <cblas.h>
#include <stdarg.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

void qc_logf(const qc_log *log, qc_log_level level, const char *fmt, ...) {
    if (!log || !log->message) return;
    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    log->message(log->ctx, level, text);
}

void qc_progress(const qc_log *log, const char *stage, int64_t done, int64_t total,
                 const char *detail) {
    if (log && log->progress) log->progress(log->ctx, stage, done, total, detail);
}

double qc_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One threading runtime at a time: qcalib's loops (and the forward pass's matrix products,
 * split across threads) use OpenMP, so OpenBLAS is kept single-threaded; its own pthreads
 * spin between calls and, sharing the cores with OpenMP's, made two threads three times
 * slower than one on small models. Code whose work is inside OpenBLAS/LAPACK (a large
 * Cholesky, say) asks for its threads with qc_blas_threads. */
static int threads_used;

int qc_threads_from_env(void) {
    const char *env = getenv("OMP_NUM_THREADS");
    char *end;
    long n = env ? strtol(env, &end, 10) : 0;
    return n > 0 && n <= 4096 && (*end == '\0' || *end == ',') ? (int)n : 0;
}

int qc_set_threads(int n) {
    if (n <= 0) n = qc_threads_from_env();
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    openblas_set_num_threads(1);
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    threads_used = n;
    return n;
}

int qc_get_threads(void) { return threads_used ? threads_used : 1; }

void qc_blas_threads(bool parallel) { openblas_set_num_threads(parallel ? qc_get_threads() : 1); }
