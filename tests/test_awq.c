/* test_awq.c — awq/ against the llm-awq reference's own outputs on stories260K: every AWQ
 * case of the test vectors ($QCALIB_TESTVECTORS, default ../shared/testvectors; README §3
 * there), one line per case; then the pieces' own properties on synthetic tensors.
 *
 * Per case, as the case's mode says: the scale search (gate/up inspected through the whole
 * MLP, down alone) must choose the reference's grid point, with every grid point's loss
 * within 1e-4 relative and the scales within 1e-5 relative; folding the scales must give the
 * reference's RMSNorm weight or up_proj rows (1e-5); the clip search (down, o) the same
 * clip ranges (1e-5); and the final AWQ-style quantization the reference's codes (at least
 * 99.9% equal; a weight within rounding of a rounding boundary may flip), scales and zero
 * points (1e-5) and dequantized weights. */
#include "awq/awq.h"
#include "tests/check.h"
#include "tests/vectors.h"

#define TOL_SCALE 1e-5
#define TOL_LOSS 1e-4

static double rel(double a, double b) { return fabs(a - b) / (fabs(b) > 1e-30 ? fabs(b) : 1.0); }

/* stories260K's shape (README §1 of the vectors). */
static qc_config stories_config(void) {
    return (qc_config){ .dim = 64, .hidden_dim = 172, .n_layers = 5, .n_heads = 8, .n_kv_heads = 4, .head_dim = 8,
                        .vocab_size = 512, .seq_len = 512, .norm_eps = 1e-5f, .rope_theta = 10000.0f };
}

/* The final quantization of fc (AWQ-style, on its scaled and clipped weight) against the
 * reference's codes, scales, zeros and dequantized weight; returns the share of equal codes. */
static double check_quantized(const tv_case *k, const char *fc, const float *w, int rows, int cols,
                              const qc_quant_spec *spec) {
    char n_codes[64], n_sc[64], n_z[64], n_q[64];
    snprintf(n_codes, sizeof n_codes, "%s_codes", fc);
    snprintf(n_sc, sizeof n_sc, "%s_qscales", fc);
    snprintf(n_z, sizeof n_z, "%s_qzeros", fc);
    snprintf(n_q, sizeof n_q, "%s_q", fc);
    size_t nc = 0, ns = 0, nz = 0, nq = 0;
    uint8_t *codes = tv_array(k, n_codes, "u8", &nc);
    float *sc = tv_array(k, n_sc, "f32", &ns), *z = tv_array(k, n_z, "f32", &nz), *q = tv_array(k, n_q, "f32", &nq);
    qc_qweight r = { 0 };
    qc_err e = { "" };
    double share = 0.0;
    if (codes && sc && z && q && nc == (size_t)rows * cols && ns == (size_t)rows * qc_quant_ngroups(spec, cols)) {
        CHECK_OK(qc_quant_rtn(w, rows, cols, spec, &r, &e), e);
        size_t same = 0;
        for (size_t i = 0; i < nc && r.codes; i++) same += r.codes[i] == codes[i];
        share = (double)same / (double)nc;
        CHECK(share >= 0.999, "%s %s: %.4f%% of codes equal", k->dir, fc, 100 * share);
        CHECK(r.scales && tv_max_rel(r.scales, sc, ns) <= TOL_SCALE, "%s %s: quantization scales differ by %.3g relative",
              k->dir, fc, r.scales ? tv_max_rel(r.scales, sc, ns) : -1.0);
        size_t zsame = 0;
        for (size_t i = 0; i < ns && r.zeros; i++) zsame += r.zeros[i] == z[i];
        CHECK(zsame == ns, "%s %s: %zu of %zu zero points equal", k->dir, fc, zsame, ns);
        float *dq = malloc(nq * sizeof(float));
        if (r.codes) qc_qweight_dequantize(&r, dq);
        size_t qsame = 0;
        for (size_t i = 0; i < nq && r.codes; i++) qsame += fabsf(dq[i] - q[i]) <= 1e-5f * (fabsf(q[i]) + 1e-3f);
        CHECK((double)qsame >= 0.999 * (double)nq, "%s %s: %zu of %zu dequantized weights agree", k->dir, fc, qsame, nq);
        free(dq);
    } else {
        CHECK(0, "%s %s: reference quantization arrays with consistent shapes", k->dir, fc);
    }
    qc_qweight_free(&r);
    free(codes), free(sc), free(z), free(q);
    return share;
}

/* The clip search of fc (w scaled, x scaled) against <fc>_clip_max, then the clip applied
 * against <fc>_scaled. w is clipped in place. */
static void check_clip(const tv_case *k, const char *fc, float *w, int rows, int cols, const float *x, int64_t ntok,
                       const qc_quant_spec *spec) {
    char n_clip[64], n_scaled[64];
    snprintf(n_clip, sizeof n_clip, "%s_clip_max", fc);
    snprintf(n_scaled, sizeof n_scaled, "%s_scaled", fc);
    size_t ncl = 0, nsc = 0;
    float *clip_ref = tv_array(k, n_clip, "f32", &ncl), *scaled = tv_array(k, n_scaled, "f32", &nsc);
    /* the reference clips per row with group size = in_features when it quantizes per row */
    int ng = qc_quant_ngroups(spec, cols);
    float *clip = malloc((size_t)rows * ng * sizeof(float));
    qc_err e = { "" };
    if (clip_ref && scaled && ncl == (size_t)rows * ng && nsc == (size_t)rows * cols) {
        CHECK_OK(qc_awq_search_clip(w, rows, cols, x, ntok, spec, clip, &e), e);
        CHECK(tv_max_rel(clip, clip_ref, ncl) <= TOL_SCALE, "%s %s: clip ranges differ by %.3g relative", k->dir, fc,
              tv_max_rel(clip, clip_ref, ncl));
        qc_awq_apply_clip(w, rows, cols, spec->groupsize, clip);
        CHECK(tv_max_rel(w, scaled, nsc) <= TOL_SCALE, "%s %s: clipped weights differ by %.3g relative", k->dir, fc,
              tv_max_rel(w, scaled, nsc));
    } else {
        CHECK(0, "%s %s: clip arrays with consistent shapes", k->dir, fc);
    }
    free(clip_ref), free(scaled), free(clip);
}

/* One case: search (unless clip only), fold, clip, quantize; one line. */
static void run_case(const char *name) {
    tv_case k;
    if (!tv_open(&k, name)) return;
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(k.options, "mode");
    const cJSON *bits = cJSON_GetObjectItemCaseSensitive(k.options, "w_bit");
    const cJSON *gs = cJSON_GetObjectItemCaseSensitive(k.options, "q_group_size");
    CHECK(cJSON_IsString(mode) && cJSON_IsNumber(bits) && cJSON_IsNumber(gs), "%s: options", name);
    if (!cJSON_IsString(mode) || !cJSON_IsNumber(bits) || !cJSON_IsNumber(gs)) return tv_close(&k);
    bool mlp = strcmp(mode->valuestring, "llama_mlp") == 0, down = strcmp(mode->valuestring, "linear") == 0;
    qc_quant_spec spec = { .bits = bits->valueint, .groupsize = gs->valueint > 0 ? gs->valueint : 0, .awq_range = true };
    qc_config c = stories_config();
    size_t nx = 0;
    float *x = tv_array(&k, "X", "f32", &nx);
    int ntok = tv_dim(&k, "X", 0), width = tv_dim(&k, "X", 1), seqlen = 512, nwin = ntok / seqlen;
    qc_block b = { 0 };
    float *s = calloc((size_t)width, sizeof(float));
    qc_err e = { "" };
    qc_awq_group g = { 0 };
    double loss_err = 0.0, s_err = 0.0, codes = 1.0;
    int best = -1, want = -1;
    if (!x || nwin * seqlen != ntok) {
        CHECK(0, "%s: X of whole 512-token windows", name);
        goto done;
    }
    if (mlp || down) {
        b.ffn_norm = mlp ? tv_array(&k, "prev_weight", "f32", NULL) : NULL;
        b.w[QC_LIN_UP] = tv_array(&k, mlp ? "up" : "prev_weight", "f32", NULL);
        b.w[QC_LIN_DOWN] = tv_array(&k, "down", "f32", NULL);
        if (mlp) b.w[QC_LIN_GATE] = tv_array(&k, "gate", "f32", NULL);
        float *hist = tv_array(&k, "loss_history", "f32", NULL), *sref = tv_array(&k, "scales", "f32", NULL);
        float *prev_ref = tv_array(&k, "prev_weight_scaled", "f32", NULL);
        want = (int)tv_scalar(&k, "best_ratio_index");
        qc_site site = mlp ? QC_SITE_GATE_UP : QC_SITE_DOWN;
        qc_awq_opts o = { .chunk_windows = 1 };
        qc_workspace *ws = qc_workspace_new(&c, seqlen, seqlen, &e);
        bool ok = ws && hist && sref && prev_ref && b.w[QC_LIN_UP] && b.w[QC_LIN_DOWN] && (!mlp || (b.ffn_norm && b.w[QC_LIN_GATE]));
        CHECK(ok, "%s: inputs loaded", name);
        if (ok) CHECK_OK(qc_awq_search_scale(&c, &b, 0, site, x, nwin, seqlen, &spec, &o, ws, s, &g, &e), e);
        best = g.best;
        CHECK(best == want, "%s: grid point %d chosen, the reference chose %d", name, best, want);
        for (int r = 0; ok && r < QC_AWQ_GRID; r++) loss_err = fmax(loss_err, rel(g.loss[r], hist[r]));
        CHECK(ok && loss_err <= TOL_LOSS, "%s: losses differ by %.3g relative", name, loss_err);
        s_err = ok ? tv_max_rel(s, sref, (size_t)width) : 1.0;
        CHECK(s_err <= TOL_SCALE, "%s: scales differ by %.3g relative", name, s_err);
        const float *sites[QC_SITE_COUNT] = { 0 };
        sites[site] = s;
        if (ok) qc_block_scale(&c, &b, sites);
        const float *prev = mlp ? b.ffn_norm : b.w[QC_LIN_UP];
        size_t nprev = mlp ? (size_t)c.dim : (size_t)c.hidden_dim * c.dim;
        CHECK(ok && tv_max_rel(prev, prev_ref, nprev) <= TOL_SCALE, "%s: folded prev weight differs by %.3g", name,
              ok ? tv_max_rel(prev, prev_ref, nprev) : -1.0);
        for (size_t i = 0; i < nx; i++) x[i] /= s[i % (size_t)width];
        if (ok && mlp) {
            size_t n = (size_t)c.hidden_dim * c.dim;
            float *gs_ref = tv_array(&k, "gate_scaled", "f32", NULL), *us_ref = tv_array(&k, "up_scaled", "f32", NULL);
            CHECK(gs_ref && us_ref && tv_max_rel(b.w[QC_LIN_GATE], gs_ref, n) <= TOL_SCALE &&
                  tv_max_rel(b.w[QC_LIN_UP], us_ref, n) <= TOL_SCALE, "%s: scaled gate/up", name);
            free(gs_ref), free(us_ref);
            codes = fmin(check_quantized(&k, "gate", b.w[QC_LIN_GATE], c.hidden_dim, c.dim, &spec),
                         check_quantized(&k, "up", b.w[QC_LIN_UP], c.hidden_dim, c.dim, &spec));
        } else if (ok) {
            check_clip(&k, "down", b.w[QC_LIN_DOWN], c.dim, c.hidden_dim, x, ntok, &spec);
            codes = check_quantized(&k, "down", b.w[QC_LIN_DOWN], c.dim, c.hidden_dim, &spec);
        }
        qc_workspace_free(ws);
        free(hist), free(sref), free(prev_ref);
    } else { /* clip only, on o with s = 1 */
        b.w[QC_LIN_O] = tv_array(&k, "o", "f32", NULL);
        if (b.w[QC_LIN_O]) {
            check_clip(&k, "o", b.w[QC_LIN_O], c.dim, c.dim, x, ntok, &spec);
            codes = check_quantized(&k, "o", b.w[QC_LIN_O], c.dim, c.dim, &spec);
        }
    }
    printf("    %-24s %-9s tokens %5d  grid point %2d (ref %2d)  loss %.2g  scales %.2g  codes %.2f%%\n", name,
           mode->valuestring, ntok, best, want, loss_err, s_err, 100 * codes);
done:
    qc_block_free(&b);
    free(x), free(s);
    tv_close(&k);
}

static void test_reference_cases(void) {
    int n = tv_run_cases("awq", run_case);
    CHECK(n == 7, "%d AWQ cases run (the shared set has 7)", n);
}

/* A small synthetic block without grouped-query attention, so all four sites can be scaled. */
static qc_config small_config(void) {
    return (qc_config){ .dim = 16, .hidden_dim = 24, .n_layers = 1, .n_heads = 2, .n_kv_heads = 2, .head_dim = 8,
                        .vocab_size = 32, .seq_len = 16, .norm_eps = 1e-5f, .rope_theta = 10000.0f };
}

static float urand(uint64_t *st) { /* in [-1, 1) */
    *st = *st * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*st >> 40) / (double)(1 << 24)) * 2.0f - 1.0f;
}

/* A block of random weights; with q, k, v and o biases when c has them. */
static void random_block(const qc_config *c, qc_block *b, uint64_t *st) {
    b->attn_norm = malloc((size_t)c->dim * sizeof(float));
    b->ffn_norm = malloc((size_t)c->dim * sizeof(float));
    for (int j = 0; j < c->dim; j++) b->attn_norm[j] = 1.0f + 0.5f * urand(st), b->ffn_norm[j] = 1.0f + 0.5f * urand(st);
    for (int l = 0; l < QC_LIN_COUNT; l++) {
        int rows, cols;
        qc_weight_shape(c, qc_linear_weight(l), &rows, &cols);
        b->w[l] = malloc((size_t)rows * cols * sizeof(float));
        for (int i = 0; i < rows * cols; i++) b->w[l][i] = 0.3f * urand(st);
        if (qc_linear_bias(l) == QC_W_COUNT || !qc_weight_present(c, qc_linear_bias(l))) continue;
        b->bias[l] = malloc((size_t)rows * sizeof(float));
        for (int i = 0; i < rows; i++) b->bias[l][i] = 0.5f * urand(st);
    }
}

/* Hooks that copy the norm outputs (qkv, gate_up inputs) and, at gate_up, the residual. */
typedef struct probe {
    float *xn[QC_SITE_COUNT];
} probe;

static qc_status on_probe(void *ctx, qc_hook_call *call, qc_err *e) {
    probe *p = ctx;
    if (p->xn[call->site]) memcpy(p->xn[call->site], call->x, (size_t)call->ntok * call->cols * sizeof(float));
    return QC_OK;
}

static double max_rel_diff(const float *a, const float *b, size_t n) {
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i])), m = fmax(m, fabs((double)b[i]));
    return d / m;
}

/* Folding scales at all four sites leaves the block's function unchanged (with attention
 * biases too: v's bias is divided with v's rows); the sub-block forward is the block's own
 * attention and MLP. */
static void scale_and_subblock(bool biases) {
    qc_config c = small_config();
    c.attn_qkv_bias = c.attn_o_bias = biases;
    uint64_t st = 7;
    qc_block b = { 0 };
    random_block(&c, &b, &st);
    int nwin = 2, seqlen = 16, ntok = nwin * seqlen, dim = c.dim;
    float *x0 = malloc((size_t)ntok * dim * sizeof(float)), *x = malloc((size_t)ntok * dim * sizeof(float));
    float *xs = malloc((size_t)ntok * dim * sizeof(float)), *sub = malloc((size_t)ntok * dim * sizeof(float));
    for (int i = 0; i < ntok * dim; i++) x0[i] = urand(&st);
    qc_err e = { "" };
    qc_workspace *ws = qc_workspace_new(&c, ntok, seqlen, &e);
    probe p = { { 0 } };
    p.xn[QC_SITE_QKV] = malloc((size_t)ntok * dim * sizeof(float));
    p.xn[QC_SITE_GATE_UP] = malloc((size_t)ntok * dim * sizeof(float));
    qc_hooks hooks = { on_probe, &p };
    memcpy(x, x0, (size_t)ntok * dim * sizeof(float));
    CHECK_OK(qc_block_forward(&c, &b, 0, x, nwin, seqlen, &hooks, ws, &e), e);
    /* x = x0 + attention(xn_qkv) + mlp(xn_gate_up), where x0 + attention(...) is the MLP's residual */
    CHECK_OK(qc_subblock_forward(&c, &b, 0, QC_SUB_ATTENTION, p.xn[QC_SITE_QKV], nwin, seqlen, sub, ws, &e), e);
    for (int i = 0; i < ntok * dim; i++) xs[i] = x0[i] + sub[i];
    CHECK_OK(qc_subblock_forward(&c, &b, 0, QC_SUB_MLP, p.xn[QC_SITE_GATE_UP], nwin, seqlen, sub, ws, &e), e);
    for (int i = 0; i < ntok * dim; i++) xs[i] += sub[i];
    CHECK(max_rel_diff(xs, x, (size_t)ntok * dim) == 0.0, "attention + MLP sub-blocks = the block: %.3g",
          max_rel_diff(xs, x, (size_t)ntok * dim));
    float *s[QC_SITE_COUNT];
    for (int k = 0; k < QC_SITE_COUNT; k++) {
        int n = k == QC_SITE_DOWN ? c.hidden_dim : dim;
        s[k] = malloc((size_t)n * sizeof(float));
        for (int j = 0; j < n; j++) s[k][j] = expf(2.0f * urand(&st)); /* 0.14 .. 7.4 */
    }
    qc_block_scale(&c, &b, (const float *const *)s);
    memcpy(xs, x0, (size_t)ntok * dim * sizeof(float));
    CHECK_OK(qc_block_forward(&c, &b, 0, xs, nwin, seqlen, NULL, ws, &e), e);
    CHECK(max_rel_diff(xs, x, (size_t)ntok * dim) < 1e-5, "scaled block = block%s: %.3g", biases ? " with biases" : "",
          max_rel_diff(xs, x, (size_t)ntok * dim));
    for (int k = 0; k < QC_SITE_COUNT; k++) free(s[k]);
    qc_workspace_free(ws);
    qc_block_free(&b);
    free(x0), free(x), free(xs), free(sub), free(p.xn[QC_SITE_QKV]), free(p.xn[QC_SITE_GATE_UP]);
}

static void test_scale_and_subblock(void) { scale_and_subblock(false); }
static void test_scale_and_subblock_biases(void) { scale_and_subblock(true); }

/* Grid point 0 is the unscaled candidate; the normalisation makes max·min = 1; channels never
 * active (FFN padding) neither change the others' scales nor get more than 1e-4 of them. */
static void test_candidate_scales(void) {
    float xm[5] = { 0.5f, 2.0f, 0.01f, 1.0f, 0.0f }, s4[4], s5[5], one[4];
    qc_awq_candidate(xm, NULL, 4, 0, false, one);
    CHECK(one[0] == 1 && one[1] == 1 && one[2] == 1 && one[3] == 1, "r = 0: s = 1");
    qc_awq_candidate(xm, NULL, 4, 10, false, s4);
    float mx = 0, mn = 1e9f;
    for (int j = 0; j < 4; j++) mx = fmaxf(mx, s4[j]), mn = fminf(mn, s4[j]);
    CHECK_NEAR(mx * mn, 1.0, 1e-6);
    CHECK_NEAR(s4[1] / s4[0], 2.0, 1e-6); /* sqrt(2 / 0.5) */
    qc_awq_candidate(xm, NULL, 5, 10, false, s5);
    CHECK(memcmp(s4, s5, sizeof s4) == 0, "a zero channel leaves the others' scales as they were");
    CHECK(s5[4] < 1e-3f, "the zero channel's scale is the floor: %g", s5[4]);
}

int main(void) {
    RUN(test_reference_cases);
    RUN(test_scale_and_subblock);
    RUN(test_scale_and_subblock_biases);
    RUN(test_candidate_scales);
    return check_summary();
}
