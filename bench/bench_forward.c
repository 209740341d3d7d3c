/* bench_forward.c — the forward pass's speed at f32 and bf16 compute (--compute) next to the
 * bare oneDNN matmul at the same shapes and precision. Workloads:
 *   stories260K  the real model, whole forward (blocks + head) over 4 windows of 512 real tokens;
 *   1b-block     SYNTHETIC: one block of the synthetic 1b's shape (2048 wide, 16 heads of 128,
 *                FFN 5632), random weights made in memory, over 4 windows of 512 tokens (the
 *                runner's chunk of 2048 tokens);
 *   7b-block     SYNTHETIC: one block of Llama-7B's shape (4096 wide, 32 heads, FFN 11008) over
 *                one window of 2048 tokens.
 * The blocks run as the runner's stages run them over their chunks: with the bf16
 * conversions of the weights held (qc_workspace_hold_weights), made by the warm-up run and
 * reused by the timed ones; the whole model's forward (stories260K, as eval runs it) converts
 * each weight per product.
 * FLOPs counted: 2·rows·cols per token per linear, 2·T(T+1)·head_dim per head per window for
 * attention (the causal half of the score square and its product with V: the work the
 * attention needs; blocks of queries compute a little more, forward.c's QUERY_BLOCK), the
 * classifier. The
 * reference ("bare") runs the block's seven linear products, (tokens × in) · (in × out), as
 * oneDNN matmul primitives made once, on operands already in the compute type and in the
 * layout oneDNN chose for them, and nothing else: what the forward could reach if its
 * linears were all it did. Threads: every core (qc_set_threads(0)).
 * Prints a table; with an argument, also writes the figures as flat JSON to that path.
 * Measures, never asserts. */
#include "datasets/datasets.h"
#include "bench/bench.h"

#include <math.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdlib.h>
#include <string.h>

static double linear_flops(const qc_config *c, double ntok) {
    double q = (double)c->n_heads * c->head_dim, kv = (double)c->n_kv_heads * c->head_dim;
    return 2 * ntok * ((double)c->dim * (q + 2 * kv) + q * c->dim + 3.0 * c->dim * c->hidden_dim);
}

static double attention_flops(const qc_config *c, int nwin, int seqlen) {
    return 2.0 * nwin * (double)seqlen * (seqlen + 1) * c->head_dim * c->n_heads;
}

/* Single runs on a shared 2-core machine move by up to a third (a block's first timed run
 * after the warm-up was 429 ms, the next 331), so every figure here is the median of its
 * timed runs (bench_median), at most MAX_REPS of them. */
#define MAX_REPS 64

/* One bare product (m × k) · (k × n) in type t, operands in oneDNN's chosen layouts. */
typedef struct bare {
    dnnl_primitive_t prim;
    dnnl_memory_t src, wei, dst;
} bare;

#define DNNL_OK(call)                                                                                                  \
    do {                                                                                                               \
        if ((call) != dnnl_success) {                                                                                  \
            fprintf(stderr, "bench_forward: %s failed\n", #call);                                                      \
            exit(1);                                                                                                   \
        }                                                                                                              \
    } while (0)

static void bare_make(dnnl_engine_t eng, dnnl_data_type_t t, int64_t m, int64_t n, int64_t k, bare *b) {
    dnnl_memory_desc_t a, w, c;
    dnnl_dims_t da = { m, k }, dw = { k, n }, dc = { m, n };
    DNNL_OK(dnnl_memory_desc_init_by_tag(&a, 2, da, t, dnnl_format_tag_any));
    DNNL_OK(dnnl_memory_desc_init_by_tag(&w, 2, dw, t, dnnl_format_tag_any));
    DNNL_OK(dnnl_memory_desc_init_by_tag(&c, 2, dc, dnnl_f32, dnnl_ab));
    dnnl_matmul_desc_t md;
    dnnl_primitive_desc_t pd;
    DNNL_OK(dnnl_matmul_desc_init(&md, &a, &w, NULL, &c));
    DNNL_OK(dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL));
    DNNL_OK(dnnl_primitive_create(&b->prim, pd));
    DNNL_OK(dnnl_memory_create(&b->src, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), eng, DNNL_MEMORY_ALLOCATE));
    DNNL_OK(dnnl_memory_create(&b->wei, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), eng, DNNL_MEMORY_ALLOCATE));
    DNNL_OK(dnnl_memory_create(&b->dst, &c, eng, DNNL_MEMORY_ALLOCATE));
    void *p; /* any bit pattern is a value; zeros would let nothing go faster, so fill */
    DNNL_OK(dnnl_memory_get_data_handle(b->src, &p));
    memset(p, 0x3c, dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0)));
    DNNL_OK(dnnl_memory_get_data_handle(b->wei, &p));
    memset(p, 0x3c, dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0)));
    dnnl_primitive_desc_destroy(pd);
}

static void bare_free(bare *b) {
    dnnl_primitive_destroy(b->prim);
    dnnl_memory_destroy(b->src), dnnl_memory_destroy(b->wei), dnnl_memory_destroy(b->dst);
}

/* GFLOP/s of the block's seven linear products at ntok tokens as bare oneDNN matmuls in ct. */
static double bare_gflops(const qc_config *c, int ntok, qc_compute ct, int reps) {
    int q = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim;
    int shapes[7][2] = { { q, c->dim }, { kv, c->dim }, { kv, c->dim }, { c->dim, q },
                         { c->hidden_dim, c->dim }, { c->hidden_dim, c->dim }, { c->dim, c->hidden_dim } };
    dnnl_engine_t eng;
    dnnl_stream_t s;
    DNNL_OK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    DNNL_OK(dnnl_stream_create(&s, eng, dnnl_stream_default_flags));
    bare b[7];
    for (int i = 0; i < 7; i++) bare_make(eng, ct == QC_COMPUTE_BF16 ? dnnl_bf16 : dnnl_f32, ntok, shapes[i][0], shapes[i][1], &b[i]);
    double t[MAX_REPS];
    for (int r = 0; r <= reps; r++) { /* the first round warms up */
        double t0 = qc_now();
        for (int i = 0; i < 7; i++) {
            dnnl_exec_arg_t args[3] = { { DNNL_ARG_SRC, b[i].src }, { DNNL_ARG_WEIGHTS, b[i].wei }, { DNNL_ARG_DST, b[i].dst } };
            DNNL_OK(dnnl_primitive_execute(b[i].prim, s, 3, args));
        }
        DNNL_OK(dnnl_stream_wait(s));
        if (r) t[r - 1] = qc_now() - t0;
    }
    for (int i = 0; i < 7; i++) bare_free(&b[i]);
    dnnl_stream_destroy(s);
    dnnl_engine_destroy(eng);
    return linear_flops(c, ntok) / bench_median(t, reps) * 1e-9;
}

typedef struct row {
    const char *name;
    qc_compute ct;
    double tok_s, gflops, bare_gflops;
} row;

static int bench_stories(const char *shared, qc_compute ct, row *out) {
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
    qc_set_compute(ct);
    int seqlen = 512, nwin = 4, ntok = nwin * seqlen, reps = 10;
    qc_workspace *ws = qc_workspace_new(&m->cfg, ntok, seqlen, &e);
    float *logits = malloc((size_t)ntok * m->cfg.vocab_size * sizeof(float));
    qc_status st = qc_model_forward(m, ids, nwin, seqlen, logits, ws, &e); /* warm-up, loads blocks */
    double times[MAX_REPS];
    for (int r = 0; r < reps && !st; r++) {
        double t0 = qc_now();
        st = qc_model_forward(m, ids + (size_t)(r % 8) * ntok, nwin, seqlen, logits, ws, &e);
        times[r] = qc_now() - t0;
    }
    double sec = st ? 1 : bench_median(times, reps);
    if (st) fprintf(stderr, "bench: %s\n", e.msg);
    const qc_config *cf = &m->cfg;
    double flops = cf->n_layers * (linear_flops(cf, ntok) + attention_flops(cf, nwin, seqlen)) +
                   2.0 * ntok * cf->dim * cf->vocab_size;
    *out = (row){ "stories260K (real)", ct, ntok / sec, flops / sec * 1e-9, bare_gflops(cf, ntok, ct, 50) };
    free(logits), free(ids);
    qc_workspace_free(ws);
    qc_corpus_free(&c);
    qc_tokenizer_free(&t);
    qc_model_free(m);
    return st != QC_OK;
}

/* One SYNTHETIC block of c's shape over nwin windows of seqlen tokens. */
static int run_block(const char *name, const qc_config *c, int nwin, int seqlen, qc_compute ct, row *out) {
    qc_err e = { "" };
    qc_block b;
    uint64_t seed = 1;
    if (bench_block(c, &seed, &b)) {
        qc_block_free(&b);
        return fprintf(stderr, "bench: out of memory\n"), 1;
    }
    int ntok = nwin * seqlen;
    float *x = malloc((size_t)ntok * c->dim * sizeof(float)), *x0 = malloc((size_t)ntok * c->dim * sizeof(float));
    bench_fill_random(x0, (size_t)ntok * c->dim, 1.0f, &seed);
    qc_workspace *ws = qc_workspace_new(c, ntok, seqlen, &e);
    if (!ws || !x || !x0) return fprintf(stderr, "bench: %s\n", ws ? "out of memory" : e.msg), 1;
    qc_set_compute(ct);
    qc_workspace_hold_weights(ws, true);
    int reps = 5;
    double t[MAX_REPS];
    qc_status st = QC_OK;
    for (int r = 0; r <= reps && !st; r++) { /* the first run warms up */
        memcpy(x, x0, (size_t)ntok * c->dim * sizeof(float));
        double t0 = qc_now();
        st = qc_block_forward(c, &b, 0, x, nwin, seqlen, NULL, ws, &e);
        if (r) t[r - 1] = qc_now() - t0;
    }
    if (st) fprintf(stderr, "bench: %s\n", e.msg);
    double sec = st ? 1 : bench_median(t, reps);
    double flops = linear_flops(c, ntok) + attention_flops(c, nwin, seqlen);
    *out = (row){ name, ct, ntok / sec, flops / sec * 1e-9, bare_gflops(c, ntok, ct, 5) };
    free(x), free(x0);
    qc_workspace_free(ws);
    qc_block_free(&b);
    return st != QC_OK;
}

int main(int argc, char **argv) {
    const char *shared = getenv("QCALIB_SHARED") ? getenv("QCALIB_SHARED") : "../shared";
    int threads = qc_set_threads(0);
    qc_config c1b = bench_block_config("1b"), c7b = bench_block_config("7b");
    row rows[6];
    int n = 0, bad = 0;
    for (int t = 0; t < 2; t++) {
        qc_compute ct = t ? QC_COMPUTE_BF16 : QC_COMPUTE_F32;
        bad |= bench_stories(shared, ct, &rows[n++]);
        bad |= run_block("1b-block (SYNTHETIC)", &c1b, 4, 512, ct, &rows[n++]);
        bad |= run_block("7b-block (SYNTHETIC)", &c7b, 1, 2048, ct, &rows[n++]);
    }
    if (bad) return 1;
    printf("forward pass, %d thread%s, oneDNN on %s (bare = the same linear products as bare oneDNN matmuls in the same\n"
           "precision, operands already converted; ratio = the forward's GFLOP/s, attention included, over the bare rate)\n",
           threads, threads == 1 ? "" : "s", qc_matmul_isa());
    printf("%-22s %7s %12s %10s %14s %7s\n", "workload", "compute", "tokens/s", "GFLOP/s", "bare GFLOP/s", "ratio");
    for (int i = 0; i < n; i++)
        printf("%-22s %7s %12.0f %10.2f %14.2f %6.0f%%\n", rows[i].name, qc_compute_name(rows[i].ct), rows[i].tok_s,
               rows[i].gflops, rows[i].bare_gflops, 100 * rows[i].gflops / rows[i].bare_gflops);
    printf("bf16 over f32 forward: stories260K %.2fx, 1b-block %.2fx, 7b-block %.2fx\n", rows[3].tok_s / rows[0].tok_s,
           rows[4].tok_s / rows[1].tok_s, rows[5].tok_s / rows[2].tok_s);
    if (argc > 1) {
        FILE *f = fopen(argv[1], "w");
        if (!f) { perror(argv[1]); return 1; }
        static const char *keys[3] = { "stories260K", "block1b", "block7b" };
        fprintf(f, "{\"forward_threads\": %d, \"matmul_isa\": \"%s\"", threads, qc_matmul_isa());
        for (int i = 0; i < n; i++)
            fprintf(f, ", \"forward_%s_%s_tokens_per_s\": %.1f, \"forward_%s_%s_gflops\": %.3f, \"forward_%s_%s_bare_gflops\": %.3f",
                    keys[i % 3], qc_compute_name(rows[i].ct), rows[i].tok_s, keys[i % 3], qc_compute_name(rows[i].ct),
                    rows[i].gflops, keys[i % 3], qc_compute_name(rows[i].ct), rows[i].bare_gflops);
        fprintf(f, "}\n");
        fclose(f);
    }
    return 0;
}
