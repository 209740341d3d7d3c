/* vectors/gptq.c — gptq/ against the reference's own outputs: every GPTQ case of the test
 * vectors ($QCALIB_TESTVECTORS, default ../shared/testvectors; README.md there gives the
 * layouts and the reference's semantics), through both routes to U; then the escalation
 * of the damping, the round-to-nearest fallback, refusal of non-finite input, static
 * groups, independence of the thread count, and GPTQ against round-to-nearest.
 *
 * Agreement required: g_idx and perm equal; every group parameter set from the original
 * weights equal bit for bit; every other parameter, every code and the loss within the
 * rounding an fp32 run can carry, derived in gptq_exact.h from the reference's own codes
 * (compare() says how). No tolerance is taken from a run.
 *
 * Agreement reached. The reference route (every case here: fewer than 1024 columns) makes
 * the reference's own LAPACK calls on one thread and sums mean(diag H) as torch does. With
 * the kernel OpenBLAS picks itself on an AVX-512 machine it reproduces all 141 cases bit
 * for bit (codes, scales, zeros, g_idx, perm); the loss differs by about 1e-7 relative,
 * qcalib summing in double and the reference with torch.sum in fp32. With OpenBLAS's
 * Haswell or Sandybridge kernel the second-block scales of down_proj move in their last
 * bits, and one code of w4_g32_sym/L2.w2 may flip at a tie. The fast route (potrf + trtri
 * of the reversed Hessian, used from 1024 columns) differs from the reference's U by
 * rounding and is held to the same bounds. */
#include "gptq/gptq.h"
#include "gptq/internal.h"
#include "tests/check.h"
#include "tests/gptq_exact.h"

#include <cjson/cJSON.h>

static const char *vectors_dir(void) {
    const char *d = getenv("QCALIB_TESTVECTORS");
    return d && *d ? d : shared_path("testvectors");
}

/* A raw array of a case (README §1): dtype checked against case.json, file size against
 * the shape. NULL (with a failed CHECK) when anything is off. */
static void *load_array(const char *case_dir, const cJSON *arrays, const char *name, const char *dtype,
                        size_t elsize, size_t *count) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(arrays, name);
    const cJSON *file = cJSON_GetObjectItemCaseSensitive(a, "file");
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(a, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(a, "shape");
    CHECK(cJSON_IsString(file) && cJSON_IsString(dt) && cJSON_IsArray(shape), "%s: array %s described", case_dir, name);
    if (!cJSON_IsString(file) || !cJSON_IsString(dt) || !cJSON_IsArray(shape)) return NULL;
    CHECK(strcmp(dt->valuestring, dtype) == 0, "%s: %s has dtype %s, expected %s", case_dir, name, dt->valuestring, dtype);
    size_t n = 1;
    const cJSON *d;
    cJSON_ArrayForEach(d, shape) n *= cJSON_IsNumber(d) && d->valuedouble >= 0 ? (size_t)d->valuedouble : 0;
    char *path = qc_path_join(case_dir, file->valuestring), *buf = NULL;
    size_t len = 0;
    qc_err e = { "" };
    qc_status st = qc_read_file(path, (size_t)1 << 30, &buf, &len, &e);
    CHECK(st == QC_OK, "%s", e.msg);
    CHECK(st || len == n * elsize, "%s: %zu bytes, its shape says %zu", path, len, n * elsize);
    free(path);
    if (st || len != n * elsize || strcmp(dt->valuestring, dtype) != 0) {
        free(buf);
        return NULL;
    }
    *count = n;
    return buf;
}

static int json_int(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    CHECK(cJSON_IsNumber(v), "option %s", key);
    return cJSON_IsNumber(v) ? v->valueint : 0;
}

static bool json_bool(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    CHECK(cJSON_IsBool(v), "option %s", key);
    return cJSON_IsTrue(v);
}

/* The worst figures over a pass through all cases: how close each measured difference came
 * to its bound (1 = at the bound). */
typedef struct agreement {
    int cases, exact, flipped_rows;
    double scale_used, zero_ties, code_used, loss_used;
} agreement;

static double dist_to_half(double t) { return fabs(t - floor(t) - 0.5); }

/* The first column (processing order) where row r's codes differ, or n. */
static int first_flip(const qc_qweight *r, const uint8_t *codes, const int32_t *perm, int row, int n) {
    for (int j = 0; j < n; j++)
        if (r->codes[(size_t)row * n + perm[j]] != codes[(size_t)row * n + perm[j]]) return j;
    return n;
}

/* Our result r against the reference's, with the bounds of gptq_exact.h computed from the
 * reference's own codes:
 * - a group's scale and zero point come from exact operations (min, max, one subtraction,
 *   one division, round half to even: each correctly rounded in IEEE fp32, in torch as here)
 *   on its weights. Where those are the original W (per channel, static groups, any group
 *   set in the first block) they must be equal bit for bit. A dynamic group set at block
 *   b > 0 sees w^(b), each within δ^(b): its scale may differ by 2·max δ^(b)/maxq plus one
 *   rounding on each side, its zero point (asymmetric) by one only where −xmin/scale lies
 *   that close to a tie;
 * - a code may differ only where w_j/scale lies within that rounding of a tie between two
 *   codes. Only the first differing code of a row is judged: after it the row's compensation
 *   differs by a whole step, and so may its later codes and later groups' parameters;
 * - the losses: the reference's is torch.sum in fp32 of rows·cols terms (within
 *   γ̃(rows·cols) of their exact sum, in any order), ours a double sum; each term within the
 *   bound of gptq_exact_loss. So the two differ by at most those bounds plus the difference
 *   between the two runs' exact losses, which is 0 unless codes differ. */
static void compare(const char *name, const qc_quant_spec *s, const qc_gptq_opts *o, const float *w, const float *h,
                    int rows, int n, const qc_qweight *r, const qc_gptq_info *info, const uint8_t *codes,
                    const float *scales, const float *zeros, const int32_t *g_idx, const int32_t *perm, double error,
                    bool verbose, agreement *agg) {
    bool gi_ok = memcmp(r->g_idx, g_idx, (size_t)n * 4) == 0, perm_ok = memcmp(r->perm, perm, (size_t)n * 4) == 0;
    CHECK(gi_ok, "%s: g_idx", name);
    CHECK(perm_ok, "%s: perm", name);
    CHECK(!info->fallback && info->retries == 0 && info->damp == o->percdamp, "%s: factorized at once", name);
    if (!gi_ok || !perm_ok) return;
    int ng = r->ngroups, maxq = (1 << s->bits) - 1;
    qc_qweight ref = *r;
    ref.codes = (uint8_t *)codes, ref.scales = (float *)scales, ref.zeros = (float *)zeros;
    float *qr = malloc((size_t)rows * n * 4), *qo = malloc((size_t)rows * n * 4);
    gptq_exact xr = { 0 }, xo = { 0 };
    bool ok = qr && qo && gptq_exact_init(&xr, w, h, rows, n, perm, o->percdamp) &&
              gptq_exact_init(&xo, w, h, rows, n, perm, o->percdamp);
    CHECK(ok, "%s: the damped Hessian factorizes in double", name);
    if (ok) {
        qc_qweight_dequantize(&ref, qr), qc_qweight_dequantize(r, qo);
        gptq_exact_solve(&xr, qr, perm), gptq_exact_solve(&xo, qo, perm);
        bool bits = true;
        int flipped = 0;
        for (int row = 0; row < rows; row++) {
            int flip = first_flip(r, codes, perm, row, n);
            flipped += flip < n;
            for (int g = 0; g < ng; g++) {
                size_t i = (size_t)row * ng + g;
                bool same = memcmp(&r->scales[i], &scales[i], 4) == 0 && memcmp(&r->zeros[i], &zeros[i], 4) == 0;
                bits = bits && same;
                int c0 = s->groupsize > 0 ? g * s->groupsize : 0, c1 = s->groupsize > 0 ? c0 + s->groupsize : n;
                int b = s->groupsize > 0 && !o->static_groups ? c0 / o->blocksize * o->blocksize : 0;
                if (b == 0) {
                    CHECK(same, "%s: row %d group %d, set from the original weights: scale %.9g zero %g, reference %.9g %g",
                          name, row, g, r->scales[i], r->zeros[i], scales[i], zeros[i]);
                    continue;
                }
                if (flip < b || same) continue;
                double lo = 0, hi = 0, dx = 0;
                for (int j = c0; j < c1 && j < n; j++) {
                    double bound, v = gptq_exact_lazy(&xr, row, j, b, &bound);
                    lo = v < lo ? v : lo, hi = v > hi ? v : hi, dx = bound > dx ? bound : dx;
                }
                if (s->sym) hi = fmax(-lo, hi), lo = lo < 0 ? -hi : lo;
                double sb = 2 * dx / maxq + 2 * FP32_U * fabs(scales[i]), ds = fabs(r->scales[i] - scales[i]);
                CHECK(ds <= sb, "%s: row %d group %d: scale %.9g, reference %.9g, bound %.3g", name, row, g, r->scales[i],
                      scales[i], sb);
                agg->scale_used = fmax(agg->scale_used, ds / sb);
                if (r->zeros[i] != zeros[i]) {
                    double t = -lo / scales[i], tb = (dx + fabs(t) * sb) / scales[i] + 2 * FP32_U * fabs(t);
                    CHECK(fabs(r->zeros[i] - zeros[i]) == 1 && dist_to_half(t) <= tb,
                          "%s: row %d group %d: zero %g, reference %g, not at a tie (%.3g from it, bound %.3g)", name, row,
                          g, r->zeros[i], zeros[i], dist_to_half(t), tb);
                    agg->zero_ties++;
                }
            }
            if (flip == n) continue;
            size_t i = (size_t)row * n + perm[flip];
            int g = g_idx[perm[flip]];
            double sc = scales[(size_t)row * ng + g], srel = fabs(r->scales[(size_t)row * ng + g] - sc) / sc;
            double t = xr.w[(size_t)row * n + flip] / sc;
            double tb = xr.d[(size_t)row * n + flip] / sc + fabs(t) * (srel + 2 * FP32_U);
            CHECK(abs((int)r->codes[i] - (int)codes[i]) == 1 && dist_to_half(t) <= tb,
                  "%s: row %d: code %d, reference %d, where w/scale = %.9g is %.3g from a tie (bound %.3g)", name, row,
                  r->codes[i], codes[i], t, dist_to_half(t), tb);
            agg->code_used = fmax(agg->code_used, dist_to_half(t) / tb);
        }
        double br, bo, lr = gptq_exact_loss(&xr, &br), lo = gptq_exact_loss(&xo, &bo);
        double lb = fp32_gamma_prob((double)rows * n) * lr + br + fp64_gamma((double)rows * n) * lo + bo + fabs(lo - lr);
        CHECK(fabs(info->loss - error) <= lb, "%s: loss %.9g, reference %.9g, bound %.3g", name, info->loss, error, lb);
        agg->loss_used = fmax(agg->loss_used, fabs(info->loss - error) / lb);
        bits = bits && flipped == 0;
        if (verbose)
            printf("    %-22s rows with a differing code %2d of %d; loss %.9g, reference %.9g (bound %.2g)%s\n", name,
                   flipped, rows, info->loss, error, lb, bits ? "  bit-exact" : "");
        agg->cases++;
        agg->exact += bits;
        agg->flipped_rows += flipped;
    }
    gptq_exact_free(&xr), gptq_exact_free(&xo);
    free(qr), free(qo);
}

/* One case: load, quantize, compare; one line per case when `verbose`. */
static void run_case(const char *name, bool verbose, agreement *agg) {
    char dir[1024], *json = NULL;
    snprintf(dir, sizeof dir, "%s/%s", vectors_dir(), name);
    char *cpath = qc_path_join(dir, "case.json");
    size_t len;
    qc_err e = { "" };
    CHECK_OK(qc_read_file(cpath, 1 << 20, &json, &len, &e), e);
    free(cpath);
    cJSON *c = json ? cJSON_Parse(json) : NULL;
    free(json);
    CHECK(c != NULL, "%s: case.json parses", name);
    if (!c) return;
    const cJSON *opt = cJSON_GetObjectItemCaseSensitive(c, "options");
    const cJSON *arrays = cJSON_GetObjectItemCaseSensitive(c, "arrays");
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c, "scalars"), "error");
    CHECK(cJSON_IsNumber(error), "%s: scalar error", name);
    qc_quant_spec s = { .bits = json_int(opt, "wbits"), .groupsize = json_int(opt, "groupsize"), .sym = json_bool(opt, "sym"), .mse = json_bool(opt, "mse") };
    qc_gptq_opts o = qc_gptq_defaults();
    const cJSON *pd = cJSON_GetObjectItemCaseSensitive(opt, "percdamp");
    CHECK(cJSON_IsNumber(pd), "%s: percdamp", name);
    o.percdamp = cJSON_IsNumber(pd) ? (float)pd->valuedouble : 0.01f;
    o.blocksize = json_int(opt, "blocksize");
    o.act_order = json_bool(opt, "act_order");
    o.static_groups = json_bool(opt, "static_groups");

    size_t nw = 0, nh = 0, nc = 0, ns = 0, nz = 0, ngi = 0, np = 0;
    float *w = load_array(dir, arrays, "W", "f32", 4, &nw), *h = load_array(dir, arrays, "H", "f32", 4, &nh);
    uint8_t *codes = load_array(dir, arrays, "codes", "u8", 1, &nc);
    float *scales = load_array(dir, arrays, "scales", "f32", 4, &ns), *zeros = load_array(dir, arrays, "zeros", "f32", 4, &nz);
    int32_t *g_idx = load_array(dir, arrays, "g_idx", "i32", 4, &ngi), *perm = load_array(dir, arrays, "perm", "i32", 4, &np);
    const cJSON *wshape = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(arrays, "W"), "shape");
    const cJSON *d0 = cJSON_GetArrayItem(wshape, 0), *d1 = cJSON_GetArrayItem(wshape, 1);
    int rows = cJSON_IsNumber(d0) ? d0->valueint : 0, cols = cJSON_IsNumber(d1) ? d1->valueint : 0;
    int ng = qc_quant_ngroups(&s, cols);
    bool loaded = w && h && codes && scales && zeros && g_idx && perm && rows > 0 && cols > 0 && nw == (size_t)rows * cols &&
                  nh == (size_t)cols * cols && nc == nw && ns == (size_t)rows * ng && nz == ns && ngi == (size_t)cols &&
                  np == (size_t)cols && cJSON_IsNumber(error);
    CHECK(loaded, "%s: arrays loaded with consistent shapes", name);
    qc_qweight r = { 0 };
    qc_gptq_info info;
    float *w0 = loaded ? malloc(nw * 4) : NULL, *h0 = loaded ? malloc(nh * 4) : NULL;
    if (w0 && h0) {
        memcpy(w0, w, nw * 4), memcpy(h0, h, nh * 4);
        CHECK_OK(qc_gptq_quantize(w, h, rows, cols, &s, &o, &r, &info, &e), e);
    }
    if (w0 && h0 && r.codes) compare(name, &s, &o, w0, h0, rows, cols, &r, &info, codes, scales, zeros, g_idx, perm,
                                   error->valuedouble, verbose, agg);
    qc_qweight_free(&r);
    free(w0), free(h0), free(w), free(h), free(codes), free(scales), free(zeros), free(g_idx), free(perm);
    cJSON_Delete(c);
}

/* Every GPTQ case of the manifest. */
static void run_manifest(bool verbose, const char *label) {
    char *json = NULL;
    size_t len;
    qc_err e = { "" };
    char *mpath = qc_path_join(vectors_dir(), "manifest.json");
    CHECK_OK(qc_read_file(mpath, 1 << 24, &json, &len, &e), e);
    free(mpath);
    cJSON *m = json ? cJSON_Parse(json) : NULL;
    free(json);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(m, "cases"), "gptq");
    CHECK(cJSON_IsArray(list) && cJSON_GetArraySize(list) > 0, "the manifest lists GPTQ cases");
    agreement agg = { 0 };
    const cJSON *it;
    cJSON_ArrayForEach(it, list) {
        if (cJSON_IsString(it)) run_case(it->valuestring, verbose, &agg);
    }
    CHECK(agg.cases == cJSON_GetArraySize(list), "%d of %d cases compared", agg.cases, cJSON_GetArraySize(list));
    printf("    %s: %d cases, %d bit-exact, %d rows with a differing code, %.0f zero points at a tie; worst measured/bound:"
           " scales %.2g, codes' distance to a tie %.2g, loss %.2g\n",
           label, agg.cases, agg.exact, agg.flipped_rows, agg.zero_ties, agg.scale_used, agg.code_used, agg.loss_used);
    cJSON_Delete(m);
}

static void test_vectors(void) { run_manifest(true, "reference route"); }

/* The same cases with U from potrf + trtri of the reversed Hessian (the route of layers
 * with 1024 columns or more), against the same bounds. */
static void test_vectors_fast_route(void) {
    int old = qc_gptq_set_fast_route_min(1);
    run_manifest(false, "fast route");
    qc_gptq_set_fast_route_min(old);
}

/* ---- synthetic cases (SYNTHETIC: random weights and activations made here) ------------ */

static uint64_t rng_state = 88172645463325252ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (float)(rng_state >> 40) / (float)(1 << 23) - 1.0f;
}

/* w (rows, cols) random, h = XᵀX of `tokens` random input rows with a few large columns. */
static void make_layer(float *w, float *h, int rows, int cols, int tokens) {
    for (size_t i = 0; i < (size_t)rows * cols; i++) w[i] = 0.05f * frand();
    float *x = malloc((size_t)tokens * cols * sizeof(float));
    for (size_t i = 0; i < (size_t)tokens * cols; i++) x[i] = frand() * (i % cols % 7 == 0 ? 4.0f : 1.0f);
    for (int i = 0; i < cols; i++)
        for (int j = 0; j < cols; j++) {
            double acc = 0;
            for (int t = 0; t < tokens; t++) acc += (double)x[(size_t)t * cols + i] * x[(size_t)t * cols + j];
            h[(size_t)i * cols + j] = (float)acc;
        }
    free(x);
}

static bool same_result(const qc_qweight *a, const qc_qweight *b) {
    if (a->rows != b->rows || a->cols != b->cols || a->ngroups != b->ngroups) return false;
    size_t n = (size_t)a->rows * a->cols, ng = (size_t)a->rows * a->ngroups;
    return memcmp(a->codes, b->codes, n) == 0 && memcmp(a->scales, b->scales, ng * 4) == 0 &&
           memcmp(a->zeros, b->zeros, ng * 4) == 0 && memcmp(a->g_idx, b->g_idx, (size_t)a->cols * 4) == 0 &&
           memcmp(a->perm, b->perm, (size_t)a->cols * 4) == 0;
}

/* SYNTHETIC. An indefinite H (a 2×2 block with eigenvalue −0.5, mean diagonal 1): damping
 * 0.01 and 0.1 fail, 1.0 succeeds. The escalated run equals a run started at 1.0. */
static void test_escalation(void) {
    enum { R = 32, C = 48 };
    static float w[R * C], w0[R * C], h[C * C], h0[C * C];
    for (int i = 0; i < R * C; i++) w0[i] = 0.1f * frand();
    memset(h0, 0, sizeof h0);
    for (int i = 0; i < C; i++) h0[i * C + i] = 1.0f;
    h0[0 * C + 1] = h0[1 * C + 0] = 1.5f;
    qc_quant_spec s = { .bits = 4, .groupsize = 16 };
    qc_gptq_opts o = qc_gptq_defaults();
    qc_qweight r = { 0 }, r2 = { 0 };
    qc_gptq_info info, info2;
    qc_err e = { "" };
    memcpy(w, w0, sizeof w), memcpy(h, h0, sizeof h);
    CHECK_OK(qc_gptq_quantize(w, h, R, C, &s, &o, &r, &info, &e), e);
    CHECK(info.retries == 2 && !info.fallback, "retries %d, fallback %d", info.retries, info.fallback);
    /* 0.01f (within u of 0.01) raised tenfold twice in double: within 2u of 1 */
    CHECK_NEAR(info.damp, 1.0, 2 * FP32_U);
    o.percdamp = 1.0f;
    memcpy(w, w0, sizeof w), memcpy(h, h0, sizeof h);
    CHECK_OK(qc_gptq_quantize(w, h, R, C, &s, &o, &r2, &info2, &e), e);
    CHECK(info2.retries == 0 && same_result(&r, &r2) && info.loss == info2.loss, "escalated run equals a run at damping 1");
    qc_qweight_free(&r), qc_qweight_free(&r2);
}

/* SYNTHETIC. An H no damping within 0.01·10^4 can fix: round-to-nearest, exactly. */
static void test_fallback(void) {
    enum { R = 20, C = 40 };
    static float w[R * C], w0[R * C], h[C * C];
    for (int i = 0; i < R * C; i++) w0[i] = 0.1f * frand();
    memset(h, 0, sizeof h);
    for (int i = 0; i < C; i++) h[i * C + i] = 1.0f;
    h[3 * C + 5] = h[5 * C + 3] = 1e6f;
    memcpy(w, w0, sizeof w);
    qc_quant_spec s = { .bits = 3, .groupsize = 16 };
    qc_gptq_opts o = qc_gptq_defaults();
    o.act_order = true;
    qc_qweight r = { 0 }, rtn = { 0 };
    qc_gptq_info info;
    qc_err e = { "" };
    CHECK_OK(qc_gptq_quantize(w, h, R, C, &s, &o, &r, &info, &e), e);
    CHECK(info.fallback && info.retries == o.max_retries, "fallback %d after %d retries", info.fallback, info.retries);
    CHECK_NEAR(info.damp, 100.0, 100 * 2 * FP32_U); /* 0.01f · 10⁴ in double */
    CHECK_OK(qc_quant_rtn(w0, R, C, &s, &rtn, &e), e);
    CHECK(same_result(&r, &rtn), "the fallback is round-to-nearest");
    qc_qweight_free(&r), qc_qweight_free(&rtn);
}

/* Real activations: H from only 8 tokens of layer 1's gate/up input (rank 8 of 64), no
 * damping. LAPACK cannot factor it; the damping is raised (or the layer falls back). */
static void test_rank_deficient(void) {
    const char *xp = shared_path("testvectors/inputs/act_T512/L1.xm.f32");
    const char *wp = shared_path("testvectors/inputs/stories260K/L1.w1.f32");
    char *xb = NULL, *wb = NULL;
    size_t xl = 0, wl = 0;
    qc_err e = { "" };
    CHECK_OK(qc_read_file(xp, 1 << 24, &xb, &xl, &e), e);
    CHECK_OK(qc_read_file(wp, 1 << 24, &wb, &wl, &e), e);
    CHECK(xl == 512 * 64 * 4 && wl == 172 * 64 * 4, "sizes of %s and %s", xp, wp);
    if (xl == 512 * 64 * 4 && wl == 172 * 64 * 4) {
        const float *x = (const float *)xb;
        float *h = calloc(64 * 64, sizeof(float)), *w = malloc(wl), *w0 = (float *)wb;
        for (int i = 0; i < 64; i++)
            for (int j = 0; j < 64; j++)
                for (int t = 0; t < 8; t++) h[i * 64 + j] += 2.0f * x[t * 64 + i] * x[t * 64 + j];
        memcpy(w, w0, wl);
        qc_quant_spec s = { .bits = 4, .groupsize = 32 };
        qc_gptq_opts o = qc_gptq_defaults();
        o.percdamp = 0.0f;
        qc_qweight r = { 0 }, rtn = { 0 };
        qc_gptq_info info;
        CHECK_OK(qc_gptq_quantize(w, h, 172, 64, &s, &o, &r, &info, &e), e);
        printf("    8 tokens, percdamp 0: retries %d, damping %g, fallback %s\n", info.retries, info.damp,
               info.fallback ? "yes" : "no");
        CHECK(info.retries > 0 || info.fallback, "escalated (retries %d) or fell back", info.retries);
        if (info.fallback) {
            CHECK_OK(qc_quant_rtn(w0, 172, 64, &s, &rtn, &e), e);
            CHECK(same_result(&r, &rtn), "the fallback is round-to-nearest");
        } else {
            CHECK(info.damp > 0.0, "damping raised to %g", info.damp);
        }
        qc_qweight_free(&r), qc_qweight_free(&rtn);
        free(h), free(w);
    }
    free(xb), free(wb);
}

/* Bad input: non-finite weights or Hessian, bad options. Nothing is left allocated. */
static void test_refusals(void) {
    enum { R = 8, C = 16 };
    float w[R * C], h[C * C];
    for (int i = 0; i < R * C; i++) w[i] = frand();
    for (int i = 0; i < C * C; i++) h[i] = i % (C + 1) == 0 ? 2.0f : 0.1f;
    qc_quant_spec s = { .bits = 4, .groupsize = -1 };
    qc_gptq_opts o = qc_gptq_defaults();
    qc_qweight r;
    qc_gptq_info info;
    qc_err e = { "" };
    w[5 * C + 3] = NAN;
    CHECK_FAILS(qc_gptq_quantize(w, h, R, C, &s, &o, &r, &info, &e), e, "non-finite");
    CHECK(strstr(e.msg, "weight") && strstr(e.msg, "[5, 3]"), "names the weight and the entry: %s", e.msg);
    CHECK(r.codes == NULL, "no result on failure");
    w[5 * C + 3] = 0.5f;
    h[2 * C + 9] = INFINITY;
    CHECK_FAILS(qc_gptq_quantize(w, h, R, C, &s, &o, &r, &info, &e), e, "Hessian has a non-finite");
    h[2 * C + 9] = 0.1f;
    s.bits = 9;
    CHECK_FAILS(qc_gptq_quantize(w, h, R, C, &s, &o, &r, &info, &e), e, "--wbits");
    s.bits = 4;
    o.blocksize = 0;
    CHECK_FAILS(qc_gptq_quantize(w, h, R, C, &s, &o, &r, &info, &e), e, "--blocksize");
    o = qc_gptq_defaults();
    o.percdamp = -1.0f;
    CHECK_FAILS(qc_gptq_quantize(w, h, R, C, &s, &o, &r, &info, &e), e, "--percdamp");
    o = qc_gptq_defaults();
    CHECK_FAILS(qc_gptq_quantize(w, h, 0, C, &s, &o, &r, &info, &e), e, "shape");
    CHECK_OK(qc_gptq_quantize(w, h, R, C, &s, NULL, &r, NULL, &e), e); /* NULL options and info: the defaults */
    qc_qweight_free(&r);
}

/* SYNTHETIC. Static groups: every group's parameters from the weights after the dead
 * columns are zeroed and before the permutation; g_idx = c / groupsize. Dynamic groups
 * with act-order: g_idx[perm[k]] = k / groupsize. A short last group (100 = 3×32 + 4). */
static void test_groups(void) {
    enum { R = 24, C = 100, G = 32 };
    static float w[R * C], w0[R * C], h[C * C], h0[C * C];
    make_layer(w0, h0, R, C, 150);
    for (int i = 0; i < C; i++) h0[i * C + 17] = h0[17 * C + i] = 0.0f; /* column 17 is dead */
    qc_quant_spec s = { .bits = 4, .groupsize = G };
    qc_gptq_opts o = qc_gptq_defaults();
    o.act_order = true;
    o.static_groups = true;
    qc_qweight r = { 0 };
    qc_gptq_info info;
    qc_err e = { "" };
    memcpy(w, w0, sizeof w), memcpy(h, h0, sizeof h);
    CHECK_OK(qc_gptq_quantize(w, h, R, C, &s, &o, &r, &info, &e), e);
    CHECK(info.dead == 1 && r.ngroups == 4, "dead %d, groups %d", info.dead, r.ngroups);
    int bad = 0;
    for (int c = 0; c < C; c++) bad += r.g_idx[c] != c / G;
    for (int i = 0; i < R; i++) {
        float wz[C];
        memcpy(wz, w0 + (size_t)i * C, sizeof wz);
        wz[17] = 0.0f;
        for (int g = 0; g < 4; g++) {
            float sc, zp;
            qc_quant_find_params(&s, wz + g * G, g < 3 ? G : C - 3 * G, 1, &sc, &zp, NULL);
            bad += sc != r.scales[i * 4 + g] || zp != r.zeros[i * 4 + g];
        }
    }
    CHECK(bad == 0, "%d static-group parameters or g_idx differ", bad);
    bad = 0; /* the dead column's diagonal counts as 1, as the reference sets it */
#define KEY(c) ((c) == 17 ? 1.0f : h0[(c) * (C + 1)])
    for (int k = 1; k < C; k++) bad += KEY(r.perm[k - 1]) < KEY(r.perm[k]);
#undef KEY
    CHECK(bad == 0, "act-order by decreasing diagonal");
    qc_qweight_free(&r);

    o.static_groups = false;
    memcpy(w, w0, sizeof w), memcpy(h, h0, sizeof h);
    CHECK_OK(qc_gptq_quantize(w, h, R, C, &s, &o, &r, &info, &e), e);
    bad = 0;
    for (int k = 0; k < C; k++) bad += r.g_idx[r.perm[k]] != k / G;
    for (size_t i = 0; i < (size_t)R * C; i++) bad += r.codes[i] > 15;
    CHECK(bad == 0, "dynamic groups in processing order");
    qc_qweight_free(&r);
}

/* SYNTHETIC. The result does not depend on the thread count (several row chunks, blocks
 * and tiles with a short last one: 1000 rows, 300 columns, blocksize 128). */
static void test_threads(void) {
    enum { R = 1000, C = 300 };
    float *w0 = malloc((size_t)R * C * 4), *h0 = malloc((size_t)C * C * 4), *w = malloc((size_t)R * C * 4),
          *h = malloc((size_t)C * C * 4);
    make_layer(w0, h0, R, C, 400);
    qc_quant_spec s = { .bits = 3, .groupsize = 64, .sym = true };
    qc_gptq_opts o = qc_gptq_defaults();
    o.act_order = true;
    qc_qweight r[3] = { { 0 } };
    qc_gptq_info info[3];
    qc_err e = { "" };
    int threads[3] = { 1, 2, 3 }, prev = qc_get_threads();
    for (int k = 0; k < 3; k++) {
        qc_set_threads(threads[k]);
        memcpy(w, w0, (size_t)R * C * 4), memcpy(h, h0, (size_t)C * C * 4);
        CHECK_OK(qc_gptq_quantize(w, h, R, C, &s, &o, &r[k], &info[k], &e), e);
    }
    qc_set_threads(prev);
    CHECK(same_result(&r[0], &r[1]) && same_result(&r[0], &r[2]), "1, 2 and 3 threads give the same result");
    CHECK(info[0].loss == info[1].loss && info[0].loss == info[2].loss, "and the same loss");
    for (int k = 0; k < 3; k++) qc_qweight_free(&r[k]);
    free(w0), free(h0), free(w), free(h);
}

/* Real layer (L2 down_proj, its Hessian from the w4_g32 run): GPTQ's output error is well
 * below round-to-nearest's, by either route (how closely the routes agree with the
 * reference, and so with each other, test_vectors_fast_route checks). */
static void test_against_rtn(void) {
    char *wb = NULL, *hb = NULL;
    size_t wl = 0, hl = 0;
    qc_err e = { "" };
    CHECK_OK(qc_read_file(shared_path("testvectors/inputs/stories260K/L2.w2.f32"), 1 << 24, &wb, &wl, &e), e);
    CHECK_OK(qc_read_file(shared_path("testvectors/gptq/w4_g32/H/L2.w2.f32"), 1 << 24, &hb, &hl, &e), e);
    enum { R = 64, C = 172 };
    if (wl == (size_t)R * C * 4 && hl == (size_t)C * C * 4) {
        const float *w0 = (const float *)wb, *h0 = (const float *)hb;
        float *w = malloc(wl), *h = malloc(hl), *q = malloc(wl);
        qc_quant_spec s = { .bits = 4, .groupsize = 32 };
        qc_gptq_opts o = qc_gptq_defaults();
        o.act_order = true;
        qc_qweight g = { 0 }, f = { 0 }, rtn = { 0 };
        qc_gptq_info info;
        memcpy(w, w0, wl), memcpy(h, h0, hl);
        CHECK_OK(qc_gptq_quantize(w, h, R, C, &s, &o, &g, &info, &e), e);
        int old = qc_gptq_set_fast_route_min(1);
        memcpy(w, w0, wl), memcpy(h, h0, hl);
        CHECK_OK(qc_gptq_quantize(w, h, R, C, &s, &o, &f, &info, &e), e);
        qc_gptq_set_fast_route_min(old);
        CHECK_OK(qc_quant_rtn(w0, R, C, &s, &rtn, &e), e);
        double err[3];
        qc_qweight *res[3] = { &g, &f, &rtn };
        for (int k = 0; k < 3; k++) {
            qc_qweight_dequantize(res[k], q);
            err[k] = qc_quant_output_error(w0, q, R, C, h0);
        }
        printf("    L2.w2 w4 g32 act-order: relative output error GPTQ %.5f (fast route %.5f), RTN %.5f\n", err[0], err[1],
               err[2]);
        CHECK(err[0] < 0.8 * err[2], "GPTQ %.4g is clearly below RTN %.4g", err[0], err[2]);
        CHECK(err[1] < 0.8 * err[2], "the fast route's GPTQ %.4g is clearly below RTN %.4g too", err[1], err[2]);
        qc_qweight_free(&g), qc_qweight_free(&f), qc_qweight_free(&rtn);
        free(w), free(h), free(q);
    }
    free(wb), free(hb);
}

static bool is_f16(float v) { return qc_f16_to_f32(qc_f32_to_f16(v)) == v; }

/* GGUF Q4_1's form (store_min), on a real layer (L2 q_proj, 64 columns = two 32-blocks):
 * scales and mins are fp16 values, every dequantized weight is exactly d·q + m as
 * llama.cpp computes it, RTN's m is the group's minimum rounded to fp16 (its own range), and
 * GPTQ in this form stays well below RTN in the same form. */
static void test_store_min(void) {
    char *wb = NULL, *hb = NULL;
    size_t wl = 0, hl = 0;
    qc_err e = { "" };
    CHECK_OK(qc_read_file(shared_path("testvectors/inputs/stories260K/L2.wq.f32"), 1 << 24, &wb, &wl, &e), e);
    CHECK_OK(qc_read_file(shared_path("testvectors/gptq/w4_g32/H/L2.qkv.f32"), 1 << 24, &hb, &hl, &e), e);
    enum { R = 64, C = 64 };
    if (wl == (size_t)R * C * 4 && hl == (size_t)C * C * 4) {
        const float *w0 = (const float *)wb, *h0 = (const float *)hb;
        float *w = malloc(wl), *h = malloc(hl), *q = malloc(wl);
        qc_quant_spec s = { .bits = 4, .groupsize = 32, .f16_scales = true, .store_min = true };
        qc_qweight g = { 0 }, rtn = { 0 };
        qc_gptq_info info;
        memcpy(w, w0, wl), memcpy(h, h0, hl);
        CHECK_OK(qc_gptq_quantize(w, h, R, C, &s, NULL, &g, &info, &e), e);
        CHECK_OK(qc_quant_rtn(w0, R, C, &s, &rtn, &e), e);
        CHECK(g.mins && rtn.mins, "mins filled");
        int bad_f16 = 0, bad_min = 0, bad_val = 0;
        qc_qweight_dequantize(&g, q);
        for (int i = 0; g.mins && i < R * 2; i++) bad_f16 += !is_f16(g.scales[i]) || !is_f16(g.mins[i]);
        for (int i = 0; rtn.mins && i < R * 2; i++) {
            float lo = w0[(i / 2) * C + (i % 2) * 32];
            for (int c = 1; c < 32; c++) lo = fminf(lo, w0[(i / 2) * C + (i % 2) * 32 + c]);
            bad_min += rtn.mins[i] != qc_f16_to_f32(qc_f32_to_f16(lo));
        }
        for (int r = 0; g.mins && r < R; r++)
            for (int c = 0; c < C; c++) {
                int k = r * 2 + c / 32;
                bad_val += q[r * C + c] != g.scales[k] * (float)g.codes[r * C + c] + g.mins[k];
            }
        CHECK(bad_f16 == 0 && bad_min == 0 && bad_val == 0, "fp16 parameters %d, mins %d, values %d wrong", bad_f16,
              bad_min, bad_val);
        double eg = qc_quant_output_error(w0, q, R, C, h0);
        qc_qweight_dequantize(&rtn, q);
        double er = qc_quant_output_error(w0, q, R, C, h0);
        printf("    L2.wq as GGUF Q4_1 (fp16 d, m): relative output error GPTQ %.5f, RTN %.5f\n", eg, er);
        CHECK(eg < 0.8 * er, "GPTQ %.4g is clearly below RTN %.4g", eg, er);
        qc_quant_spec bad = s;
        bad.sym = true;
        qc_qweight_free(&rtn);
        CHECK_FAILS(qc_quant_rtn(w0, R, C, &bad, &rtn, &e), e, "asymmetric");
        qc_qweight_free(&g);
        free(w), free(h), free(q);
    }
    free(wb), free(hb);
}

/* Real layer (L2 down_proj): fp16 scales are fp16 values and cost little; the MSE clip
 * search runs inside GPTQ (the initial per-row parameters too) and stays below RTN. */
static void test_options(void) {
    char *wb = NULL, *hb = NULL;
    size_t wl = 0, hl = 0;
    qc_err e = { "" };
    CHECK_OK(qc_read_file(shared_path("testvectors/inputs/stories260K/L2.w2.f32"), 1 << 24, &wb, &wl, &e), e);
    CHECK_OK(qc_read_file(shared_path("testvectors/gptq/w4_gch/H/L2.w2.f32"), 1 << 24, &hb, &hl, &e), e);
    enum { R = 64, C = 172 };
    if (wl == (size_t)R * C * 4 && hl == (size_t)C * C * 4) {
        const float *w0 = (const float *)wb, *h0 = (const float *)hb;
        float *w = malloc(wl), *h = malloc(hl), *q = malloc(wl);
        qc_quant_spec specs[4] = { { .bits = 4, .groupsize = 32 }, { .bits = 4, .groupsize = 32, .f16_scales = true },
                                   { .bits = 3, .groupsize = -1, .mse = true }, { .bits = 3, .groupsize = -1 } };
        double err[4], rtn_err[4];
        for (int k = 0; k < 4; k++) {
            qc_qweight r = { 0 }, rtn = { 0 };
            qc_gptq_info info;
            memcpy(w, w0, wl), memcpy(h, h0, hl);
            CHECK_OK(qc_gptq_quantize(w, h, R, C, &specs[k], NULL, &r, &info, &e), e);
            CHECK_OK(qc_quant_rtn(w0, R, C, &specs[k], &rtn, &e), e);
            qc_qweight_dequantize(&r, q);
            err[k] = qc_quant_output_error(w0, q, R, C, h0);
            qc_qweight_dequantize(&rtn, q);
            rtn_err[k] = qc_quant_output_error(w0, q, R, C, h0);
            int bad = 0;
            for (int i = 0; specs[k].f16_scales && i < R * r.ngroups; i++)
                bad += qc_f16_to_f32(qc_f32_to_f16(r.scales[i])) != r.scales[i];
            CHECK(bad == 0, "%d scales not fp16", bad);
            CHECK(err[k] < rtn_err[k], "spec %d: GPTQ %.4g below RTN %.4g", k, err[k], rtn_err[k]);
            qc_qweight_free(&r), qc_qweight_free(&rtn);
        }
        printf("    L2.w2 output error: w4 g32 %.5f, with fp16 scales %.5f; w3 per row %.5f, with MSE %.5f\n", err[0],
               err[1], err[3], err[2]);
        CHECK(fabs(err[1] - err[0]) <= 0.05 * err[0], "fp16 scales cost little: %.5g vs %.5g", err[1], err[0]);
        free(w), free(h), free(q);
    }
    free(wb), free(hb);
}

int main(void) {
    qc_set_threads(0);
    RUN(test_vectors);
    RUN(test_vectors_fast_route);
    RUN(test_escalation);
    RUN(test_fallback);
    RUN(test_rank_deficient);
    RUN(test_refusals);
    RUN(test_groups);
    RUN(test_threads);
    RUN(test_against_rtn);
    RUN(test_store_min);
    RUN(test_options);
    return check_summary();
}
