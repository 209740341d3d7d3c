/* bench_e2e.c — the whole tool at a real model's shapes: `qcalib --method gptq --wbits 4
 * --groupsize 128` (GPTQ format) on the SYNTHETIC 1b model (2048 wide, 16 blocks, FFN 5632,
 * vocab 32000, F16; `qcalib synth`), calibrated on nsamples × 512 tokens of
 * tinystories_calib.txt, on BENCH_THREADS threads (default 1, as the saved figure below), with
 * --compute BENCH_COMPUTE (default f32).
 * Prints:
 *   - the wall time and its split from summary.json (forward passes with block loading,
 *     statistics, GPTQ solves, writing), the peak resident memory of the child (wait4's
 *     ru_maxrss, which counts resident pages of the mapped model too) next to the memory plan
 *     qcalib printed (target: peak RSS <= 1.2 × the plan);
 *   - the ratio to the same job on main before the speed work (BEFORE_*: measured with that
 *     commit's binary, same command, same machine, one thread);
 *   - a PROJECTION, labelled as one, of a 7B-shaped model (Llama-2-7B) at 128 × 2048 tokens on
 *     this machine, each stage's work at 7B divided by the rate this run measured for it:
 *     forward FLOPs (the linears as often as the calibration route runs them, attention),
 *     XᵀX FLOPs of the four sites, a GPTQ work proxy Σ (cols³ + rows·cols²) per linear
 *     (factorizations and lazy updates), and weights written.
 *
 * usage: bench_e2e [OUT.json [SHAPE NSAMPLES]]   (default 1b 16; `make bench-7b`: 7b 16)
 * Environment: QCALIB (the binary), QCALIB_SHARED, BENCH_DATA (where the synthetic model is
 * kept between runs; the quantized output is removed afterwards), BENCH_THREADS.
 * Measures, never asserts. */
#include "bench/bench.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* The same job at the last commit before the speed work (oneDNN products, kept intermediates):
 * synthetic 1b, 16 × 512 tokens, --threads 1, wall seconds, measured on this machine with that
 * commit's build (`git worktree add ../old 9ec0578 && make -C ../old`, then this command). */
#define BEFORE_COMMIT "9ec0578"
#define BEFORE_SECONDS 598.6

static const char *env_or(const char *name, const char *fallback) {
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

/* Runs argv; its wall seconds and peak RSS in KB. Returns the exit status (-1: not run). */
static int run(char *const argv[], double *seconds, long *maxrss_kb) {
    double t0 = qc_now();
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        execv(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) return -1;
    *seconds = qc_now() - t0;
    *maxrss_kb = ru.ru_maxrss;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static double num(const cJSON *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItem(j, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* Per-stage work of calibrating a model of c's shapes on nwin windows of seqlen tokens. */
typedef struct work { double forward, stats, solve, weights; } work;

static work model_work(const qc_config *c, int nwin, int seqlen, bool kept) {
    double ntok = (double)nwin * seqlen, q = (double)c->n_heads * c->head_dim, kv = (double)c->n_kv_heads * c->head_dim;
    double d = c->dim, h = c->hidden_dim;
    /* 2 FLOPs per multiply-add per token: {q,k,v}, o, {gate,up}, down */
    double lqkv = 2 * ntok * d * (q + 2 * kv), lo = 2 * ntok * q * d, lgu = 2 * ntok * 2 * d * h, ld = 2 * ntok * h * d;
    double att = 4.0 * nwin * (double)seqlen * seqlen * c->head_dim * c->n_heads;
    /* true-sequential: kept intermediates run each linear once; recomputing runs the block up to
     * each site in turn and once more in full (4·qkv + 3·o + 2·gate_up + down, attention 4×) */
    double fw = kept ? lqkv + lo + lgu + ld + att : 4 * lqkv + 3 * lo + 2 * lgu + ld + 4 * att;
    double st = 2 * ntok * (2 * d * d + q * q + h * h); /* XᵀX, the full square, of the four sites */
    double gq = 0, weights = 0;
    int rows[7] = { (int)q, (int)kv, (int)kv, c->dim, c->hidden_dim, c->hidden_dim, c->dim };
    int cols[7] = { c->dim, c->dim, c->dim, (int)q, c->dim, c->dim, c->hidden_dim };
    for (int i = 0; i < 7; i++) {
        double n = cols[i];
        gq += n * n * n + rows[i] * n * n;
        weights += (double)rows[i] * n;
    }
    return (work){ fw * c->n_layers, st * c->n_layers, gq * c->n_layers, weights * c->n_layers };
}

static qc_config shape_config(const char *shape) {
    qc_config c = strcmp(shape, "7b") == 0 ? bench_7b_config() : bench_1b_config();
    c.n_layers = strcmp(shape, "7b") == 0 ? 32 : 16;
    return c;
}

int main(int argc, char **argv) {
    const char *shape = argc > 2 ? argv[2] : "1b", *nsamples = argc > 3 ? argv[3] : "16";
    const char *q = env_or("QCALIB", "build/qcalib"), *shared = env_or("QCALIB_SHARED", "../shared");
    const char *data = env_or("BENCH_DATA", "build/bench-data"), *threads = env_or("BENCH_THREADS", "1");
    const char *compute = env_or("BENCH_COMPUTE", "f32");
    char model[1024], out[1024], calib[1024], summary[1100], mkdir_cmd[1100], rm_cmd[1100];
    snprintf(model, sizeof model, "%s/synth-%s", data, shape);
    snprintf(out, sizeof out, "%s/quantized-%s", data, shape);
    snprintf(calib, sizeof calib, "%s/data/tinystories/tinystories_calib.txt", shared);
    snprintf(summary, sizeof summary, "%s/summary.json", out);
    snprintf(mkdir_cmd, sizeof mkdir_cmd, "mkdir -p '%s'", data);
    snprintf(rm_cmd, sizeof rm_cmd, "rm -rf '%s'", out);
    if (system(mkdir_cmd) != 0) return fprintf(stderr, "bench_e2e: cannot create %s\n", data), 1;
    printf("bench_e2e: qcalib --method gptq --wbits 4 --groupsize 128 on the SYNTHETIC %s model, nsamples %s, seqlen 512, "
           "%s thread%s, --compute %s\n", shape, nsamples, threads, strcmp(threads, "1") == 0 ? "" : "s", compute);

    double synth_s = 0;
    long synth_rss = 0;
    if (!qc_path_exists(model)) {
        char *sargv[] = { (char *)q, "synth", "--shape", (char *)shape, "--out", model, "--quiet", NULL };
        int rc = run(sargv, &synth_s, &synth_rss);
        if (rc != 0) return fprintf(stderr, "bench_e2e: qcalib synth failed (exit %d)\n", rc), 1;
        printf("  wrote %s in %.1f s (peak RSS %.0f MB)\n", model, synth_s, synth_rss / 1024.0);
    }
    char *qargv[] = { (char *)q, "--method", "gptq", "--wbits", "4", "--groupsize", "128", "--model", model, "--calib",
                      calib, "--nsamples", (char *)nsamples, "--seqlen", "512", "--threads", (char *)threads,
                      "--compute", (char *)compute, "--out", out, "--force", "--quiet", NULL };
    double secs = 0;
    long rss = 0;
    int rc = run(qargv, &secs, &rss);
    if (rc != 0) {
        if (system(rm_cmd) != 0) fprintf(stderr, "bench_e2e: could not remove %s\n", out);
        return fprintf(stderr, "bench_e2e: qcalib quantize failed (exit %d)\n", rc), 1;
    }
    char *text = NULL;
    size_t len = 0;
    qc_err e = { "" };
    cJSON *j = !qc_read_file(summary, 1 << 20, &text, &len, &e) ? cJSON_Parse(text) : NULL;
    free(text);
    if (system(rm_cmd) != 0) fprintf(stderr, "bench_e2e: could not remove %s\n", out);
    if (!j) return fprintf(stderr, "bench_e2e: %s: not readable\n", summary), 1;
    const cJSON *mp = cJSON_GetObjectItem(j, "memory_plan_mb");
    double plan = mp ? num(mp, "peak") : -1, calib_s = num(j, "seconds"), fw = num(j, "forward_seconds");
    double st = num(j, "statistics_seconds"), so = num(j, "solve_seconds"), wr = num(j, "write_seconds");
    const cJSON *route = cJSON_GetObjectItem(j, "stage_inputs");
    bool kept = cJSON_IsString(route) && strcmp(route->valuestring, "kept") == 0;
    double rss_mb = rss / 1024.0;
    printf("\n  %-20s %8s %9s %9s %9s %7s %8s %12s %8s\n", "run", "wall s", "calib s", "forward", "stats", "solve",
           "write", "peak RSS MB", "plan MB");
    printf("  %-20s %8.1f %9.1f %9.1f %9.1f %7.1f %8.1f %12.0f %8.0f   RSS/plan %.2f (target <= 1.2)\n",
           "gptq w4 g128", secs, calib_s, fw, st, so, wr, rss_mb, plan, plan > 0 ? rss_mb / plan : 0.0);
    printf("  intermediates between true-sequential stages: %s\n", kept ? "kept" : "recomputed");
    bool comparable = strcmp(shape, "1b") == 0 && strcmp(nsamples, "16") == 0 && strcmp(threads, "1") == 0;
    if (comparable && BEFORE_SECONDS > 0)
        printf("  before the speed work (main at %s, same job, f32, the only type it had): %.0f s; now (%s) %.1f s: "
               "%.2fx faster (target >= 4x)\n", BEFORE_COMMIT, BEFORE_SECONDS, compute, secs, BEFORE_SECONDS / secs);

    if (fw <= 0 || st <= 0 || so <= 0 || wr <= 0) { /* a binary from before the time split */
        printf("  (no time split in this binary's summary.json: no per-stage rates, no projection)\n");
        cJSON_Delete(j);
        return 0;
    }
    /* the PROJECTION: 7B at 128 × 2048 from this run's per-stage rates */
    qc_config here = shape_config(shape), big = shape_config("7b");
    work w = model_work(&here, atoi(nsamples), 512, kept);
    double r_fw = w.forward / fw, r_st = w.stats / st, r_so = w.solve / so, r_wr = w.weights / wr;
    printf("\n  measured rates: forward %.1f GFLOP/s, statistics %.1f GFLOP/s, GPTQ %.2f Gunit/s (cols^3 + rows*cols^2), "
           "writing %.0f Mweights/s\n", r_fw * 1e-9, r_st * 1e-9, r_so * 1e-9, r_wr * 1e-6);
    double proj[2];
    for (int k = 0; k < 2; k++) {
        work b = model_work(&big, 128, 2048, k == 1);
        proj[k] = b.forward / r_fw + b.stats / r_st + b.solve / r_so + b.weights / r_wr;
        printf("  PROJECTION, 7B-shaped (Llama-2-7B), 128 x 2048 tokens, intermediates %s: forward %.2f h, statistics "
               "%.2f h, solves %.2f h, writing %.3f h = %.1f h (target <= 8 h)\n", k ? "kept" : "recomputed",
               b.forward / r_fw / 3600, b.stats / r_st / 3600, b.solve / r_so / 3600, b.weights / r_wr / 3600,
               proj[k] / 3600);
    }
    if (argc > 1) {
        FILE *f = fopen(argv[1], "w");
        if (!f) return perror(argv[1]), 1;
        fprintf(f, "{\"e2e_%s_s\": %.1f, \"e2e_%s_calib_s\": %.1f, \"e2e_%s_forward_s\": %.1f, \"e2e_%s_stats_s\": %.1f, "
                   "\"e2e_%s_solve_s\": %.1f, \"e2e_%s_write_s\": %.1f, \"e2e_%s_peak_rss_mb\": %.0f, "
                   "\"e2e_%s_plan_mb\": %.0f, \"e2e_%s_rss_over_plan\": %.3f, \"e2e_%s_nsamples\": %s, "
                   "\"e2e_%s_threads\": %s, \"e2e_%s_compute\": \"%s\", \"projection_7b_128x2048_recomputed_h\": %.2f, "
                   "\"projection_7b_128x2048_kept_h\": %.2f}\n",
                shape, secs, shape, calib_s, shape, fw, shape, st, shape, so, shape, wr, shape, rss_mb, shape, plan,
                shape, plan > 0 ? rss_mb / plan : 0.0, shape, nsamples, shape, threads, shape, compute, proj[0] / 3600, proj[1] / 3600);
        fclose(f);
    }
    cJSON_Delete(j);
    return 0;
}
