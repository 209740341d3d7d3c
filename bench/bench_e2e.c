/* bench_e2e.c — the whole tool at a real model's shapes: `qcalib --method gptq` (w4 g128,
 * GPTQ format) on the SYNTHETIC 1b model (2048 wide, 16 blocks, FFN 5632, vocab 32000, F16;
 * `qcalib synth`), calibrated on nsamples 32 × seqlen 512 tokens of tinystories_calib.txt.
 * Measures the wall time and the peak resident memory of the child process (wait4's
 * getrusage: ru_maxrss, which counts mapped file pages that are resident too) and sets them
 * next to the memory plan qcalib printed (summary.json's memory_plan_mb.peak). The targets:
 * peak RSS <= 1.2 × the plan.
 *
 * usage: bench_e2e [OUT.json [SHAPE NSAMPLES]]   (default 1b 32; `make bench-7b`: 7b 16)
 * Environment: QCALIB (the binary), QCALIB_SHARED, BENCH_DATA (where the synthetic model is
 * kept between runs; the quantized output is removed afterwards). Measures, never asserts. */
#include "base/base.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

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

int main(int argc, char **argv) {
    const char *shape = argc > 2 ? argv[2] : "1b", *nsamples = argc > 3 ? argv[3] : "32";
    const char *q = env_or("QCALIB", "build/qcalib"), *shared = env_or("QCALIB_SHARED", "../shared");
    const char *data = env_or("BENCH_DATA", "build/bench-data");
    char model[1024], out[1024], calib[1024], summary[1100], mkdir_cmd[1100], rm_cmd[1100];
    snprintf(model, sizeof model, "%s/synth-%s", data, shape);
    snprintf(out, sizeof out, "%s/quantized-%s", data, shape);
    snprintf(calib, sizeof calib, "%s/data/tinystories/tinystories_calib.txt", shared);
    snprintf(summary, sizeof summary, "%s/summary.json", out);
    snprintf(mkdir_cmd, sizeof mkdir_cmd, "mkdir -p '%s'", data);
    snprintf(rm_cmd, sizeof rm_cmd, "rm -rf '%s'", out);
    if (system(mkdir_cmd) != 0) return fprintf(stderr, "bench_e2e: cannot create %s\n", data), 1;
    int threads = qc_set_threads(0);
    printf("bench_e2e: qcalib --method gptq on the SYNTHETIC %s model, nsamples %s, seqlen 512, %d threads\n", shape,
           nsamples, threads);

    double synth_s = 0;
    long synth_rss = 0;
    if (!qc_path_exists(model)) {
        char *sargv[] = { (char *)q, "synth", "--shape", (char *)shape, "--out", model, "--quiet", NULL };
        int rc = run(sargv, &synth_s, &synth_rss);
        if (rc != 0) return fprintf(stderr, "bench_e2e: qcalib synth failed (exit %d)\n", rc), 1;
        printf("  wrote %s in %.1f s (peak RSS %.0f MB)\n", model, synth_s, synth_rss / 1024.0);
    }
    char *qargv[] = { (char *)q, "--method", "gptq", "--model", model, "--calib", calib, "--nsamples", (char *)nsamples,
                      "--seqlen", "512", "--out", out, "--force", "--quiet", NULL };
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
    double plan = -1, calib_s = -1;
    if (!qc_read_file(summary, 1 << 20, &text, &len, &e)) {
        cJSON *j = cJSON_Parse(text);
        const cJSON *mp = cJSON_GetObjectItem(j, "memory_plan_mb"), *pk = mp ? cJSON_GetObjectItem(mp, "peak") : NULL;
        const cJSON *s = cJSON_GetObjectItem(j, "seconds");
        if (cJSON_IsNumber(pk)) plan = pk->valuedouble;
        if (cJSON_IsNumber(s)) calib_s = s->valuedouble;
        cJSON_Delete(j);
    }
    free(text);
    if (system(rm_cmd) != 0) fprintf(stderr, "bench_e2e: could not remove %s\n", out);
    double rss_mb = rss / 1024.0;
    printf("\n  %-34s %10s %14s %12s %10s\n", "run", "wall s", "calibration s", "peak RSS MB", "plan MB");
    printf("  %-34s %10.1f %14.1f %12.0f %10.0f   RSS/plan %.2f (target <= 1.2)\n", "gptq w4 g128, GPTQ safetensors", secs,
           calib_s, rss_mb, plan, plan > 0 ? rss_mb / plan : 0.0);
    if (argc > 1) {
        FILE *f = fopen(argv[1], "w");
        if (!f) return perror(argv[1]), 1;
        fprintf(f, "{\"e2e_%s_s\": %.1f, \"e2e_%s_calib_s\": %.1f, \"e2e_%s_peak_rss_mb\": %.0f, \"e2e_%s_plan_mb\": %.0f, "
                   "\"e2e_%s_rss_over_plan\": %.3f, \"e2e_%s_nsamples\": %s}\n",
                shape, secs, shape, calib_s, shape, rss_mb, shape, plan, shape, plan > 0 ? rss_mb / plan : 0.0, shape,
                nsamples);
        fclose(f);
    }
    return 0;
}
