/* synth.c — SYNTHETIC Llama models for benchmarks and unit tests: random weights of a real
 * model's shapes and scale, generated tensor by tensor through a weight source, so a model of
 * any size is written by the ordinary Hugging Face writer with one tensor in memory.
 *
 * Values: every element is a pure function of (seed, weight, layer, index) — a splitmix64
 * hash of them — so the model depends on the seed only (not on thread count or the order
 * tensors are asked for), and rows can be filled in parallel. Matrices are approximately
 * normal with standard deviation QC_SYNTH_STD (the sum of four 16-bit uniforms of one hash,
 * centred and scaled to unit variance: Irwin–Hall, cheap and smooth enough for timing);
 * RMSNorm weights are 1 + QC_SYNTH_NORM_STD times the same variate. 0.02 is Llama's
 * initializer range, the order of magnitude of trained Llama linears; the activations such a
 * model produces keep a realistic size through its blocks. The numbers mean nothing: a
 * synthetic model is for measuring speed and memory, never quality. config.json says so
 * ("qcalib_synthetic": true, "qcalib_synthetic_shape"). */
#include "io/internal.h"

#include <math.h>

#define QC_SYNTH_STD 0.02f
#define QC_SYNTH_NORM_STD 0.05f

static const struct {
    const char *name;
    qc_config cfg;
} shapes[] = {
    /* tiny: a small model for tests, with grouped-query attention and an FFN that 32-blocks tile */
    { "tiny", { .dim = 128, .hidden_dim = 352, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .head_dim = 32,
                .vocab_size = 512, .seq_len = 256, .norm_eps = 1e-5f, .rope_theta = 10000.0f } },
    /* tiny256: rows that GGUF K-quants' 256-value super-blocks tile (width and FFN multiples of
     * 256), 8 blocks (llama.cpp's mixes vary their types along the blocks) and 4 query heads per
     * KV head (its n_gqa >= 4 rules) */
    { "tiny256", { .dim = 256, .hidden_dim = 768, .n_layers = 8, .n_heads = 4, .n_kv_heads = 1, .head_dim = 64,
                   .vocab_size = 512, .seq_len = 256, .norm_eps = 1e-5f, .rope_theta = 10000.0f } },
    /* 1b: 2048 wide, 16 blocks, FFN 5632, 32000 tokens (TinyLlama's width and FFN, fewer blocks,
     * full multi-head attention) */
    { "1b", { .dim = 2048, .hidden_dim = 5632, .n_layers = 16, .n_heads = 16, .n_kv_heads = 16, .head_dim = 128,
              .vocab_size = 32000, .seq_len = 2048, .norm_eps = 1e-5f, .rope_theta = 10000.0f } },
    /* 7b: Llama-2-7B's shapes */
    { "7b", { .dim = 4096, .hidden_dim = 11008, .n_layers = 32, .n_heads = 32, .n_kv_heads = 32, .head_dim = 128,
              .vocab_size = 32000, .seq_len = 4096, .norm_eps = 1e-5f, .rope_theta = 10000.0f } },
};

bool qc_synth_shape(const char *name, qc_config *c) {
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        if (strcmp(name, shapes[i].name) == 0) {
            *c = shapes[i].cfg;
            return true;
        }
    return false;
}

static uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* An approximately standard normal variate from one 64-bit hash. */
static float unit_normal(uint64_t h) {
    uint32_t s = (uint32_t)(h & 0xffff) + (uint32_t)(h >> 16 & 0xffff) + (uint32_t)(h >> 32 & 0xffff) +
                 (uint32_t)(h >> 48);
    /* four uniforms on [0, 1): mean 2, variance 4/12 */
    return ((float)s / 65536.0f - 2.0f) * 1.7320508f;
}

static qc_status synth_read(void *ctx, qc_weight w, int layer, float *out, qc_err *e) {
    const qc_synth *s = ctx;
    int rows, cols;
    qc_weight_shape(&s->cfg, w, &rows, &cols);
    if (!qc_weight_is_global(w) && (layer < 0 || layer >= s->cfg.n_layers))
        return qc_fail(e, QC_ERR_ARG, "synthetic model: layer %d of %d", layer, s->cfg.n_layers);
    uint64_t key = splitmix64(s->seed ^ splitmix64((uint64_t)w << 32 | (uint32_t)(qc_weight_is_global(w) ? 0 : layer)));
    bool norm = w == QC_W_ATTN_NORM || w == QC_W_FFN_NORM || w == QC_W_FINAL_NORM;
#pragma omp parallel for schedule(static) if ((int64_t)rows * cols > (1 << 16))
    for (int r = 0; r < rows; r++) {
        float *o = out + (size_t)r * cols;
        uint64_t base = key + (uint64_t)r * (uint64_t)cols;
        for (int k = 0; k < cols; k++) {
            float z = unit_normal(splitmix64(base + (uint64_t)k));
            o[k] = norm ? 1.0f + QC_SYNTH_NORM_STD * z : QC_SYNTH_STD * z;
        }
    }
    return QC_OK;
}

qc_weight_source qc_synth_source(const qc_synth *s) {
    return (qc_weight_source){ .cfg = &s->cfg, .read = synth_read, .ctx = (void *)s };
}

qc_status qc_synth_export_into(const qc_synth *s, const char *shape, const qc_outdir *d, qc_dtype dt,
                               const qc_log *log, qc_err *e) {
    qc_weight_source src = qc_synth_source(s);
    qc_hf_export_opts o = { .dtype = dt };
    qc_status st = qc_hf_export_into(&src, d, &o, log, e);
    if (st) return st;
    /* config.json again, labelled: the writer's fields plus the synthetic marker */
    qc_sb text = { 0 };
    qc_hf_config_json(&s->cfg, dt, NULL, &text);
    if (!text.failed && text.len >= 3) text.len -= 3; /* "\n}\n" */
    qc_sb_printf(&text, ",\n  \"qcalib_synthetic\": true,\n  \"qcalib_synthetic_shape\": ");
    qc_sb_json_string(&text, shape);
    qc_sb_printf(&text, ",\n  \"qcalib_synthetic_seed\": %llu,\n  \"qcalib_note\": ", (unsigned long long)s->seed);
    qc_sb_json_string(&text, "random weights for benchmarks only; not a trained model");
    qc_sb_printf(&text, "\n}\n");
    st = qc_sb_write_file(d, "config.json", &text, e);
    qc_sb_free(&text);
    return st;
}
