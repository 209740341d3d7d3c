/* ranks.c — the quantize command under mpirun (docs/distributed.md): rank 0 alone speaks;
 * the other ranks' output goes to /dev/null, but for an error only that rank knows (one the
 * others learned, rank 0 reports, naming the rank). The ranks on one machine share its cores. */
#include "cli/cli.h"

#include <fcntl.h>
#include <unistd.h>

static int stderr_fd = -1; /* a rank > 0: the real stderr, for its own errors */
static bool alone;         /* this rank failed where the others may be waiting for it */

int cli_ranks_open(qc_dist **d) {
    qc_err e = { "" };
    qc_status st = qc_dist_open(d, &e);
    if (qc_dist_rank(*d) > 0) {
        fflush(stdout), fflush(stderr);
        int null = open("/dev/null", O_WRONLY);
        stderr_fd = dup(2);
        if (null >= 0) dup2(null, 1), dup2(null, 2), close(null);
    }
    if (!st) return 0;
    int rc = cli_ranks_fail(*d, &e);
    cli_ranks_close(*d);
    *d = NULL;
    return rc;
}

int cli_ranks_fail(const qc_dist *d, const qc_err *e) {
    alone = !qc_dist_failed_together(d);
    if (qc_dist_rank(d) == 0) return cli_fail(e);
    if (alone && stderr_fd >= 0) dprintf(stderr_fd, "qcalib: rank %d: %s\n", qc_dist_rank(d), e->msg);
    return 1;
}

void cli_ranks_close(qc_dist *d) { qc_dist_close(d, alone); }

int cli_ranks_threads(const qc_dist *d, long threads) {
    if (threads > 0 || qc_dist_local_size(d) == 1 || qc_threads_from_env()) return cli_threads(threads);
    long share = sysconf(_SC_NPROCESSORS_ONLN) / qc_dist_local_size(d);
    return cli_threads(share > 0 ? share : 1);
}
