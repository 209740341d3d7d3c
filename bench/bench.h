/* bench.h — what the benchmarks share (each bench/bench_*.c is its own program): SYNTHETIC
 * inputs at real shapes, running qcalib as a child, and the work a calibration does at a
 * model's shapes (for rates and projections). Header-only, so every benchmark stays one file
 * to build. */
#ifndef QC_BENCH_H
#define QC_BENCH_H

#include "model/model.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* n uniform values in [−scale, scale) from a 64-bit LCG (state *s): fast, and the same
 * numbers on every machine. */
static inline void bench_fill_random(float *p, size_t n, float scale, uint64_t *s) {
    for (size_t i = 0; i < n; i++) {
        *s = *s * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = scale * ((float)(*s >> 40) / (float)(1 << 24) * 2.0f - 1.0f);
    }
}

static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of t[0..n), which it sorts (t[0] is then the best). */
static inline double bench_median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, bench_cmp_double);
    return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

/* A synthetic model's shapes (io/synth.c's table: "1b", "7b"), whole or one block of it. */
static inline qc_config bench_shape_config(const char *shape) {
    qc_config c = { 0 };
    qc_synth_shape(shape, &c);
    return c;
}

static inline qc_config bench_block_config(const char *shape) {
    qc_config c = bench_shape_config(shape);
    c.n_layers = 1;
    return c;
}

/* A block of c's shapes: unit norms, linears uniform in ±0.02 (about a trained model's
 * scale). Returns 0, or -1 when out of memory (free with qc_block_free either way). */
static inline int bench_block(const qc_config *c, uint64_t *seed, qc_block *b) {
    *b = (qc_block){ 0 };
    b->attn_norm = malloc((size_t)c->dim * sizeof(float));
    b->ffn_norm = malloc((size_t)c->dim * sizeof(float));
    if (!b->attn_norm || !b->ffn_norm) return -1;
    for (int j = 0; j < c->dim; j++) b->attn_norm[j] = b->ffn_norm[j] = 1.0f;
    for (int l = 0; l < QC_LIN_COUNT; l++) {
        int rows, cols;
        qc_weight_shape(c, qc_linear_weight(l), &rows, &cols);
        if (!(b->w[l] = malloc((size_t)rows * cols * sizeof(float)))) return -1;
        bench_fill_random(b->w[l], (size_t)rows * cols, 0.02f, seed);
    }
    return 0;
}

/* The environment's value of name, or fallback when unset or empty. */
static inline const char *bench_env_or(const char *name, const char *fallback) {
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

/* Runs argv (argv[0] a path, or a name looked up on the PATH); its wall seconds and peak RSS in
 * KB (maxrss_kb may be NULL).
 * Returns the exit status (-1: not run or killed). */
static inline int bench_run(char *const argv[], double *seconds, long *maxrss_kb) {
    double t0 = qc_now();
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        execvp(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) return -1;
    *seconds = qc_now() - t0;
    if (maxrss_kb) *maxrss_kb = ru.ru_maxrss;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* j's number under key, or -1 when it has none. */
static inline double bench_num(const cJSON *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItem(j, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* The JSON object in file path (up to 1 MB), or NULL when it cannot be read or parsed. */
static inline cJSON *bench_read_json(const char *path) {
    char *text = NULL;
    size_t len = 0;
    qc_err e = { "" };
    cJSON *j = !qc_read_file(path, 1 << 20, &text, &len, &e) ? cJSON_Parse(text) : NULL;
    free(text);
    return j;
}

/* The synthetic model `qcalib synth --shape shape [--blocks blocks]` at path, made by binary q
 * unless it is there already (kept between runs: 1.9 GB for 1b). Returns 0, or -1 after saying
 * why. */
static inline int bench_synth_model(const char *who, const char *q, const char *shape, const char *blocks,
                                    const char *path) {
    if (qc_path_exists(path)) return 0;
    double s = 0;
    long rss = 0;
    char *argv[] = { (char *)q, "synth", "--shape", (char *)shape, "--out", (char *)path, "--quiet",
                     blocks ? "--blocks" : NULL, (char *)blocks, NULL };
    int rc = bench_run(argv, &s, &rss);
    if (rc != 0) return fprintf(stderr, "%s: qcalib synth failed (exit %d)\n", who, rc), -1;
    printf("  wrote %s in %.1f s (peak RSS %.0f MB)\n", path, s, rss / 1024.0);
    return 0;
}

/* The work of calibrating a model on nwin windows of seqlen tokens, per stage, in the units the
 * benchmarks' rates use: the forward's FLOPs (the linears as often as the calibration route
 * runs them, attention's whole score square), XᵀX's FLOPs at the four sites (the full square),
 * a GPTQ work proxy Σ (cols³ + rows·cols²) per linear (factorizations and the inverse grow as
 * cols³, the lazy updates and the output error as rows·cols²), and the weights written. */
typedef struct bench_work { double forward, stats, solve, weights; } bench_work;

/* GPTQ's work proxy for one linear of c: cols³ + rows·cols². */
static inline double bench_solve_work(const qc_config *c, qc_linear l) {
    int rows, cols;
    qc_weight_shape(c, qc_linear_weight(l), &rows, &cols);
    return (double)cols * cols * cols + (double)rows * cols * cols;
}

/* kept: true-sequential with each linear's input kept (one forward's worth of linears); else
 * recomputed (the block up to each site in turn, then once more in full). */
static inline bench_work bench_calib_work(const qc_config *c, int nwin, int seqlen, bool kept) {
    double ntok = (double)nwin * seqlen, q = (double)c->n_heads * c->head_dim, kv = (double)c->n_kv_heads * c->head_dim;
    double d = c->dim, h = c->hidden_dim;
    /* 2 FLOPs per multiply-add per token: {q,k,v}, o, {gate,up}, down */
    double lqkv = 2 * ntok * d * (q + 2 * kv), lo = 2 * ntok * q * d, lgu = 2 * ntok * 2 * d * h, ld = 2 * ntok * h * d;
    double att = 4.0 * nwin * (double)seqlen * seqlen * c->head_dim * c->n_heads;
    /* recomputing: 4·qkv + 3·o + 2·gate_up + down, attention 4× */
    double fw = kept ? lqkv + lo + lgu + ld + att : 4 * lqkv + 3 * lo + 2 * lgu + ld + 4 * att;
    double st = 2 * ntok * (2 * d * d + q * q + h * h);
    double gq = 0, weights = 0;
    for (int l = 0; l < QC_LIN_COUNT; l++) {
        int rows, cols;
        qc_weight_shape(c, qc_linear_weight((qc_linear)l), &rows, &cols);
        gq += bench_solve_work(c, (qc_linear)l);
        weights += (double)rows * cols;
    }
    return (bench_work){ fw * c->n_layers, st * c->n_layers, gq * c->n_layers, weights * c->n_layers };
}

#endif
