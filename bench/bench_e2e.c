/* bench_e2e.c — the whole tool at a real model's shapes: `qcalib --method gptq --wbits 4
 * --groupsize 128` (GPTQ format) on a SYNTHETIC model (by default 1b: 2048 wide, 16 blocks,
 * FFN 5632, vocab 32000, F16; `qcalib synth`), calibrated on NSAMPLES × SEQLEN tokens of
 * tinystories_calib.txt, on BENCH_THREADS threads (default 1, as the saved figure below; main
 * before, with BENCH_BEFORE, on as many), with --compute BENCH_COMPUTE (default f32).
 * Prints:
 *   - the wall time and its split from summary.json (forward passes with block loading,
 *     statistics, GPTQ solves, writing), the peak resident memory of the child (wait4's
 *     ru_maxrss, which counts resident pages of the mapped model too) next to the memory plan
 *     qcalib printed (target: peak RSS <= 1.2 × the plan);
 *   - the ratio to the same job on main before the speed work: with BENCH_BEFORE (that commit's
 *     qcalib, `make bench-before`) both jobs run here, one after the other, and the ratio is
 *     measured in this run; without it, against BEFORE_SECONDS, saved on another machine;
 *   - a PROJECTION, labelled as one, of a 7B-shaped model (Llama-2-7B) at 128 × 2048 tokens on
 *     this machine, each stage's work at 7B divided by the rate this run measured for it:
 *     forward FLOPs (the linears as often as the calibration route runs them, attention),
 *     XᵀX FLOPs of the four sites, a GPTQ work proxy Σ (cols³ + rows·cols²) per linear
 *     (factorizations and lazy updates), and weights written. Run on the first BLOCKS blocks
 *     of the 7b shape at 128 × 2048 tokens (`make bench-7b-blocks`), every rate is measured at
 *     the projection's own shapes and token count, and the projection is the run's stages
 *     scaled to 32 blocks.
 *
 * usage: bench_e2e [OUT.json [SHAPE NSAMPLES [SEQLEN [BLOCKS]]]]
 *   default 1b 16 512, every block; `make bench-7b`: 7b 16; `make bench-7b-blocks`: 7b 128 2048 2
 * Environment: QCALIB (the binary), QCALIB_SHARED, BENCH_DATA (where the synthetic model is
 * kept between runs; the quantized output is removed afterwards), BENCH_THREADS, BENCH_COMPUTE,
 * BENCH_BEFORE (a qcalib built at BEFORE_COMMIT).
 * Measures, never asserts. */
#include "bench/bench.h"

#include <stdlib.h>
#include <string.h>

/* The same job at the last commit before the speed work (oneDNN products, kept intermediates):
 * synthetic 1b, 16 × 512 tokens, --threads 1, wall seconds, measured with that commit's build on
 * the machine of the earlier sessions (2 cores, AVX-512 with AVX512_BF16). Machines differ, so a
 * ratio against it is only indicative; BENCH_BEFORE measures it beside the run instead. */
#define BEFORE_COMMIT "9ec0578"
#define BEFORE_SECONDS 598.6
#define BEFORE_MACHINE "the earlier sessions' machine"

/* The job of qargv with BEFORE_COMMIT's binary before: the same arguments but --compute, which
 * that commit did not have (its products were f32); rm_cmd removes its output afterwards.
 * Returns its wall seconds, or -1 after saying why. */
static double run_before(const char *before, char **qargv, const char *rm_cmd) {
    char *argv[40];
    int n = 0;
    for (int i = 0; qargv[i]; i++) {
        if (strcmp(qargv[i], "--compute") == 0) { i++; continue; }
        argv[n++] = i == 0 ? (char *)before : qargv[i];
    }
    argv[n] = NULL;
    double secs = 0;
    long rss = 0;
    int rc = bench_run(argv, &secs, &rss);
    if (system(rm_cmd) != 0) fprintf(stderr, "bench_e2e: %s failed\n", rm_cmd);
    if (rc != 0) return fprintf(stderr, "bench_e2e: %s (main at %s) failed (exit %d)\n", before, BEFORE_COMMIT, rc), -1;
    printf("  before the speed work, %s (main at %s), the same job: %.1f s wall, peak RSS %.0f MB\n", before,
           BEFORE_COMMIT, secs, rss / 1024.0);
    return secs;
}

int main(int argc, char **argv) {
    const char *shape = argc > 2 ? argv[2] : "1b", *nsamples = argc > 3 ? argv[3] : "16";
    const char *seqlen = argc > 4 ? argv[4] : "512", *blocks = argc > 5 ? argv[5] : NULL;
    const char *q = bench_env_or("QCALIB", "build/qcalib"), *shared = bench_env_or("QCALIB_SHARED", "../shared");
    const char *data = bench_env_or("BENCH_DATA", "build/bench-data"), *threads = bench_env_or("BENCH_THREADS", "1");
    const char *compute = bench_env_or("BENCH_COMPUTE", "f32");
    char model[1024], out[1024], calib[1024], summary[1100], mkdir_cmd[1100], rm_cmd[1100], tag[64];
    snprintf(tag, sizeof tag, blocks ? "%s_%sblocks_%s" : "%s", shape, blocks, seqlen); /* the JSON keys' prefix */
    if (blocks) snprintf(model, sizeof model, "%s/synth-%s-%sblocks", data, shape, blocks);
    else snprintf(model, sizeof model, "%s/synth-%s", data, shape);
    snprintf(out, sizeof out, "%s/quantized-%s", data, shape);
    snprintf(calib, sizeof calib, "%s/data/tinystories/tinystories_calib.txt", shared);
    snprintf(summary, sizeof summary, "%s/summary.json", out);
    snprintf(mkdir_cmd, sizeof mkdir_cmd, "mkdir -p '%s'", data);
    snprintf(rm_cmd, sizeof rm_cmd, "rm -rf '%s'", out);
    if (system(mkdir_cmd) != 0) return fprintf(stderr, "bench_e2e: cannot create %s\n", data), 1;
    printf("bench_e2e: qcalib --method gptq --wbits 4 --groupsize 128 on the SYNTHETIC %s model%s%s%s, nsamples %s, "
           "seqlen %s, %s thread%s, --compute %s\n", shape, blocks ? " (its first " : "", blocks ? blocks : "",
           blocks ? " blocks)" : "", nsamples, seqlen, threads, strcmp(threads, "1") == 0 ? "" : "s", compute);

    if (bench_synth_model("bench_e2e", q, shape, blocks, model) != 0) return 1;
    char *qargv[] = { (char *)q, "--method", "gptq", "--wbits", "4", "--groupsize", "128", "--model", model, "--calib",
                      calib, "--nsamples", (char *)nsamples, "--seqlen", (char *)seqlen, "--threads", (char *)threads,
                      "--compute", (char *)compute, "--out", out, "--force", "--quiet", NULL };
    /* main before runs the 1b job at 16 × 512 tokens on any thread count (it has --threads);
     * the saved figure is that job on one thread */
    bool same_job = strcmp(shape, "1b") == 0 && strcmp(nsamples, "16") == 0 && strcmp(seqlen, "512") == 0 && !blocks;
    const char *before = getenv("BENCH_BEFORE");
    bool measured = before && *before && same_job;
    bool comparable = measured || (same_job && strcmp(threads, "1") == 0);
    double before_s = BEFORE_SECONDS;
    if (before && *before && !same_job)
        printf("  (BENCH_BEFORE is for the 1b job at 16 x 512 tokens: not run)\n");
    else if (measured && (before_s = run_before(before, qargv, rm_cmd)) < 0)
        return 1;
    double secs = 0;
    long rss = 0;
    int rc = bench_run(qargv, &secs, &rss);
    if (rc != 0) {
        if (system(rm_cmd) != 0) fprintf(stderr, "bench_e2e: could not remove %s\n", out);
        return fprintf(stderr, "bench_e2e: qcalib quantize failed (exit %d)\n", rc), 1;
    }
    cJSON *j = bench_read_json(summary);
    if (system(rm_cmd) != 0) fprintf(stderr, "bench_e2e: could not remove %s\n", out);
    if (!j) return fprintf(stderr, "bench_e2e: %s: not readable\n", summary), 1;
    const cJSON *mp = cJSON_GetObjectItem(j, "memory_plan_mb");
    double plan = mp ? bench_num(mp, "peak") : -1, calib_s = bench_num(j, "seconds"), fw = bench_num(j, "forward_seconds");
    double st = bench_num(j, "statistics_seconds"), so = bench_num(j, "solve_seconds"), wr = bench_num(j, "write_seconds");
    const cJSON *route = cJSON_GetObjectItem(j, "stage_inputs");
    bool kept = cJSON_IsString(route) && strcmp(route->valuestring, "kept") == 0;
    double rss_mb = rss / 1024.0;
    printf("\n  %-20s %8s %9s %9s %9s %7s %8s %12s %8s\n", "run", "wall s", "calib s", "forward", "stats", "solve",
           "write", "peak RSS MB", "plan MB");
    printf("  %-20s %8.1f %9.1f %9.1f %9.1f %7.1f %8.1f %12.0f %8.0f   RSS/plan %.2f (target <= 1.2)\n",
           "gptq w4 g128", secs, calib_s, fw, st, so, wr, rss_mb, plan, plan > 0 ? rss_mb / plan : 0.0);
    printf("  intermediates between true-sequential stages: %s\n", kept ? "kept" : "recomputed");
    if (comparable)
        printf("  before the speed work (main at %s, same job, f32, the only type it had): %.1f s %s; now (%s) %.1f s: "
               "%.2fx faster (target >= 4x)\n", BEFORE_COMMIT, before_s,
               measured ? "measured in this run" : "saved, from " BEFORE_MACHINE " (BENCH_BEFORE measures it here)",
               compute, secs, before_s / secs);

    if (fw <= 0 || st <= 0 || so <= 0 || wr <= 0) { /* a binary from before the time split */
        printf("  (no time split in this binary's summary.json: no per-stage rates, no projection)\n");
        cJSON_Delete(j);
        return 0;
    }
    /* the PROJECTION: 7B at 128 × 2048 from this run's per-stage rates */
    qc_config here = bench_shape_config(shape), big = bench_shape_config("7b");
    if (blocks) here.n_layers = atoi(blocks);
    bench_work w = bench_calib_work(&here, atoi(nsamples), atoi(seqlen), kept);
    double r_fw = w.forward / fw, r_st = w.stats / st, r_so = w.solve / so, r_wr = w.weights / wr;
    printf("\n  measured rates: forward %.1f GFLOP/s, statistics %.1f GFLOP/s, GPTQ %.2f Gunit/s (cols^3 + rows*cols^2), "
           "writing %.0f Mweights/s\n", r_fw * 1e-9, r_st * 1e-9, r_so * 1e-9, r_wr * 1e-6);
    if (blocks && strcmp(shape, "7b") == 0 && atoi(nsamples) == 128 && atoi(seqlen) == 2048)
        printf("  this run had the projection's shapes and tokens: the projection is its stages scaled from %d to %d "
               "blocks\n", here.n_layers, big.n_layers);
    double proj[2];
    for (int k = 0; k < 2; k++) {
        bench_work b = bench_calib_work(&big, 128, 2048, k == 1);
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
                   "\"projection_7b_128x2048_kept_h\": %.2f, \"e2e_%s_before_s\": %.1f, \"e2e_%s_before_measured\": %s}\n",
                tag, secs, tag, calib_s, tag, fw, tag, st, tag, so, tag, wr, tag, rss_mb, tag, plan, tag,
                plan > 0 ? rss_mb / plan : 0.0, tag, nsamples, tag, threads, tag, compute, proj[0] / 3600, proj[1] / 3600, tag,
                comparable ? before_s : 0.0, tag, measured ? "true" : "false");
        fclose(f);
    }
    cJSON_Delete(j);
    return 0;
}
