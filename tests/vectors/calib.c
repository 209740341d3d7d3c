/* vectors/calib.c — calibration against the GPTQ reference pipeline's own Hessians.
 *
 * The test vectors hold, for every linear input of stories260K, the Hessian
 * H = (2/nsamples) Σ xᵀx that the reference accumulated in a full true-sequential run on
 * 128 random windows of 512 tokens of tinystories_calib.txt, drawn with random.seed(0).
 * Reproducing them checks at once the tokenizer, the window sampler, the forward pass, the
 * hooks and the statistics — and, past block 0's q/k/v, that every earlier layer was
 * quantized as the reference quantized it. Also: the statistics' per-channel figures, and
 * the .npy windows reader. */
#include "calib/calib.h"
#include "tests/bounds.h"
#include "tests/check.h"

#include <cblas.h>
#include <math.h>

#define NSAMPLES 128
#define SEQLEN 512

static const char *tv_root(void) {
    const char *r = getenv("QCALIB_TESTVECTORS");
    return r && *r ? r : shared_path("testvectors");
}

static float *load_f32(const char *path, size_t n) {
    qc_err e = { "" };
    char *buf = NULL;
    size_t len = 0;
    CHECK_OK(qc_read_file(path, (size_t)1 << 30, &buf, &len, &e), e);
    CHECK(len == n * sizeof(float), "%s: %zu bytes, expected %zu", path, len, n * sizeof(float));
    if (len != n * sizeof(float)) { free(buf); return NULL; }
    return (float *)buf;
}

/* ‖a − b‖ / ‖b‖ */
static double rel_frob(const float *a, const float *b, size_t n) {
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), s += (double)b[i] * b[i];
    return sqrt(d / s);
}

/* How far two fp32 accumulations of the Hessian h (n × n) over ntok tokens may lie apart, as
 * ‖difference‖ / ‖h‖: entry (i, j) sums ntok products x_i·x_j whose magnitudes add up to at
 * most sqrt(h_ii·h_jj) (Cauchy–Schwarz), so the two orders differ there by at most 2·gamma_ntok (check.h's probabilistic one)
 * times that; the matrix of those products has Frobenius norm trace(h). `inputs` is the
 * relative bound on the inputs themselves (each side's x off by at most that fraction moves
 * h by twice it). */
static double hessian_bound(const float *h, int n, double ntok, double inputs) {
    double tr = 0, fro = 0;
    for (int i = 0; i < n; i++) tr += h[(size_t)i * n + i];
    for (size_t i = 0; i < (size_t)n * n; i++) fro += (double)h[i] * h[i];
    return 2 * fp32_gamma_prob(ntok) * tr / sqrt(fro) + 2 * inputs;
}

static qc_windows calib_windows(void) {
    qc_err e = { "" };
    qc_tokenizer t;
    qc_windows w = { 0 };
    CHECK_OK(qc_tokenizer_load(&t, shared_path("models/stories260K/tok512.bin"), 512, &e), e);
    const char *src[1] = { shared_path("data/tinystories/tinystories_calib.txt") };
    CHECK_OK(qc_windows_draw(&t, src, 1, NSAMPLES, SEQLEN, 0, &w, &e), e);
    qc_tokenizer_free(&t);
    return w;
}

static void test_stats_figures(void) {
    /* SYNTHETIC small x: the statistics against direct sums */
    qc_err e = { "" };
    qc_stats s;
    int n = 5, t = 7;
    float x[35];
    for (int i = 0; i < 35; i++) x[i] = (float)((i * 37) % 11) - 5.0f;
    CHECK_OK(qc_stats_init(&s, n, &e), e);
    CHECK_OK(qc_stats_add(&s, x, 3, "x", &e), e);
    CHECK_OK(qc_stats_add(&s, x + 15, 4, "x", &e), e);
    qc_stats_finish(&s);
    CHECK(s.count == t, "count %lld", (long long)s.count);
    for (int i = 0; i < n; i++) {
        double mx = 0, sa = 0, sq = 0;
        for (int k = 0; k < t; k++) {
            double v = x[k * n + i];
            mx = fmax(mx, fabs(v)), sa += fabs(v), sq += v * v;
            for (int j = 0; j < n; j++) (void)j;
        }
        CHECK(s.absmax[i] == mx && s.sum_abs[i] == sa && s.sum_sq[i] == sq, "channel %d", i);
        for (int j = 0; j < n; j++) {
            double h = 0;
            for (int k = 0; k < t; k++) h += (double)x[k * n + i] * x[k * n + j];
            CHECK(s.xtx[i * n + j] == (float)h, "xtx[%d,%d] = %g, want %g", i, j, s.xtx[i * n + j], h);
        }
    }
    float bad[5] = { 0, 1, NAN, 2, 3 };
    CHECK_FAILS(qc_stats_add(&s, bad, 1, "block 3, input of qkv", &e), e, "block 3, input of qkv: non-finite");
    qc_stats_free(&s);
}

/* Block 0's q/k/v input does not depend on any quantization: our windows and forward pass
 * must give the reference's Hessian up to float summation order. */
static void test_block0_hessian_matches_reference(void) {
    qc_err e = { "" };
    qc_windows w = calib_windows();
    qc_model *m;
    CHECK_OK(qc_model_open(&m, shared_path("models/stories260K/stories260K.bin"), &e), e);
    const qc_config *c = &m->cfg;
    char path[1024];
    snprintf(path, sizeof path, "%s/gptq/w4_g32/H/L0.qkv.f32", tv_root());
    float *ref = load_f32(path, (size_t)c->dim * c->dim);
    /* the block-0 input is the embedding; its RMSNorm is the q/k/v input */
    const qc_block *b;
    CHECK_OK(qc_model_block(m, 0, &b, &e), e);
    qc_stats s;
    CHECK_OK(qc_stats_init(&s, c->dim, &e), e);
    float *x = malloc((size_t)SEQLEN * c->dim * sizeof(float)), *xn = malloc((size_t)SEQLEN * c->dim * sizeof(float));
    for (int k = 0; k < w.n; k++) {
        CHECK_OK(qc_model_embed(m, w.tokens + (size_t)k * SEQLEN, SEQLEN, x, &e), e);
        for (int t = 0; t < SEQLEN; t++) { /* run.c's RMSNorm */
            float ss = 0;
            for (int j = 0; j < c->dim; j++) ss += x[t * c->dim + j] * x[t * c->dim + j];
            ss = 1.0f / sqrtf(ss / c->dim + c->norm_eps);
            for (int j = 0; j < c->dim; j++) xn[t * c->dim + j] = b->attn_norm[j] * (ss * x[t * c->dim + j]);
        }
        CHECK_OK(qc_stats_add(&s, xn, SEQLEN, "block 0", &e), e);
    }
    qc_stats_finish(&s);
    for (size_t i = 0; i < (size_t)c->dim * c->dim; i++) s.xtx[i] *= 2.0f / NSAMPLES;
    double d = ref ? rel_frob(s.xtx, ref, (size_t)c->dim * c->dim) : 1;
    /* the inputs: RMSNorm of the embedding, here and in torch (see unit/model's hooks test) */
    double bound = hessian_bound(s.xtx, c->dim, (double)NSAMPLES * SEQLEN, 2 * (fp32_gamma(c->dim) + 5 * FP32_U));
    printf("    block 0 q/k/v Hessian vs the reference's: relative difference %.3g (fp32 bound %.3g)\n", d, bound);
    CHECK(d <= bound, "relative difference %g, fp32 bound %g", d, bound);
    free(x), free(xn), free(ref);
    qc_stats_free(&s);
    qc_model_free(m);
    qc_windows_free(&w);
}

/* ---- the whole pipeline against the reference run ---- */

#define MAX_LAYERS 8

typedef struct hess_check {
    const char *config;
    const qc_config *cfg;
    double diff[MAX_LAYERS][QC_SITE_COUNT];  /* relative difference of each site's Hessian */
    double bound[MAX_LAYERS][QC_SITE_COUNT]; /* its fp32 bound while the codes agree */
} hess_check;

static qc_status compare_hessian(void *ctx, const qc_observation *ob, qc_err *e) {
    static const char *file[QC_SITE_COUNT] = { "qkv", "o", "w1w3", "w2" };
    hess_check *k = ctx;
    int layer = ob->layer;
    qc_site site = ob->site;
    const qc_stats *s = ob->stats;
    char path[1024];
    snprintf(path, sizeof path, "%s/gptq/%s/H/L%d.%s.f32", tv_root(), k->config, layer, file[site]);
    size_t n = (size_t)s->n * s->n;
    float *ref = load_f32(path, n), *h = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) h[i] = s->xtx[i] * (2.0f / NSAMPLES); /* the reference's scale */
    k->diff[layer][site] = ref ? rel_frob(h, ref, n) : 1;
    /* the inputs come out of the fp32 forward through `layer` blocks, here and in torch: each
     * within gamma of its chain of sums (bounds.h), so the two within twice that */
    qc_config upto = *k->cfg;
    upto.n_layers = layer + 1;
    k->bound[layer][site] = hessian_bound(h, s->n, (double)s->count, 2 * fp32_gamma_prob(forward_chain_length(&upto, SEQLEN)));
    free(ref), free(h);
    return QC_OK;
}

/* Codes that differ from the reference run's, per linear (in solve order). */
static size_t count_code_diffs(const char *config, const qc_qweight *r, int layer, qc_linear lin) {
    static const char *names[QC_LIN_COUNT] = { "wq", "wk", "wv", "wo", "w1", "w3", "w2" };
    char path[1024];
    snprintf(path, sizeof path, "%s/gptq/%s/L%d.%s/codes.u8", tv_root(), config, layer, names[lin]);
    char *buf = NULL;
    size_t len = 0, diff = 0, n = (size_t)r->rows * r->cols;
    qc_err e = { "" };
    CHECK_OK(qc_read_file(path, (size_t)1 << 30, &buf, &len, &e), e);
    CHECK(len == n, "%s: %zu codes, expected %zu", path, len, n);
    for (size_t i = 0; i < n && i < len; i++) diff += (uint8_t)buf[i] != r->codes[i];
    free(buf);
    return len == n ? diff : n;
}

/* The reference's true-sequential GPTQ runs, reproduced: every site's Hessian in every block
 * (each depends on all earlier layers having been quantized as the reference did) and the
 * codes of all 35 linears. Float summation order differs (SYRK vs torch's matmul, sgemm vs
 * torch's linear), so a weight whose error-compensated value sits on a rounding boundary
 * can take the other code; GPTQ then feeds that difference forward and everything after it
 * drifts, as two reference runs on different BLAS libraries would. So: every Hessian up to
 * the first differing code must agree within fp32's bound for its sums (hessian_bound); after
 * it, to 10% (the drift itself, not rounding); and 99% of all codes. */
static void test_pipeline_matches_reference_run(void) {
    struct { const char *name; qc_quant_spec spec; bool act_order; } cfgs[] = {
        { "w4_g32", { .bits = 4, .groupsize = 32 }, false },
        { "w4_g32_act", { .bits = 4, .groupsize = 32 }, true },
        { "w4_g32_sym", { .bits = 4, .groupsize = 32, .sym = true }, false },
        { "w4_gch", { .bits = 4 }, false },
    };
    qc_err e = { "" };
    qc_windows w = calib_windows();
    qc_model *m;
    CHECK_OK(qc_model_open(&m, shared_path("models/stories260K/stories260K.bin"), &e), e);
    int L = m->cfg.n_layers;
    for (size_t i = 0; i < sizeof cfgs / sizeof *cfgs && L <= MAX_LAYERS; i++) {
        hess_check k = { cfgs[i].name, &m->cfg, { { 0 } }, { { 0 } } };
        qc_calib_opts o = { .method = QC_METHOD_GPTQ, .spec = cfgs[i].spec, .gptq = qc_gptq_defaults(),
                            .true_sequential = true, .observe = compare_hessian, .observe_ctx = &k };
        o.gptq.act_order = cfgs[i].act_order;
        qc_quantized q;
        CHECK_OK(qc_calibrate(m, &w, &o, &q, &e), e);
        int first = L * QC_LIN_COUNT; /* solve-order index of the first linear with a differing code */
        size_t diffs = 0, total = 0;
        for (int l = 0; l < L; l++)
            for (int lin = 0; lin < QC_LIN_COUNT; lin++) {
                const qc_qweight *r = &q.res[(size_t)l * QC_LIN_COUNT + lin];
                size_t d = count_code_diffs(cfgs[i].name, r, l, lin);
                if (d && l * QC_LIN_COUNT + lin < first) first = l * QC_LIN_COUNT + lin;
                diffs += d, total += (size_t)r->rows * r->cols;
            }
        double ratio = 0, before = 0, bound = 0, after = 0; /* before, bound: where diff / bound is largest */
        for (int l = 0; l < L; l++)
            for (int s = 0; s < QC_SITE_COUNT; s++) {
                int lin0 = 0;
                while (qc_linear_site(lin0) != (qc_site)s) lin0++;
                if (l * QC_LIN_COUNT + lin0 > first) after = fmax(after, k.diff[l][s]);
                else if (k.diff[l][s] >= ratio * k.bound[l][s])
                    ratio = k.diff[l][s] / k.bound[l][s], before = k.diff[l][s], bound = k.bound[l][s];
            }
        char where[64] = "none";
        if (first < L * QC_LIN_COUNT)
            snprintf(where, sizeof where, "block %d %s", first / QC_LIN_COUNT,
                     qc_weight_short_name(qc_linear_weight(first % QC_LIN_COUNT)));
        printf("    %-11s codes equal %.4f%%, first difference: %s; Hessians vs reference: up to it %.2g (fp32 bound there %.2g), after it %.2g\n",
               cfgs[i].name, 100.0 * (double)(total - diffs) / (double)total, where, before, bound, after);
        CHECK(ratio <= 1, "%s: Hessians before any code differs are off by %g, fp32 bound %g", cfgs[i].name, before, bound);
        CHECK(after < 0.1, "%s: Hessians after the first differing code are off by %g", cfgs[i].name, after);
        CHECK((double)diffs <= 0.01 * (double)total, "%s: %zu of %zu codes differ", cfgs[i].name, diffs, total);
        qc_quantized_free(&q);
    }
    qc_model_free(m);
    qc_windows_free(&w);
}

static void test_npy_windows(void) {
    qc_err e = { "" };
    /* int64 (2, 3), a NumPy 1.0 header padded with spaces to 128 bytes as numpy.save does */
    const char *hdr = "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), }";
    uint8_t buf[128 + 48] = { 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 118, 0 };
    memset(buf + 10, ' ', 118);
    memcpy(buf + 10, hdr, strlen(hdr));
    buf[127] = '\n';
    int64_t v[6] = { 1, 403, 407, 261, 378, 432 };
    memcpy(buf + 128, v, sizeof v);
    write_file(tmp_path("w.npy"), buf, sizeof buf);
    qc_windows w;
    CHECK_OK(qc_windows_load_npy(tmp_path("w.npy"), &w, &e), e);
    CHECK(w.n == 2 && w.seqlen == 3 && w.tokens[1] == 403 && w.tokens[5] == 432, "int64 windows read");
    qc_windows_free(&w);
    write_file(tmp_path("short.npy"), buf, sizeof buf - 8);
    CHECK_FAILS_AT(qc_windows_load_npy(tmp_path("short.npy"), &w, &e), e, "short.npy", "needs 48");
    memcpy(buf + 10, "{'descr': '<f4'", 15);
    write_file(tmp_path("f4.npy"), buf, sizeof buf);
    CHECK_FAILS_AT(qc_windows_load_npy(tmp_path("f4.npy"), &w, &e), e, "f4.npy", "int32");
    write_file(tmp_path("junk.npy"), "hello world", 11);
    CHECK_FAILS_AT(qc_windows_load_npy(tmp_path("junk.npy"), &w, &e), e, "junk.npy", "not a NumPy");
}


/* The token embedding quantized with the run (opts.embed): every row in symmetric 8-bit
 * groups of 32, computed here independently from the fp32 table (GPTQ's symmetric grid:
 * scale = 2·max|w| / 255, zero 128, codes clamped to 0..255). */
static void test_embedding_quantized_with_the_run(void) {
    qc_err e = { "" };
    qc_windows w = calib_windows();
    qc_model *m;
    CHECK_OK(qc_model_open(&m, shared_path("models/stories260K/stories260K.bin"), &e), e);
    qc_calib_opts o = { .method = QC_METHOD_RTN, .spec = { .bits = 4, .groupsize = 32 }, .true_sequential = true,
                        .embed = { .bits = 8, .groupsize = 32, .sym = true } };
    qc_quantized q;
    CHECK_OK(qc_calibrate(m, &w, &o, &q, &e), e);
    int vocab = m->cfg.vocab_size, dim = m->cfg.dim;
    float *fp = malloc((size_t)vocab * dim * sizeof(float)), *deq = malloc((size_t)vocab * dim * sizeof(float));
    CHECK_OK(qc_checkpoint_read(m->ck, QC_W_EMBED, 0, fp, &e), e);
    qc_weight_source src = qc_quantized_source(&q);
    CHECK(src.qweight(src.ctx, QC_W_EMBED, 0) == &q.embed, "the source offers the quantized embedding");
    CHECK_OK(src.read(src.ctx, QC_W_EMBED, 0, deq, &e), e);
    size_t differ = 0, changed = 0;
    for (int r = 0; r < vocab; r++)
        for (int g = 0; g < dim; g += 32) {
            float amax = 0;
            for (int c = g; c < g + 32; c++) amax = fmaxf(amax, fabsf(fp[(size_t)r * dim + c]));
            float scale = amax > 0 ? 2 * amax / 255 : 2.0f / 255; /* GPTQ's all-zero group: [-1, 1] */
            for (int c = g; c < g + 32; c++) {
                float x = fp[(size_t)r * dim + c], code = nearbyintf(x / scale) + 128;
                code = code < 0 ? 0 : code > 255 ? 255 : code;
                differ += deq[(size_t)r * dim + c] != scale * (code - 128);
                changed += deq[(size_t)r * dim + c] != x;
            }
        }
    CHECK(differ == 0, "%zu embedding values differ from symmetric 8-bit groups of 32", differ);
    CHECK(changed > (size_t)vocab * dim / 2, "quantization changed only %zu of %d values", changed, vocab * dim);
    free(fp), free(deq);
    qc_quantized_free(&q);
    qc_model_free(m);
    qc_windows_free(&w);
}

/* Mixed precision's choice (SYNTHETIC errors: the choice is arithmetic on them) against every
 * assignment of 3 candidates to one block's 7 linears (with tie_sites, those giving q, k, v
 * one candidate and gate, up one): within the budget, never better than the exhaustive
 * optimum (a check of the bookkeeping) and within one upgrade step of it (the greedy bound of
 * the convex-hull method). */
static void test_mixed_choice_against_exhaustive(void) {
    qc_config c = { .dim = 64, .hidden_dim = 96, .n_layers = 1, .n_heads = 4, .n_kv_heads = 2, .head_dim = 16,
                    .vocab_size = 32, .seq_len = 16 };
    qc_quant_spec cands[3] = { { .bits = 3, .groupsize = 32 }, { .bits = 4, .groupsize = 32 }, { .bits = 8, .groupsize = 32 } };
    double err[QC_LIN_COUNT * 3], bits[QC_LIN_COUNT * 3], weights = 0;
    uint64_t seed = 12345;
    for (int i = 0; i < QC_LIN_COUNT; i++) {
        int rows, cols;
        qc_weight_shape(&c, qc_linear_weight(i), &rows, &cols);
        weights += (double)rows * cols;
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        double base = 1 + (double)(seed >> 40) / (1 << 20); /* 1 .. 17 */
        for (int j = 0; j < 3; j++) {
            err[i * 3 + j] = base * pow(4.0, -cands[j].bits);
            bits[i * 3 + j] = qc_spec_storage_bits(&cands[j], rows, cols);
        }
    }
    qc_err e = { "" };
    for (int tie = 0; tie < 2; tie++)
        for (double bpw = 4.0; bpw <= 8.5; bpw += 0.25) {
            double best = INFINITY, step = 0, span[QC_LIN_COUNT] = { 0 }; /* per unit */
            for (int a = 0; a < 2187; a++) { /* 3^7 */
                int pick[QC_LIN_COUNT];
                for (int i = 0, x = a; i < QC_LIN_COUNT; i++, x /= 3) pick[i] = x % 3;
                if (tie && (pick[QC_LIN_K] != pick[QC_LIN_Q] || pick[QC_LIN_V] != pick[QC_LIN_Q] ||
                            pick[QC_LIN_UP] != pick[QC_LIN_GATE]))
                    continue;
                double b = 0, er = 0;
                for (int i = 0; i < QC_LIN_COUNT; i++) b += bits[i * 3 + pick[i]], er += err[i * 3 + pick[i]];
                if (b <= bpw * weights && er < best) best = er;
            }
            for (int i = 0; i < QC_LIN_COUNT; i++) span[tie ? (int)qc_linear_site(i) : i] += err[i * 3] - err[i * 3 + 2];
            for (int u = 0; u < QC_LIN_COUNT; u++) step = fmax(step, span[u]); /* a unit's largest step */
            qc_module_quant mods[QC_LIN_COUNT] = { 0 };
            qc_mixed_result res;
            qc_status st = qc_mixed_choose(&c, cands, 3, err, bpw, tie, mods, &res, &e);
            if (isinf(best)) {
                CHECK(st != 0, "bpw %g: nothing fits, yet a choice was made", bpw);
                continue;
            }
            CHECK_OK(st, e);
            double used = 0, total = 0;
            for (int i = 0; i < QC_LIN_COUNT; i++)
                for (int j = 0; j < 3; j++)
                    if (mods[i].spec.bits == cands[j].bits) used += bits[i * 3 + j], total += err[i * 3 + j];
            CHECK(used <= bpw * weights + 1e-9, "bpw %g: the choice takes %.4f bits per weight", bpw, used / weights);
            CHECK(fabs(used / weights - res.bpw) < 1e-12 && fabs(total - res.est_err) < 1e-12 * total,
                  "bpw %g: the result's figures", bpw);
            CHECK(total >= best - 1e-12 * best && total <= best + step, "bpw %g%s: error %.6g, optimum %.6g", bpw,
                  tie ? " (sites tied)" : "", total, best);
            CHECK(!tie || (mods[QC_LIN_K].spec.bits == mods[QC_LIN_Q].spec.bits &&
                           mods[QC_LIN_V].spec.bits == mods[QC_LIN_Q].spec.bits &&
                           mods[QC_LIN_UP].spec.bits == mods[QC_LIN_GATE].spec.bits),
                  "bpw %g: q, k, v share a setting, and gate, up", bpw);
        }
}

/* A weight source with one linear replaced: the model a measured candidate stands for. */
typedef struct swap {
    qc_weight_source base;
    qc_weight w;
    int layer;
    const float *with; /* rows*cols values of w at layer */
    size_t n;
} swap;

static qc_status swap_read(void *ctx, qc_weight w, int layer, float *out, qc_err *e) {
    const swap *s = ctx;
    if (w != s->w || layer != s->layer) return s->base.read(s->base.ctx, w, layer, out, e);
    memcpy(out, s->with, s->n * sizeof(float));
    return QC_OK;
}

/* Log-probabilities (nwin*seqlen, vocab) of stories260K on the first nwin windows of w, its
 * linears from s, forwarded `chunk` windows at a time as the runner and the measure do: the
 * same shapes through the same code, so the same logits to the last bit. */
static float *logprobs_with(const swap *s, const qc_windows *w, int nwin, int chunk) {
    qc_err e = { "" };
    qc_model *m;
    CHECK_OK(qc_model_open(&m, shared_path("models/stories260K/stories260K.bin"), &e), e);
    qc_weight_source src = { s->base.cfg, swap_read, NULL, (void *)s };
    qc_model_set_linears(m, &src);
    int vocab = m->cfg.vocab_size;
    size_t ntok = (size_t)nwin * w->seqlen;
    float *lp = malloc(ntok * vocab * sizeof(float));
    qc_workspace *ws = qc_workspace_new(&m->cfg, chunk * w->seqlen, w->seqlen, &e);
    for (int w0 = 0; w0 < nwin; w0 += chunk) {
        size_t at = (size_t)w0 * w->seqlen;
        int nw = nwin - w0 < chunk ? nwin - w0 : chunk;
        CHECK_OK(qc_model_forward(m, w->tokens + at, nw, w->seqlen, lp + at * vocab, ws, &e), e);
    }
    for (size_t t = 0; t < ntok; t++) qc_log_softmax(lp + t * vocab, vocab, lp + t * vocab);
    qc_workspace_free(ws);
    qc_model_free(m);
    return lp;
}

/* The measured error of candidate spec for linear lw of block `layer`, computed here: mean
 * KL per token over the first nwin windows between the model of `base` (its weight lw at
 * layer as loaded, fp32) and the same with that weight rounded to nearest by spec. */
static double kl_of_candidate(const qc_weight_source *base, const qc_checkpoint *ck, qc_weight lw, int layer,
                              const qc_quant_spec *spec, const qc_windows *w, int nwin, int chunk) {
    qc_err e = { "" };
    int rows, cols;
    qc_weight_shape(qc_checkpoint_config(ck), lw, &rows, &cols);
    size_t n = (size_t)rows * cols;
    float *fp = malloc(n * sizeof(float)), *deq = malloc(n * sizeof(float));
    CHECK_OK(qc_checkpoint_read(ck, lw, layer, fp, &e), e);
    qc_qweight q = { 0 };
    CHECK_OK(qc_quant_rtn(fp, rows, cols, spec, &q, &e), e);
    qc_qweight_dequantize(&q, deq);
    swap as_is = { *base, lw, layer, fp, n }, cand = { *base, lw, layer, deq, n };
    float *p = logprobs_with(&as_is, w, nwin, chunk), *r = logprobs_with(&cand, w, nwin, chunk);
    int vocab = qc_checkpoint_config(ck)->vocab_size;
    double kl = 0;
    for (size_t t = 0; t < (size_t)nwin * w->seqlen; t++) kl += qc_kl_logprobs(p + t * vocab, r + t * vocab, vocab);
    qc_qweight_free(&q);
    free(fp), free(deq), free(p), free(r);
    return kl / ((double)nwin * w->seqlen);
}

/* Mixed precision's measure (RTN, so a candidate depends on the weight alone) against the
 * KL divergence computed here from whole-model forwards: block 0's q_proj (the rest of the
 * model fp32, as the measure keeps it) and the last block's down_proj (every earlier linear
 * rounded by the run's setting, as the measuring pass quantizes them). 4096 tokens: the
 * first 8 windows of 512. */
static void test_mixed_measure_is_kl(void) {
    qc_err e = { "" };
    qc_windows w = calib_windows();
    qc_model *m;
    CHECK_OK(qc_model_open(&m, shared_path("models/stories260K/stories260K.bin"), &e), e);
    qc_calib_opts o = { .method = QC_METHOD_RTN, .spec = { .bits = 4, .groupsize = 128 }, .true_sequential = true };
    qc_quant_spec cands[2] = { { .bits = 3, .groupsize = 32 }, { .bits = 8, .groupsize = 128 } };
    int nl = m->cfg.n_layers;
    double *err = malloc((size_t)nl * QC_LIN_COUNT * 2 * sizeof(double));
    CHECK_OK(qc_mixed_measure(m, &w, &o, cands, 2, err, &e), e);
    qc_quantized q;
    CHECK_OK(qc_calibrate(m, &w, &o, &q, &e), e);
    qc_weight_source fp32 = qc_checkpoint_source(m->ck), rounded = qc_quantized_source(&q);
    struct { const qc_weight_source *base; qc_linear lin; int layer; } cases[2] = {
        { &fp32, QC_LIN_Q, 0 }, { &rounded, QC_LIN_DOWN, nl - 1 } };
    for (int c = 0; c < 2; c++) {
        double kl[2];
        for (int j = 0; j < 2; j++) {
            kl[j] = kl_of_candidate(cases[c].base, m->ck, qc_linear_weight(cases[c].lin), cases[c].layer, &cands[j], &w, 8,
                                    qc_calib_chunk_windows(&o, w.n, w.seqlen));
            double got = err[((size_t)cases[c].layer * QC_LIN_COUNT + cases[c].lin) * 2 + j];
            /* the same log-probabilities (logprobs_with); only the order of the per-token KL
             * terms' double sum differs (and the division by 4096 tokens, exact) */
            CHECK(fabs(got - kl[j]) <= 2 * fp64_gamma(4096) * kl[j], "block %d %s at %d bits: measured %.17g, KL computed here %.17g",
                  cases[c].layer, qc_weight_short_name(qc_linear_weight(cases[c].lin)), cands[j].bits, got, kl[j]);
        }
        CHECK(kl[0] > 100 * kl[1], "3 bits in groups of 32 (%.3g) cost far more than 8 bits (%.3g)", kl[0], kl[1]);
    }
    free(err);
    qc_quantized_free(&q);
    qc_model_free(m);
    qc_windows_free(&w);
}

int main(void) {
    RUN(test_stats_figures);
    RUN(test_block0_hessian_matches_reference);
    RUN(test_pipeline_matches_reference_run);
    RUN(test_npy_windows);
    RUN(test_embedding_quantized_with_the_run);
    RUN(test_mixed_choice_against_exhaustive);
    RUN(test_mixed_measure_is_kl);
    return check_summary();
}
