/* bench.h — what the benchmarks share (each bench/bench_*.c is its own program): SYNTHETIC
 * inputs at real shapes. Header-only, so every benchmark stays one file to build. */
#ifndef QC_BENCH_H
#define QC_BENCH_H

#include "model/model.h"

#include <stdlib.h>

/* n uniform values in [−scale, scale) from a 64-bit LCG (state *s): fast, and the same
 * numbers on every machine. */
static inline void bench_fill_random(float *p, size_t n, float scale, uint64_t *s) {
    for (size_t i = 0; i < n; i++) {
        *s = *s * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = scale * ((float)(*s >> 40) / (float)(1 << 24) * 2.0f - 1.0f);
    }
}

/* One block of the synthetic 1b's shapes (2048 wide, 16 heads of 128, FFN 5632; io/synth.c). */
static inline qc_config bench_1b_config(void) {
    return (qc_config){ .dim = 2048, .hidden_dim = 5632, .n_layers = 1, .n_heads = 16, .n_kv_heads = 16,
                        .head_dim = 128, .vocab_size = 32000, .seq_len = 2048, .norm_eps = 1e-5f,
                        .rope_theta = 10000 };
}

/* One Llama-2-7B block's shapes (4096 wide, 32 heads, FFN 11008). */
static inline qc_config bench_7b_config(void) {
    return (qc_config){ .dim = 4096, .hidden_dim = 11008, .n_layers = 1, .n_heads = 32, .n_kv_heads = 32,
                        .head_dim = 128, .vocab_size = 32000, .seq_len = 4096, .norm_eps = 1e-5f,
                        .rope_theta = 10000 };
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

#endif
