/* bench_hessian.c — accumulating a site's statistics (qc_stats_add: Σ xᵀx by SYRK, and the
 * per-channel max|x|, Σ|x|, Σx²) at Llama-7B widths, next to cblas_sgemm at the same
 * shape. SYNTHETIC inputs: random activations, 4 chunks of 2048 tokens (the runner's chunk).
 * FLOPs: SYRK computes one triangle, tokens·n·(n+1); the reference is one (n × tokens)·
 * (tokens × n) sgemm, 2·tokens·n² FLOPs, whose GFLOP/s the ratio compares with.
 * Prints a table; with an argument, writes flat JSON. Measures, never asserts. */
#include "bench/bench.h"
#include "calib/calib.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 2048
#define NCHUNKS 4

typedef struct row { int n; double s, gflops, sgemm_gflops; } row;

static int bench_width(int n, row *out) {
    float *x = malloc((size_t)CHUNK * n * sizeof(float)), *c = malloc((size_t)n * n * sizeof(float));
    if (!x || !c) return free(x), free(c), 1;
    uint64_t seed = 3;
    bench_fill_random(x, (size_t)CHUNK * n, 1.0f, &seed);
    qc_err e = { "" };
    qc_stats st;
    if (qc_stats_init(&st, n, &e)) return free(x), free(c), fprintf(stderr, "bench_hessian: %s\n", e.msg), 1;
    qc_stats_add(&st, x, CHUNK, "warm-up", &e);
    double t0 = qc_now();
    for (int k = 0; k < NCHUNKS; k++) qc_stats_add(&st, x, CHUNK, "bench", &e);
    double t = qc_now() - t0;
    qc_stats_free(&st);
    qc_blas_threads(true);
    double t1 = qc_now();
    for (int k = 0; k < NCHUNKS; k++)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, n, CHUNK, 1.0f, x, n, x, n, 0.0f, c, n);
    double ts = qc_now() - t1;
    qc_blas_threads(false);
    double tokens = (double)CHUNK * NCHUNKS;
    *out = (row){ n, t, tokens * n * (n + 1.0) / t * 1e-9, 2.0 * tokens * n * n / ts * 1e-9 };
    free(x), free(c);
    return 0;
}

int main(int argc, char **argv) {
    int threads = qc_set_threads(0);
    row r[2];
    if (bench_width(4096, &r[0]) || bench_width(11008, &r[1])) return 1;
    printf("Hessian accumulation (qc_stats_add), %d × %d SYNTHETIC tokens, %d threads\n", NCHUNKS, CHUNK, threads);
    printf("  %-8s %10s %10s %14s %7s\n", "width", "seconds", "GFLOP/s", "sgemm GFLOP/s", "ratio");
    for (int i = 0; i < 2; i++)
        printf("  %-8d %10.3f %10.1f %14.1f %6.0f%%\n", r[i].n, r[i].s, r[i].gflops, r[i].sgemm_gflops,
               100 * r[i].gflops / r[i].sgemm_gflops);
    if (argc > 1) {
        FILE *f = fopen(argv[1], "w");
        if (!f) return perror(argv[1]), 1;
        fprintf(f, "{\"hessian_4096_s\": %.4f, \"hessian_4096_gflops\": %.2f, \"hessian_11008_s\": %.4f, "
                   "\"hessian_11008_gflops\": %.2f, \"hessian_sgemm_ratio\": %.3f}\n",
                r[0].s, r[0].gflops, r[1].s, r[1].gflops, r[0].gflops / r[0].sgemm_gflops);
        fclose(f);
    }
    return 0;
}
