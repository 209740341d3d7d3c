/* bench_pack.c — what writing a quantized layer costs next to solving it. SYNTHETIC: a
 * one-block model of 4096-wide linears (seven 4096×4096 layers, random codes and fp16
 * scales made in memory; the real stories260K vocabulary for the GGUF metadata) is written
 * by the real writers — GPTQ safetensors (4-bit, groups of 128) and GGUF (Q4_0) — into
 * $TMPDIR, and the time per linear is set against one GPTQ solve of a 4096×4096 layer
 * (w4 g128, H = XᵀX of random X). Writing includes packing, fp16 conversion and the file
 * I/O. Prints a table; with a path argument writes the figures as flat JSON. */
#include "gptq/gptq.h"
#include "io/io.h"

#include <cblas.h>

#include <stdlib.h>
#include <string.h>

#define N 4096
#define LINEARS 7 /* q k v o gate up down */

typedef struct synth {
    qc_config cfg;
    qc_qweight gptq, q4_0; /* the same for every linear */
    const qc_qweight *use;
} synth;

static qc_status synth_read(void *ctx, qc_weight w, int layer, float *out, qc_err *e) {
    synth *s = ctx;
    int rows, cols;
    qc_weight_shape(&s->cfg, w, &rows, &cols);
    for (size_t i = 0; i < (size_t)rows * cols; i++) out[i] = cols == 1 ? 1.0f : (float)((i * 7919) % 97) * 1e-3f;
    (void)layer, (void)e;
    return QC_OK;
}

static const qc_qweight *synth_qweight(void *ctx, qc_weight w, int layer) {
    synth *s = ctx;
    (void)layer;
    return w >= QC_W_Q && w <= QC_W_DOWN && w != QC_W_FFN_NORM ? s->use : NULL;
}

static qc_status make(qc_qweight *q, int gs, bool sym, uint64_t *seed, qc_err *e) {
    qc_status st = qc_qweight_init(q, N, N, 4, gs, sym, e);
    for (size_t i = 0; !st && i < (size_t)N * N; i++) {
        *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
        q->codes[i] = (uint8_t)(*seed >> 60);
    }
    for (size_t i = 0; !st && i < (size_t)N * q->ngroups; i++) {
        q->scales[i] = qc_f16_to_f32(qc_f32_to_f16(0.001f * (float)(1 + i % 13)));
        q->zeros[i] = sym ? 8.0f : (float)(1 + i % 15);
    }
    return st;
}

static double gptq_solve_4096(uint64_t *seed) {
    size_t tokens = 2 * N;
    float *x = malloc(tokens * N * sizeof(float)), *h = calloc((size_t)N * N, sizeof(float));
    float *w = malloc((size_t)N * N * sizeof(float));
    for (size_t i = 0; i < tokens * N; i++) {
        *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)(*seed >> 40) / (float)(1 << 24) - 0.5f;
    }
    for (size_t i = 0; i < (size_t)N * N; i++) w[i] = x[i] * 0.1f;
    qc_blas_threads(true);
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, N, (int)tokens, 1.0f, x, N, 0.0f, h, N);
    qc_blas_threads(false);
    qc_quant_spec spec = { .bits = 4, .groupsize = 128 };
    qc_qweight out;
    qc_err e = { "" };
    double t0 = qc_now();
    qc_status st = qc_gptq_quantize(w, h, N, N, &spec, NULL, &out, NULL, &e);
    double t = qc_now() - t0;
    if (st) fprintf(stderr, "bench_pack: %s\n", e.msg);
    qc_qweight_free(&out);
    free(x), free(h), free(w);
    return st ? -1 : t;
}

int main(int argc, char **argv) {
    int threads = qc_set_threads(0);
    const char *shared = getenv("QCALIB_SHARED") ? getenv("QCALIB_SHARED") : "../shared";
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char tokpath[1024], dir[1024], gguf[1024];
    snprintf(tokpath, sizeof tokpath, "%s/models/stories260K/tok512.bin", shared);
    snprintf(dir, sizeof dir, "%s/qcalib-bench-gptq", tmp);
    snprintf(gguf, sizeof gguf, "%s/qcalib-bench.gguf", tmp);
    qc_err e = { "" };
    synth s = { .cfg = { .dim = N, .hidden_dim = N, .n_layers = 1, .n_heads = 32, .n_kv_heads = 32, .head_dim = 128,
                         .vocab_size = 512, .seq_len = 2048, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
                         .tied_classifier = true } };
    uint64_t seed = 7;
    qc_tokenizer tok;
    if (qc_tokenizer_load(&tok, tokpath, 512, &e) || make(&s.gptq, 128, false, &seed, &e) || make(&s.q4_0, 32, true, &seed, &e)) {
        fprintf(stderr, "bench_pack: %s\n", e.msg);
        return 1;
    }
    qc_weight_source src = { .cfg = &s.cfg, .read = synth_read, .qweight = synth_qweight, .ctx = &s };
    /* GPTQ safetensors */
    s.use = &s.gptq;
    qc_outdir d;
    qc_gptq_export_opts go = { .checkpoint_format = 1, .damp_percent = 0.01f, .true_sequential = true };
    double t0 = qc_now();
    qc_status st = qc_outdir_open(&d, dir, true, &e);
    if (!st) st = qc_gptq_export_into(&src, &d, &go, NULL, &e);
    if (!st) st = qc_outdir_commit(&d, &e);
    else qc_outdir_abort(&d);
    double t_gptq = (qc_now() - t0) / LINEARS;
    /* GGUF Q4_0 */
    s.use = &s.q4_0;
    qc_gguf_export_opts o = { .float_type = QC_GGUF_F16, .embed_type = QC_GGUF_Q8_0, .output_type = QC_GGUF_Q8_0,
                              .tok = &tok, .name = "synthetic" };
    t0 = qc_now();
    if (!st) st = qc_gguf_export(&src, gguf, &o, NULL, &e);
    double t_gguf = (qc_now() - t0) / LINEARS;
    if (st) {
        fprintf(stderr, "bench_pack: %s\n", e.msg);
        return 1;
    }
    double solve = gptq_solve_4096(&seed);
    printf("writing a 4096×4096 layer (SYNTHETIC), %d threads; the whole file written, per linear\n", threads);
    printf("  %-34s %9.3f s  %5.1f%% of a GPTQ solve (%.3f s)\n", "GPTQ safetensors, 4-bit g128", t_gptq,
           100 * t_gptq / solve, solve);
    printf("  %-34s %9.3f s  %5.1f%% of a GPTQ solve\n", "GGUF Q4_0", t_gguf, 100 * t_gguf / solve);
    if (argc > 1) {
        FILE *f = fopen(argv[1], "w");
        if (!f) return perror(argv[1]), 1;
        fprintf(f, "{\"pack_gptq_4096_s\": %.4f, \"pack_gguf_q4_0_4096_s\": %.4f, \"pack_solve_ratio\": %.4f}\n", t_gptq,
                t_gguf, t_gptq / solve);
        fclose(f);
    }
    char cmd[2200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", dir, gguf);
    if (system(cmd) != 0) fprintf(stderr, "bench_pack: could not remove %s\n", dir);
    qc_tokenizer_free(&tok);
    qc_qweight_free(&s.gptq), qc_qweight_free(&s.q4_0);
    return 0;
}
