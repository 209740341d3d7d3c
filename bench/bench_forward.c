/* bench_forward.c — the forward pass's speed next to what cblas_sgemm reaches on this
 * machine at the same shapes. Two workloads:
 *   stories260K  the real model, whole forward (blocks + head) over windows of real tokens;
 *   7b-block     SYNTHETIC: one block of Llama-7B shape (dim 4096, 32 heads, FFN 11008)
 *                with random weights made in memory, over 2048 tokens (one window).
 * FLOPs counted: 2·rows·cols per token per linear, 4·T²·head_dim per head per window for
 * attention (the full square is computed; the causal half is masked), classifier. The
 * reference runs the same (tokens × in) · (in × out) products as bare cblas_sgemm calls
 * with OpenBLAS's own threading, and nothing else.
 * Prints a table; with an argument, also writes the figures as flat JSON to that path.
 * Measures, never asserts. */
#include "datasets/datasets.h"
#include "bench/bench.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static double linear_flops(const qc_config *c, double ntok) {
    double q = (double)c->n_heads * c->head_dim, kv = (double)c->n_kv_heads * c->head_dim;
    return 2 * ntok * ((double)c->dim * (q + 2 * kv) + q * c->dim + 3.0 * c->dim * c->hidden_dim);
}

static double attention_flops(const qc_config *c, int nwin, int seqlen) {
    return 4.0 * nwin * (double)seqlen * seqlen * c->head_dim * c->n_heads;
}

static void bare_sgemm(const float *x, int ntok, const float *w, int rows, int cols, float *y) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ntok, rows, cols, 1.0f, x, cols, w, cols, 0.0f, y, rows);
}

/* Seconds per run of the block's linear products as bare cblas_sgemm calls at ntok tokens,
 * OpenBLAS threading itself over every core. */
static double sgemm_time(const qc_config *c, int ntok, int reps) {
    int q = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim;
    int shapes[7][2] = { { q, c->dim }, { kv, c->dim }, { kv, c->dim }, { c->dim, q },
                         { c->hidden_dim, c->dim }, { c->hidden_dim, c->dim }, { c->dim, c->hidden_dim } };
    int maxin = c->hidden_dim > c->dim ? c->hidden_dim : c->dim;
    size_t wmax = (size_t)maxin * (c->hidden_dim > q ? c->hidden_dim : q);
    float *x = calloc((size_t)ntok * maxin, sizeof(float)), *w = calloc(wmax, sizeof(float));
    float *y = calloc((size_t)ntok * maxin, sizeof(float));
    for (size_t i = 0; i < wmax; i++) w[i] = (float)(i % 7) * 0.01f;
    for (size_t i = 0; i < (size_t)ntok * maxin; i++) x[i] = (float)(i % 5) * 0.1f;
    qc_blas_threads(true);
    bare_sgemm(x, ntok, w, shapes[0][0], shapes[0][1], y); /* warm-up */
    double t0 = qc_now();
    for (int r = 0; r < reps; r++)
        for (int s = 0; s < 7; s++) bare_sgemm(x, ntok, w, shapes[s][0], shapes[s][1], y);
    double t = (qc_now() - t0) / reps;
    qc_blas_threads(false);
    free(x), free(w), free(y);
    return t;
}

typedef struct row { const char *name; double tok_s, gflops, sgemm_gflops; } row;

static int bench_stories(const char *shared, row *out) {
    char mpath[1024], tpath[1024], xpath[1024];
    snprintf(mpath, sizeof mpath, "%s/models/stories260K/stories260K.bin", shared);
    snprintf(tpath, sizeof tpath, "%s/models/stories260K/tok512.bin", shared);
    snprintf(xpath, sizeof xpath, "%s/data/tinystories/tinystories_eval.txt", shared);
    qc_err e = { "" };
    qc_model *m;
    qc_tokenizer t;
    qc_corpus c;
    int32_t *ids;
    size_t n;
    if (qc_model_open(&m, mpath, &e) || qc_tokenizer_load(&t, tpath, 512, &e) || qc_corpus_load(&c, xpath, &e) ||
        qc_tokenizer_encode(&t, c.text, c.len, true, false, &ids, &n, &e)) {
        fprintf(stderr, "bench: %s\n", e.msg);
        return 1;
    }
    int seqlen = 512, nwin = 4, ntok = nwin * seqlen, reps = 10;
    qc_workspace *ws = qc_workspace_new(&m->cfg, ntok, seqlen, &e);
    float *logits = malloc((size_t)ntok * m->cfg.vocab_size * sizeof(float));
    qc_model_forward(m, ids, nwin, seqlen, logits, ws, &e); /* warm-up, loads blocks */
    double t0 = qc_now();
    for (int r = 0; r < reps; r++) qc_model_forward(m, ids + (size_t)(r % 8) * ntok, nwin, seqlen, logits, ws, &e);
    double sec = (qc_now() - t0) / reps;
    const qc_config *cf = &m->cfg;
    double flops = cf->n_layers * (linear_flops(cf, ntok) + attention_flops(cf, nwin, seqlen)) +
                   2.0 * ntok * cf->dim * cf->vocab_size;
    double sg = sgemm_time(cf, ntok, 20) * cf->n_layers;
    *out = (row){ "stories260K (real)", ntok / sec, flops / sec * 1e-9, cf->n_layers * linear_flops(cf, ntok) / sg * 1e-9 };
    free(logits), free(ids);
    qc_workspace_free(ws);
    qc_corpus_free(&c);
    qc_tokenizer_free(&t);
    qc_model_free(m);
    return 0;
}

static int bench_7b_block(row *out) {
    qc_config c = bench_7b_config();
    qc_err e = { "" };
    qc_block b;
    uint64_t seed = 1;
    if (bench_block(&c, &seed, &b)) {
        qc_block_free(&b);
        return -1;
    }
    int seqlen = 2048;
    float *x = malloc((size_t)seqlen * c.dim * sizeof(float)), *x0 = malloc((size_t)seqlen * c.dim * sizeof(float));
    bench_fill_random(x0, (size_t)seqlen * c.dim, 1.0f, &seed);
    qc_workspace *ws = qc_workspace_new(&c, seqlen, seqlen, &e);
    if (!ws) { fprintf(stderr, "bench: %s\n", e.msg); return 1; }
    int reps = 2;
    double sec = 0;
    for (int r = 0; r <= reps; r++) { /* the first run warms up */
        memcpy(x, x0, (size_t)seqlen * c.dim * sizeof(float));
        double t0 = qc_now();
        qc_block_forward(&c, &b, 0, x, 1, seqlen, NULL, ws, &e);
        if (r) sec += (qc_now() - t0) / reps;
    }
    double flops = linear_flops(&c, seqlen) + attention_flops(&c, 1, seqlen);
    double sg = sgemm_time(&c, seqlen, 1);
    *out = (row){ "7b-block (SYNTHETIC)", seqlen / sec, flops / sec * 1e-9, linear_flops(&c, seqlen) / sg * 1e-9 };
    free(x), free(x0);
    qc_workspace_free(ws);
    qc_block_free(&b);
    return 0;
}

int main(int argc, char **argv) {
    const char *shared = getenv("QCALIB_SHARED") ? getenv("QCALIB_SHARED") : "../shared";
    int threads = qc_set_threads(0);
    row rows[2];
    if (bench_stories(shared, &rows[0]) || bench_7b_block(&rows[1])) return 1;
    printf("forward pass, %d thread%s (sgemm = the same linear products as bare cblas_sgemm calls)\n", threads,
           threads == 1 ? "" : "s");
    printf("%-22s %14s %14s %14s %8s\n", "workload", "tokens/s", "GFLOP/s", "sgemm GFLOP/s", "ratio");
    for (int i = 0; i < 2; i++)
        printf("%-22s %14.0f %14.2f %14.2f %7.0f%%\n", rows[i].name, rows[i].tok_s, rows[i].gflops,
               rows[i].sgemm_gflops, 100 * rows[i].gflops / rows[i].sgemm_gflops);
    if (argc > 1) {
        FILE *f = fopen(argv[1], "w");
        if (!f) { perror(argv[1]); return 1; }
        fprintf(f, "{\"threads\": %d, \"forward_tokens_per_s\": %.1f, \"forward_gflops\": %.3f, \"sgemm_gflops\": %.3f, "
                   "\"stories260K_tokens_per_s\": %.1f, \"stories260K_gflops\": %.4f, \"stories260K_sgemm_gflops\": %.4f}\n",
                threads, rows[1].tok_s, rows[1].gflops, rows[1].sgemm_gflops, rows[0].tok_s, rows[0].gflops,
                rows[0].sgemm_gflops);
        fclose(f);
    }
    return 0;
}
