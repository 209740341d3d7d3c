/* bench_gptq.c — GPTQ's speed on Llama-7B layer shapes next to what cblas_sgemm reaches on
 * this machine. SYNTHETIC: random weights and a Hessian H = XᵀX of random inputs with twice
 * as many tokens as columns, made in memory (GPTQ's own damping, percdamp 0.01, is added
 * by the solver). Settings: 4-bit, groups of 128, asymmetric, no act-order, blocksize 128.
 *
 * The reference for a layer of (rows, cols) is one sgemm of the same size as its lazy
 * updates' order, (rows × cols)·(cols × cols), with OpenBLAS's threads on every core:
 * for 4096×4096 that is one 4096³ sgemm, the target being GPTQ within 1.5× of it. Each
 * figure is the median of a few runs (the solver's inputs are copied fresh before each,
 * outside the timing). The 4096×11008 shape (down_proj: an 11008-column Hessian) is
 * skipped if the others took more than a minute, to keep the whole under two minutes.
 *
 * Prints a table. An argument (bench/run.sh passes a JSON path) is accepted and ignored:
 * nothing is written. Measures, never asserts. */
#include "bench/bench.h"
#include "gptq/gptq.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

/* Seconds of one (m × k)·(k × n) sgemm with OpenBLAS's threads: the median of reps. */
static double sgemm_time(int m, int n, int k, int reps) {
    float *a = malloc((size_t)m * k * sizeof(float)), *b = malloc((size_t)k * n * sizeof(float));
    float *c = malloc((size_t)m * n * sizeof(float));
    if (!a || !b || !c) {
        free(a), free(b), free(c);
        return -1;
    }
    uint64_t s = 7;
    bench_fill_random(a, (size_t)m * k, 1.0f, &s);
    bench_fill_random(b, (size_t)k * n, 1.0f, &s);
    memset(c, 0, (size_t)m * n * sizeof(float));
    double t[8];
    qc_blas_threads(true);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 256, 256, 256, 1.0f, a, k, b, n, 0.0f, c, n); /* warm-up */
    for (int r = 0; r < reps; r++) {
        double t0 = qc_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
        t[r] = qc_now() - t0;
    }
    qc_blas_threads(false);
    free(a), free(b), free(c);
    return bench_median(t, reps);
}

/* H (n, n) = XᵀX for X (2n, n) random, with OpenBLAS's threads (full symmetric). */
static float *make_hessian(int n, uint64_t *s) {
    size_t tokens = (size_t)2 * n;
    float *x = malloc(tokens * n * sizeof(float)), *h = malloc((size_t)n * n * sizeof(float));
    if (!x || !h) {
        free(x), free(h);
        return NULL;
    }
    bench_fill_random(x, tokens * n, 1.0f, s);
    qc_blas_threads(true);
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, n, (int)tokens, 1.0f, x, n, 0.0f, h, n);
    qc_blas_threads(false);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++) h[(size_t)i * n + j] = h[(size_t)j * n + i];
    free(x);
    return h;
}

typedef struct row {
    int rows, cols;
    double gptq, gptq_min, sgemm, loss;
    bool done;
} row;

/* GPTQ on (rows, cols) with Hessian h: the median of reps runs. */
static int bench_shape(row *out, const float *h, int rows, int cols, int reps, uint64_t *s) {
    size_t nw = (size_t)rows * cols, nh = (size_t)cols * cols;
    float *w0 = malloc(nw * sizeof(float)), *w = malloc(nw * sizeof(float)), *hs = malloc(nh * sizeof(float));
    if (!w0 || !w || !hs) {
        free(w0), free(w), free(hs);
        fprintf(stderr, "bench_gptq: out of memory for %d×%d\n", rows, cols);
        return 1;
    }
    bench_fill_random(w0, nw, 0.02f, s);
    qc_quant_spec spec = { .bits = 4, .groupsize = 128 };
    qc_gptq_opts o = qc_gptq_defaults();
    double t[8];
    for (int r = 0; r < reps; r++) {
        memcpy(w, w0, nw * sizeof(float));
        memcpy(hs, h, nh * sizeof(float));
        qc_qweight res;
        qc_gptq_info info;
        qc_err e = { "" };
        double t0 = qc_now();
        qc_status st = qc_gptq_quantize(w, hs, rows, cols, &spec, &o, &res, &info, &e);
        t[r] = qc_now() - t0;
        if (st) {
            fprintf(stderr, "bench_gptq: %s\n", e.msg);
            free(w0), free(w), free(hs);
            return 1;
        }
        out->loss = info.loss;
        qc_qweight_free(&res);
    }
    free(w0), free(w), free(hs);
    out->rows = rows, out->cols = cols;
    out->gptq = bench_median(t, reps);
    out->gptq_min = t[0];
    out->sgemm = sgemm_time(rows, cols, cols, reps);
    out->done = true;
    return 0;
}

int main(int argc, char **argv) {
    int threads = qc_set_threads(0);
    double start = qc_now();
    uint64_t s = 12345;
    row rows[3] = { { 0 } };
    printf("bench_gptq: SYNTHETIC layers (random W, H = XᵀX of 2·cols random tokens), w4 g128, %d threads\n", threads);
    float *h = make_hessian(4096, &s);
    if (!h) return fprintf(stderr, "bench_gptq: out of memory\n"), 1;
    int err = bench_shape(&rows[0], h, 4096, 4096, 5, &s);
    if (!err) err = bench_shape(&rows[1], h, 11008, 4096, 3, &s);
    free(h);
    if (!err && qc_now() - start < 60) {
        h = make_hessian(11008, &s);
        if (h) err = bench_shape(&rows[2], h, 4096, 11008, 1, &s);
        free(h);
    }
    printf("\n  %-13s %10s %10s %14s %7s %12s\n", "layer", "gptq s", "(best)", "sgemm s", "ratio", "loss");
    const char *ref[3] = { "(4096³)", "(11008·4096²)", "(4096·11008²)" };
    for (int i = 0; i < 3; i++) {
        if (!rows[i].done) {
            printf("  %-13s skipped\n", i == 2 ? "4096×11008" : i == 1 ? "11008×4096" : "4096×4096");
            continue;
        }
        char name[32];
        snprintf(name, sizeof name, "%d×%d", rows[i].rows, rows[i].cols);
        printf("  %-13s %10.3f %10.3f %7.3f %-13s %5.2f× %12.4g\n", name, rows[i].gptq, rows[i].gptq_min, rows[i].sgemm,
               ref[i], rows[i].gptq / rows[i].sgemm, rows[i].loss);
    }
    printf("\n  ratio: GPTQ's median time over one sgemm (rows×cols)·(cols×cols) with OpenBLAS on %d threads;\n"
           "  for 4096×4096 the target is <= 1.5×. (%.0f s in all)\n",
           threads, qc_now() - start);
    if (argc > 1 && !err && rows[0].done) { /* flat JSON for bench/last.json */
        FILE *f = fopen(argv[1], "w");
        if (!f) return perror(argv[1]), 1;
        fprintf(f, "{\"gptq_4096_s\": %.4f, \"sgemm_4096_s\": %.4f, \"gptq_4096_ratio\": %.3f", rows[0].gptq,
                rows[0].sgemm, rows[0].gptq / rows[0].sgemm);
        if (rows[1].done) fprintf(f, ", \"gptq_11008x4096_s\": %.4f", rows[1].gptq);
        if (rows[2].done) fprintf(f, ", \"gptq_4096x11008_s\": %.4f", rows[2].gptq);
        fprintf(f, "}\n");
        fclose(f);
    }
    return err;
}
