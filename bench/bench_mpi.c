/* bench_mpi.c — calibration over MPI ranks (issue 21, docs/distributed.md) measured on this
 * machine, and a PROJECTION past it. The job: `qcalib --method gptq --wbits 4 --groupsize 128`
 * on the SYNTHETIC 1b model (2048 wide, 16 blocks, FFN 5632; `qcalib synth`), 16 × 512 tokens
 * of tinystories_calib.txt, f32, run three ways:
 *   - `mpirun -np 2 qcalib … --threads 1`: two ranks of one thread each;
 *   - the plain run (no mpirun) on 2 threads, and on 1 thread. The 1-thread figures are
 *     bench_e2e's when its JSON lies beside OUT.json with the same job (`make bench` runs
 *     bench_e2e first, minutes before: that keeps this program to two runs of the job), else
 *     it runs here.
 * Prints:
 *   - each run's wall time and split, and the ratio of the 2-rank run to the plain ones;
 *   - per rank (summary.json's distributed.per_rank): its calibration seconds, the time inside
 *     collectives (waiting for the other rank included), its compute time (the difference),
 *     statistics and solves within it, and the bytes it sent and received;
 *   - bytes per block (every rank's bytes sent / 16) against the analytic figure, the sum of
 *     what calib/share.c and calib/runner.c exchange: each site's Hessian upper triangle and
 *     other statistics (with 2 ranks each rank sends its copy once: half to the pieces' owner,
 *     half as the owner's broadcast), each linear's result (codes 1 byte a weight, scales and
 *     zeros per group, g_idx, perm, its shape and log row) sent once by its owner, and for the
 *     checkpoint rank 1's activations gathered on rank 0;
 *   - the rate at which the 2 ranks move bytes here (this program run by `mpirun -np 2` with
 *     --transfer: dist.h's sum over 16 MB slices, as calib/share.c sums a Hessian, and its
 *     broadcast of 64 MB), and what the run's bytes cost at that rate;
 *   - a PROJECTION, labelled as one, of a 70B-shaped Llama (80 blocks, 8192 wide, FFN 28672, 64
 *     heads of 128 with 8 key/value heads) at 128 × 2048 tokens on 8 nodes × 32 cores, one rank
 *     of 32 threads per node, at the network bandwidth BENCH_NET_GBS (GB/s, default 10; also
 *     printed for 1 and 25 and at the rate measured here), from the per-core rates of the
 *     2-rank run and the analytic bytes per block. The assumptions are printed with it.
 *
 * usage: bench_mpi [OUT.json]        bench_mpi --transfer   (under mpirun, by this program)
 * Environment: QCALIB (the binary), QCALIB_SHARED, BENCH_DATA (the synthetic model, kept between
 * runs, as bench_e2e), BENCH_NET_GBS. Skipped, saying so, when QCALIB was built without MPI or
 * mpirun is not on the PATH. Measures, never asserts. */
#include "bench/bench.h"
#include "calib/calib.h"
#include "dist/dist.h"

#include <stdlib.h>
#include <string.h>

#define NSAMPLES 16
#define SEQLEN 512
#define GROUPSIZE 128
#define RANKS 2
#define SLICE_FLOATS ((size_t)1 << 22) /* calib/share.c's Hessian slices: 16 MB */
#define BCAST_BYTES ((size_t)64 << 20)
#define REPS 8

/* ---- what two ranks move per second (this program under mpirun) ---------------------------- */

/* One rank of the transfer measurement: REPS sums of a 16 MB slice, then REPS/2 broadcasts of
 * 64 MB from each rank in turn; rank 0 prints "transfer SUM_BYTES SUM_S BCAST_BYTES BCAST_S". */
static int transfer_main(void) {
    qc_dist *d = NULL;
    qc_err e = { "" };
    if (qc_dist_open(&d, &e) != QC_OK || !d) {
        fprintf(stderr, "bench_mpi --transfer: %s\n", d ? e.msg : "not started by mpirun, or built without MPI");
        qc_dist_close(d, false);
        return 1;
    }
    float *x = calloc(BCAST_BYTES, 1); /* zeros: repeated sums stay finite */
    qc_status st = qc_dist_agree(d, x ? QC_OK : QC_ERR_NOMEM, &e);
    if (!st) st = qc_dist_sum_f32(d, x, SLICE_FLOATS, &e); /* the connections, untimed */
    st = qc_dist_agree(d, st, &e);
    double t0 = qc_now();
    for (int i = 0; i < REPS && !st; i++) st = qc_dist_sum_f32(d, x, SLICE_FLOATS, &e);
    st = qc_dist_agree(d, st, &e);
    double t_sum = qc_now() - t0;
    t0 = qc_now();
    for (int i = 0; i < REPS / 2 && !st; i++) st = qc_dist_bcast(d, i % qc_dist_size(d), x, BCAST_BYTES, &e);
    st = qc_dist_agree(d, st, &e);
    double t_bcast = qc_now() - t0;
    if (qc_dist_rank(d) == 0) {
        if (st) fprintf(stderr, "bench_mpi --transfer: %s\n", e.msg);
        else printf("transfer %zu %.6f %zu %.6f\n", REPS * SLICE_FLOATS * sizeof(float), t_sum,
                    (size_t)REPS / 2 * BCAST_BYTES, t_bcast);
    }
    free(x);
    qc_dist_close(d, false);
    return st ? 1 : 0;
}

/* The link's rate in bytes/s from a 2-rank sum (each byte crosses twice: to the piece's owner
 * and back in its broadcast, one after the other) and from the broadcasts; 0 when not measured. */
static void measure_transfer(double *sum_rate, double *bcast_rate) {
    char self[1024], cmd[3000], line[256];
    *sum_rate = *bcast_rate = 0;
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return;
    self[n] = '\0';
    snprintf(cmd, sizeof cmd, "mpirun --oversubscribe --allow-run-as-root -np %d '%s' --transfer", RANKS, self);
    FILE *p = popen(cmd, "r");
    size_t sb = 0, bb = 0;
    double ts = 0, tb = 0;
    bool got = false;
    while (p && fgets(line, sizeof line, p))
        got = got || sscanf(line, "transfer %zu %lf %zu %lf", &sb, &ts, &bb, &tb) == 4;
    if (p && pclose(p) == 0 && got && ts > 0 && tb > 0) *sum_rate = 2.0 * sb / ts, *bcast_rate = bb / tb;
}

/* ---- the runs --------------------------------------------------------------------------------- */

/* A run's wall time and summary.json's split. */
typedef struct split { double wall, calib, forward, stats, solve, write; } split;

/* Whether name is an executable on the PATH. (Run by its name: Open MPI takes an mpirun
 * started by its full path as a --prefix.) */
static bool on_path(const char *name) {
    char buf[1024];
    const char *path = getenv("PATH");
    for (const char *p = path; p && *p;) {
        size_t len = strcspn(p, ":");
        snprintf(buf, sizeof buf, "%.*s/%s", (int)len, p, name);
        if (len && access(buf, X_OK) == 0) return true;
        p += len + (p[len] == ':');
    }
    return false;
}

/* Whether `q --version` says MPI is on. */
static bool built_with_mpi(const char *q) {
    char cmd[1100], line[256];
    snprintf(cmd, sizeof cmd, "'%s' --version 2>/dev/null", q);
    FILE *p = popen(cmd, "r");
    bool on = false;
    while (p && fgets(line, sizeof line, p)) on = on || strncmp(line, "MPI: on", 7) == 0;
    if (p) pclose(p);
    return on;
}

/* Runs the job: argv up to its NULL, then `--threads T --out OUT`. Fills s and, when keep is
 * given, hands back summary.json (else frees it); OUT is removed either way. Returns 0 or -1. */
static int run_job(char **argv, int argc, const char *threads, const char *out, split *s, cJSON **keep) {
    char rm_cmd[1100];
    snprintf(rm_cmd, sizeof rm_cmd, "rm -rf '%s'", out);
    argv[argc] = "--threads", argv[argc + 1] = (char *)threads, argv[argc + 2] = "--out", argv[argc + 3] = (char *)out;
    argv[argc + 4] = "--force", argv[argc + 5] = "--quiet", argv[argc + 6] = NULL;
    double wall = 0;
    fflush(stdout); /* before the child's own lines */
    int rc = bench_run(argv, &wall, NULL);
    char summary[1100];
    snprintf(summary, sizeof summary, "%s/summary.json", out);
    cJSON *j = rc == 0 ? bench_read_json(summary) : NULL;
    if (system(rm_cmd) != 0) fprintf(stderr, "bench_mpi: could not remove %s\n", out);
    if (!j) return fprintf(stderr, "bench_mpi: %s failed (exit %d) or wrote no summary.json\n", argv[0], rc), -1;
    *s = (split){ wall, bench_num(j, "seconds"), bench_num(j, "forward_seconds"), bench_num(j, "statistics_seconds"),
                  bench_num(j, "solve_seconds"), bench_num(j, "write_seconds") };
    if (keep) *keep = j;
    else cJSON_Delete(j);
    return 0;
}

/* bench_e2e's 1-thread run of the same job in dir/bench_e2e.json (this make bench's), if any. */
static bool e2e_figures(const char *json_out, split *s) {
    if (!json_out) return false;
    char path[1100];
    const char *slash = strrchr(json_out, '/');
    snprintf(path, sizeof path, "%.*s%sbench_e2e.json", slash ? (int)(slash - json_out) : 0, json_out, slash ? "/" : "");
    cJSON *j = bench_read_json(path);
    const cJSON *compute = j ? cJSON_GetObjectItem(j, "e2e_1b_compute") : NULL;
    bool same = j && bench_num(j, "e2e_1b_threads") == 1 && bench_num(j, "e2e_1b_nsamples") == NSAMPLES &&
                cJSON_IsString(compute) && strcmp(compute->valuestring, "f32") == 0;
    if (same)
        *s = (split){ bench_num(j, "e2e_1b_s"), bench_num(j, "e2e_1b_calib_s"), bench_num(j, "e2e_1b_forward_s"),
                      bench_num(j, "e2e_1b_stats_s"), bench_num(j, "e2e_1b_solve_s"), bench_num(j, "e2e_1b_write_s") };
    cJSON_Delete(j);
    return same;
}

/* ---- what a block exchanges (calib/share.c, calib/runner.c's checkpoint) ---------------------- */

/* Bytes one rank contributes to a site's sums: the Hessian's upper triangle (f32), then the
 * token count, max|x|, max, min (MPI's reductions) and Σ|x|, Σx, Σx² (f64). */
static double site_stat_bytes(const qc_config *c, qc_site s, double *hessian) {
    double n = qc_site_width(c, s);
    *hessian = n * (n + 1) / 2 * sizeof(float);
    return *hessian + 8 + 3 * 4 * n + 3 * 8 * n;
}

/* Bytes of one linear's result as its owner broadcasts it (GPTQ, groupsize GROUPSIZE): its
 * shape (nine int32), its log row, codes (one byte a weight), scales and zeros (f32 per group),
 * g_idx and perm (int32 per column). */
static double result_bytes(const qc_config *c, qc_linear l) {
    int rows, cols;
    qc_weight_shape(c, qc_linear_weight(l), &rows, &cols);
    double groups = (double)rows * ((cols + GROUPSIZE - 1) / GROUPSIZE);
    return 9 * 4 + sizeof(qc_layer_report) + (double)rows * cols + 2 * groups * 4 + 2.0 * cols * 4;
}

typedef struct block_bytes { double hessians, stats, results, checkpoint; } block_bytes;

/* One block's payloads; the checkpoint: ntok_other tokens' activations (f32) to rank 0. */
static block_bytes block_payload(const qc_config *c, double ntok_other) {
    block_bytes b = { 0 };
    for (int s = 0; s < QC_SITE_COUNT; s++) {
        double h;
        b.stats += site_stat_bytes(c, (qc_site)s, &h);
        b.hessians += h;
    }
    for (int l = 0; l < QC_LIN_COUNT; l++) b.results += result_bytes(c, (qc_linear)l);
    b.checkpoint = ntok_other * c->dim * sizeof(float);
    return b;
}

/* ---- the projection ----------------------------------------------------------------------- */

/* Per-core rates: forward and statistics FLOP/s, GPTQ work units/s, weights written/s. */
typedef struct rates { double forward, stats, solve, write; } rates;

typedef struct projection { double forward, stats, sums, solves, results, checkpoint, write, total; } projection;

static double log2_ceil(int n) {
    int k = 0;
    while ((1 << k) < n) k++;
    return k;
}

/* The slowest rank's solve work at site s when its linears go, largest first, each to the
 * least loaded of n ranks (calib/share.c's rule within a site). */
static double site_solve_work(const qc_config *c, qc_site s, int n) {
    double load[QC_LIN_COUNT] = { 0 }, worst = 0;
    bool done[QC_LIN_COUNT] = { false };
    int slots = n < QC_LIN_COUNT ? n : QC_LIN_COUNT;
    for (;;) {
        int pick = -1;
        for (int l = 0; l < QC_LIN_COUNT; l++)
            if (qc_linear_site((qc_linear)l) == s && !done[l] &&
                (pick < 0 || bench_solve_work(c, (qc_linear)l) > bench_solve_work(c, (qc_linear)pick)))
                pick = l;
        if (pick < 0) return worst;
        int best = 0;
        for (int r = 1; r < slots; r++)
            if (load[r] < load[best]) best = r;
        load[best] += bench_solve_work(c, (qc_linear)pick), done[pick] = true;
        worst = load[best] > worst ? load[best] : worst;
    }
}

/* Calibrating c (n_layers blocks) on nwin windows of seqlen tokens with one rank of `cores`
 * threads on each of `nodes` nodes, at bw bytes/s between them. Per block: each rank's share of
 * the forward and statistics at `cores` × the per-core rates; per site, the sums as dist/mpi.c
 * makes them (each piece gathered into its owner, (N−1) copies through one link, then a
 * broadcast of ⌈log₂N⌉ steps), the slowest owner's solves, the results' broadcasts one after
 * another; the checkpoint's activations into rank 0; then rank 0 writes. */
static projection project(const qc_config *c, int nwin, int seqlen, int nodes, int cores, double bw, const rates *r) {
    qc_config one = *c;
    one.n_layers = 1;
    int share = (nwin + nodes - 1) / nodes; /* the largest share sets the pace */
    bench_work w = bench_calib_work(&one, share, seqlen, true);
    double ntok = (double)nwin * seqlen, steps = log2_ceil(nodes);
    block_bytes b = block_payload(c, ntok - (double)(nwin / nodes) * seqlen);
    projection p = { 0 };
    p.forward = w.forward / (cores * r->forward);
    p.stats = w.stats / (cores * r->stats);
    p.sums = nodes > 1 ? b.stats * ((nodes - 1) + steps) / bw : 0;
    for (int s = 0; s < QC_SITE_COUNT; s++) p.solves += site_solve_work(c, (qc_site)s, nodes) / (cores * r->solve);
    p.results = b.results * steps / bw;
    p.checkpoint = nodes > 1 ? b.checkpoint / bw : 0;
    double L = c->n_layers;
    p = (projection){ p.forward * L, p.stats * L, p.sums * L, p.solves * L, p.results * L, p.checkpoint * L,
                      bench_calib_work(c, 1, 1, true).weights / r->write, 0 };
    p.total = p.forward + p.stats + p.sums + p.solves + p.results + p.checkpoint + p.write;
    return p;
}

static void print_projection(const char *label, const projection *p) {
    printf("  %-38s %7.2f %7.2f %7.2f %7.2f %8.3f %7.3f %6.3f %8.2f\n", label, p->forward / 3600, p->stats / 3600,
           p->sums / 3600, p->solves / 3600, p->results / 3600, p->checkpoint / 3600, p->write / 3600, p->total / 3600);
}

/* Llama-2-70B / Llama-3-70B blocks: 8192 wide, 64 heads of 128, 8 key/value heads, FFN 28672. */
static qc_config llama_70b(void) {
    return (qc_config){ .dim = 8192, .hidden_dim = 28672, .n_layers = 80, .n_heads = 64, .n_kv_heads = 8,
                        .head_dim = 128, .vocab_size = 32000, .seq_len = 4096, .norm_eps = 1e-5f, .rope_theta = 10000 };
}

/* ---- main ------------------------------------------------------------------------------------ */

static void skipped(const char *json_out, const char *why) {
    printf("bench_mpi: SKIPPED: %s\n", why);
    FILE *f = json_out ? fopen(json_out, "w") : NULL;
    if (f) fprintf(f, "{\"mpi_skipped\": \"%s\"}\n", why), fclose(f);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--transfer") == 0) return transfer_main();
    const char *json_out = argc > 1 ? argv[1] : NULL;
    const char *q = bench_env_or("QCALIB", "build/qcalib"), *shared = bench_env_or("QCALIB_SHARED", "../shared");
    const char *data = bench_env_or("BENCH_DATA", "build/bench-data");
    double net_gbs = atof(bench_env_or("BENCH_NET_GBS", "10"));
    if (!built_with_mpi(q)) return skipped(json_out, "this qcalib was built without MPI (qcalib --version)"), 0;
    if (!on_path("mpirun")) return skipped(json_out, "no mpirun on the PATH"), 0;
    if (!qc_dist_built()) return skipped(json_out, "this benchmark was built without MPI"), 0;
    if (net_gbs <= 0) net_gbs = 10;

    char model[1024], out[1024], calib[1024], mkdir_cmd[1100], load[64] = "?";
    snprintf(model, sizeof model, "%s/synth-1b", data);
    snprintf(out, sizeof out, "%s/quantized-mpi", data);
    snprintf(calib, sizeof calib, "%s/data/tinystories/tinystories_calib.txt", shared);
    snprintf(mkdir_cmd, sizeof mkdir_cmd, "mkdir -p '%s'", data);
    FILE *la = fopen("/proc/loadavg", "r");
    if (la && fgets(load, sizeof load, la)) load[strcspn(load, " ")] = '\0';
    if (la) fclose(la);
    printf("bench_mpi: qcalib --method gptq --wbits 4 --groupsize %d on the SYNTHETIC 1b model, %d x %d tokens, "
           "f32: %d ranks of 1 thread under mpirun, and the plain run on 2 threads and on 1 (load average at start %s)\n",
           GROUPSIZE, NSAMPLES, SEQLEN, RANKS, load);
    if (system(mkdir_cmd) != 0) return fprintf(stderr, "bench_mpi: cannot create %s\n", data), 1;
    if (bench_synth_model("bench_mpi", q, "1b", NULL, model) != 0) return 1;

    double sum_rate, link;
    measure_transfer(&sum_rate, &link);
    char ns[16], sl[16], gs[16], np[16];
    snprintf(ns, sizeof ns, "%d", NSAMPLES), snprintf(sl, sizeof sl, "%d", SEQLEN);
    snprintf(gs, sizeof gs, "%d", GROUPSIZE), snprintf(np, sizeof np, "%d", RANKS);
    char *job[] = { (char *)q, "--method", "gptq", "--wbits", "4", "--groupsize", gs, "--model", model, "--calib", calib,
                    "--nsamples", ns, "--seqlen", sl, "--compute", "f32" };
    enum { JOB = sizeof job / sizeof *job, PRE = 5 }; /* run_job adds 6 arguments and the NULL */
    char *argv_mpi[PRE + JOB + 7] = { "mpirun", "--oversubscribe", "--allow-run-as-root", "-np", np };
    char *argv_plain[JOB + 7];
    memcpy(argv_mpi + PRE, job, sizeof job);
    memcpy(argv_plain, job, sizeof job);
    split m, p2, p1;
    cJSON *sum = NULL;
    if (run_job(argv_mpi, PRE + JOB, "1", out, &m, &sum) != 0) return 1;
    if (run_job(argv_plain, JOB, "2", out, &p2, NULL) != 0) return cJSON_Delete(sum), 1;
    bool reused = e2e_figures(json_out, &p1);
    if (!reused && run_job(argv_plain, JOB, "1", out, &p1, NULL) != 0) return cJSON_Delete(sum), 1;

    const cJSON *dj = cJSON_GetObjectItem(sum, "distributed"), *pr = dj ? cJSON_GetObjectItem(dj, "per_rank") : NULL;
    const cJSON *route = cJSON_GetObjectItem(sum, "stage_inputs");
    bool kept = cJSON_IsString(route) && strcmp(route->valuestring, "kept") == 0;
    if (cJSON_GetArraySize(pr) != RANKS) {
        cJSON_Delete(sum);
        return fprintf(stderr, "bench_mpi: summary.json has no distributed.per_rank for %d ranks\n", RANKS), 1;
    }
    printf("\n  %-36s %8s %8s %8s %8s %8s %7s %s\n", "run", "wall s", "calib s", "forward", "stats", "solve", "write",
           "its wall / 2 ranks'");
    const split *runs[3] = { &m, &p2, &p1 };
    const char *names[3] = { "mpirun -np 2, 1 thread each", "plain, 2 threads",
                             reused ? "plain, 1 thread (bench_e2e's)" : "plain, 1 thread" };
    for (int i = 0; i < 3; i++)
        printf("  %-36s %8.1f %8.1f %8.1f %8.1f %8.1f %7.1f %.2fx\n", names[i], runs[i]->wall, runs[i]->calib,
               runs[i]->forward, runs[i]->stats, runs[i]->solve, runs[i]->write, runs[i]->wall / m.wall);
    printf("  (the 2-rank row's split is rank 0's; its forward excludes time in collectives)\n");

    /* per rank */
    qc_config c1b = bench_shape_config("1b");
    bench_work w1b = bench_calib_work(&c1b, NSAMPLES, SEQLEN, kept);
    double sent_all = 0, comm_max = 0, fw_sum = 0, st_sum = 0, so_sum = 0;
    printf("\n  %-5s %8s %8s %16s %10s %8s %8s %8s %9s %9s\n", "rank", "windows", "calib s", "in collectives", "compute s",
           "forward", "stats", "solve", "sent MB", "recv MB");
    for (int r = 0; r < RANKS; r++) {
        const cJSON *o = cJSON_GetArrayItem(pr, r);
        double secs = bench_num(o, "seconds"), comm = bench_num(o, "communication_seconds");
        double st = bench_num(o, "statistics_seconds"), so = bench_num(o, "solve_seconds");
        double sent = bench_num(o, "bytes_sent"), recv = bench_num(o, "bytes_received");
        int wins = NSAMPLES * (r + 1) / RANKS - NSAMPLES * r / RANKS;
        printf("  %-5d %8d %8.1f %16.1f %10.1f %8.1f %8.1f %8.1f %9.1f %9.1f\n", r, wins, secs, comm, secs - comm,
               secs - comm - st - so, st, so, sent / 1e6, recv / 1e6);
        sent_all += sent, comm_max = comm > comm_max ? comm : comm_max;
        fw_sum += secs - comm - st - so, st_sum += st, so_sum += so;
    }

    /* bytes per block: measured against the analytic payloads */
    int L = c1b.n_layers;
    block_bytes b = block_payload(&c1b, (double)(NSAMPLES - NSAMPLES / RANKS) * SEQLEN);
    double analytic = 2 * (RANKS - 1) * b.stats + b.results + b.checkpoint; /* each rank sends 2(N-1)/N of a sum */
    printf("\n  bytes per block, every rank's sent / %d blocks: %.1f MB measured; analytic %.1f MB = Hessian upper "
           "triangles %.1f MB and other statistics %.2f MB, each rank's copy sent once (2 x %.1f), results %.1f MB "
           "(sent once by their owners), checkpoint: rank 1's activations to rank 0 %.1f MB; measured/analytic %.3f\n",
           L, sent_all / L / 1e6, analytic / 1e6, b.hessians / 1e6, (b.stats - b.hessians) / 1e6, b.stats / 1e6,
           b.results / 1e6, b.checkpoint / 1e6, sent_all / L / analytic);
    if (link > 0)
        printf("  2 ranks here move %.2f GB/s (broadcasts of 64 MB; %.2f GB/s through dist.h's sums of 16 MB slices, "
               "each byte crossing twice): the run's %.2f GB take %.1f s of the %.1f s the busier rank spent in collectives; "
               "the rest is waiting for the other rank (its solves, its forward)\n",
               link / 1e9, sum_rate / 1e9, sent_all / 1e9, sent_all / link, comm_max);
    else
        printf("  (the transfer rate between 2 ranks could not be measured: mpirun %s --transfer failed)\n", argv[0]);

    /* per-core rates of the 2-rank run: the work of all windows over the ranks' summed seconds */
    rates r = { w1b.forward / fw_sum, w1b.stats / st_sum, w1b.solve / so_sum, w1b.weights / m.write };
    printf("\n  per-core rates of the 2-rank run (both cores busy): forward %.1f GFLOP/s, statistics %.1f GFLOP/s "
           "(XtX, full square), GPTQ %.2f G(cols^3 + rows*cols^2)/s, writing %.0f Mweights/s\n",
           r.forward * 1e-9, r.stats * 1e-9, r.solve * 1e-9, r.write * 1e-6);
    if (p1.forward > 0 && p1.stats > 0 && p1.solve > 0)
        printf("  (the plain 1-thread run's: forward %.1f, statistics %.1f GFLOP/s, GPTQ %.2f G/s)\n",
               w1b.forward / p1.forward * 1e-9, w1b.stats / p1.stats * 1e-9, w1b.solve / p1.solve * 1e-9);

    /* the PROJECTION */
    qc_config big = llama_70b();
    enum { NODES = 8, CORES = 32, NWIN = 128, WINLEN = 2048 };
    block_bytes bb = block_payload(&big, (double)(NWIN - NWIN / NODES) * WINLEN);
    printf("\n  PROJECTION (not a measurement): 70B-shaped Llama (80 blocks, 8192 wide, FFN 28672, 64 heads, 8 kv heads), "
           "%d x %d tokens, GPTQ w4 g%d, f32\n", NWIN, WINLEN, GROUPSIZE);
    printf("  per block: Hessian upper triangles %.2f GB + other statistics %.3f GB summed, results %.2f GB broadcast, "
           "checkpoint %.2f GB gathered on rank 0\n", bb.hessians / 1e9, (bb.stats - bb.hessians) / 1e9, bb.results / 1e9,
           bb.checkpoint / 1e9);
    printf("  %-38s %7s %7s %7s %7s %8s %7s %6s %8s\n", "hours", "forward", "stats", "sums", "solves", "results",
           "ckpt", "write", "total");
    projection one = project(&big, NWIN, WINLEN, 1, CORES, 1, &r);
    print_projection("1 node x 32 cores", &one);
    double bws[5] = { 1e9, 10e9, 25e9, net_gbs * 1e9, link };
    double at[5] = { 0 };
    for (int i = 0; i < 5; i++) {
        if (bws[i] <= 0 || (i == 3 && (net_gbs == 1 || net_gbs == 10 || net_gbs == 25))) continue;
        char label[64];
        if (i == 4) snprintf(label, sizeof label, "8 nodes x 32 cores, %.2f GB/s (here)", bws[i] / 1e9);
        else snprintf(label, sizeof label, "8 nodes x 32 cores, %g GB/s", bws[i] / 1e9);
        projection p = project(&big, NWIN, WINLEN, NODES, CORES, bws[i], &r);
        print_projection(label, &p);
        at[i] = p.total;
    }
    projection pn = project(&big, NWIN, WINLEN, NODES, CORES, net_gbs * 1e9, &r);
    printf("  at %.3g GB/s (BENCH_NET_GBS): %.2f h against %.2f h on one node, %.2fx; the solves (one owner per linear, "
           "down alone on one rank) are %.0f%% of it\n", net_gbs, pn.total / 3600, one.total / 3600, one.total / pn.total,
           100 * pn.solves / pn.total);
    printf("  assumes: one rank of 32 threads per node, each core at this run's per-core rates (perfect scaling "
           "within a node, none of the memory-bandwidth limits of 32 cores); the forward's and statistics' work split "
           "evenly by windows (16 per rank); the solves of a site on distinct ranks, the slowest one setting the pace; "
           "every transfer at the stated rate on each node's link, no latency, nothing overlapped: a sum's pieces "
           "each gathered into their owner ((N-1) copies through its link) then broadcast (ceil(log2 N) steps), as "
           "dist/mpi.c does them one after another; checkpoint writes to disk and block loading not counted "
           "separately (inside the forward rate here)\n");

    if (json_out) {
        FILE *f = fopen(json_out, "w");
        if (!f) return perror(json_out), cJSON_Delete(sum), 1;
        fprintf(f, "{\"mpi_2ranks_s\": %.1f, \"mpi_plain_2threads_s\": %.1f, \"mpi_plain_1thread_s\": %.1f, "
                   "\"mpi_rank1_in_collectives_s\": %.1f, \"mpi_bytes_per_block_mb\": %.1f, "
                   "\"mpi_analytic_bytes_per_block_mb\": %.1f, \"mpi_link_gbs\": %.2f, "
                   "\"projection_70b_1x32_h\": %.2f, \"projection_70b_8x32_1gbs_h\": %.2f, "
                   "\"projection_70b_8x32_10gbs_h\": %.2f, \"projection_70b_8x32_25gbs_h\": %.2f}\n",
                m.wall, p2.wall, p1.wall, comm_max, sent_all / L / 1e6, analytic / 1e6, link / 1e9, one.total / 3600,
                at[0] / 3600, at[1] / 3600, at[2] / 3600);
        fclose(f);
    }
    cJSON_Delete(sum);
    return 0;
}
