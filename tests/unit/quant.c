/* unit/quant.c — quant/: the spec check, group parameters against hand-computed values
 * (asymmetric, symmetric, all-zero, one-signed groups, every width), the short last group,
 * the MSE clip search, fp16 scales, round-to-nearest and dequantization, the result's
 * lifecycle, and the relative output error against a direct computation from explicit
 * inputs. Everything here is SYNTHETIC: small tensors written out or drawn from a seeded
 * generator. Bounds: exact where the spec fixes the fp32 expression; elsewhere the rounding
 * of the computation, derived where each is checked. */
#include "quant/quant.h"
#include "tests/check.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (float)(rng_state >> 40) / (float)(1 << 23) - 1.0f;
}

static void test_spec_check(void) {
    qc_err e = { "" };
    qc_quant_spec s = { .bits = 4, .groupsize = 128 };
    for (int b = 2; b <= 8; b++) {
        s.bits = b;
        CHECK_OK(qc_quant_spec_check(&s, &e), e);
        CHECK(qc_quant_maxq(&s) == (1 << b) - 1, "maxq at %d bits", b);
    }
    s.bits = 1;
    CHECK_FAILS(qc_quant_spec_check(&s, &e), e, "--wbits");
    s.bits = 9;
    CHECK_FAILS(qc_quant_spec_check(&s, &e), e, "--wbits");
    s.bits = 4;
    s.groupsize = -2;
    CHECK_FAILS(qc_quant_spec_check(&s, &e), e, "--groupsize");
    int gs[] = { -1, 0, 1, 32, 4096 };
    for (int i = 0; i < 5; i++) {
        s.groupsize = gs[i];
        CHECK_OK(qc_quant_spec_check(&s, &e), e);
    }
    s.groupsize = 32;
    CHECK(qc_quant_ngroups(&s, 172) == 6 && qc_quant_ngroups(&s, 160) == 5 && qc_quant_ngroups(&s, 1) == 1, "ngroups g32");
    s.groupsize = -1;
    CHECK(qc_quant_ngroups(&s, 172) == 1, "per row");
    s.groupsize = 0;
    CHECK(qc_quant_ngroups(&s, 172) == 1, "groupsize 0: per row");
    s.groupsize = 256;
    CHECK(qc_quant_ngroups(&s, 172) == 1, "one group longer than the row");
}

/* The reference's rounding: half to even, as nearbyintf in the default mode; the inline
 * version agrees on halves, large values and random values. */
static void test_rounding(void) {
    float halves[][2] = { { 0.5f, 0 }, { 1.5f, 2 }, { 2.5f, 2 }, { 3.5f, 4 }, { -0.5f, 0 }, { -1.5f, -2 }, { -2.5f, -2 },
                          { 7.5f, 8 }, { 8388607.5f, 8388608 }, { 0.49999997f, 0 }, { 1e10f, 1e10f }, { -3e9f, -3e9f } };
    for (int i = 0; i < 12; i++)
        CHECK(qc_round_half_even(halves[i][0]) == halves[i][1], "round(%.9g) = %.9g, expected %.9g", halves[i][0],
              qc_round_half_even(halves[i][0]), halves[i][1]);
    CHECK(signbit(qc_round_half_even(-0.3f)) && signbit(qc_round_half_even(-0.0f)) && !signbit(qc_round_half_even(0.3f)),
          "signed zeros as nearbyintf (the reference's zero point of an all-positive group is -0.0)");
    int bad = 0;
    for (int i = 0; i < 200000; i++) {
        float v = frand() * (i % 3 == 0 ? 300.0f : i % 3 == 1 ? 1e7f : 3.0f);
        if (i % 5 == 0) v = (float)(int)v + 0.5f; /* ties */
        bad += memcmp(&(float){ qc_round_half_even(v) }, &(float){ nearbyintf(v) }, 4) != 0; /* bit for bit */
        float sc = 0.01f + fabsf(frand()), zp = (float)(i % 16);
        float want = nearbyintf(v / sc) + zp;
        want = want < 0 ? 0 : want > 15 ? 15 : want;
        bad += qc_quant_code(v, sc, zp, 15) != want;
    }
    CHECK(bad == 0, "%d values rounded differently from nearbyintf", bad);
}

/* How far x may lie from its value on the grid of scale sc: rounding to the grid moves it by
 * at most half a step; in fp32 x/sc is rounded (u·|x/sc| <= u·(maxq + 1) steps), so is
 * sc·(code − zero) (u·|q|, |q| <= |x| + sc), and so is the difference taken by the caller. */
static double roundtrip_bound(float x, float sc, int maxq) {
    return sc / 2.0 * (1 + FP32_U) + sc * FP32_U * (maxq + 1) + FP32_U * (fabs(x) + sc);
}

/* Hand-computed parameters (QUANT-SPEC §1), fp32 expressions written out. */
static void test_find_params(void) {
    qc_quant_spec a2 = { .bits = 2, .groupsize = -1 }, a4 = { .bits = 4, .groupsize = -1 };
    qc_quant_spec s4 = { .bits = 4, .groupsize = -1, .sym = true }, a3 = { .bits = 3, .groupsize = -1 };
    float sc, zp;
    /* asymmetric: range [-1, 2], 2 bits: scale 3/3 = 1, zero round(1/1) = 1 */
    float x1[] = { -1.0f, 0.5f, 2.0f };
    qc_quant_find_params(&a2, x1, 3, 1, &sc, &zp, NULL);
    CHECK(sc == 1.0f && zp == 1.0f, "asym 2-bit: scale %g zero %g", sc, zp);
    /* asymmetric: [-0.3, 0.9], 4 bits: scale 1.2/15 = 0.08, zero round(3.75) = 4 */
    float x2[] = { 0.9f, -0.3f, 0.1f };
    qc_quant_find_params(&a4, x2, 3, 1, &sc, &zp, NULL);
    CHECK(sc == (0.9f - -0.3f) / 15.0f && fabsf(sc - 0.08f) < 1e-7f && zp == 4.0f, "asym 4-bit: scale %.9g zero %g", sc, zp);
    /* symmetric: [-2, 1] becomes [-2, 2]: scale 4/15, zero (15+1)/2 = 8 */
    float x3[] = { -2.0f, 1.0f };
    qc_quant_find_params(&s4, x3, 2, 1, &sc, &zp, NULL);
    CHECK(sc == 4.0f / 15.0f && zp == 8.0f, "sym: scale %.9g zero %g", sc, zp);
    /* symmetric, positive only: xmin stays 0, so [0, 1.5]: scale 0.1, zero 8 (the
     * reference's quirk: half the grid unused, values above 7·scale clipped) */
    float x4[] = { 0.5f, 1.5f };
    qc_quant_find_params(&s4, x4, 2, 1, &sc, &zp, NULL);
    CHECK(sc == 1.5f / 15.0f && zp == 8.0f, "sym positive-only: scale %.9g zero %g", sc, zp);
    CHECK(qc_quant_code(1.5f, sc, zp, 15) == 15.0f, "1.5 clipped to the top code");
    /* symmetric, negative only: [-3, 0] becomes [-3, 3] */
    float x5[] = { -3.0f, -1.0f };
    qc_quant_find_params(&s4, x5, 2, 1, &sc, &zp, NULL);
    CHECK(sc == 6.0f / 15.0f && zp == 8.0f, "sym negative-only: scale %.9g zero %g", sc, zp);
    /* asymmetric, negative only: [-3, 0], 3 bits: scale 3/7, zero round(3/(3/7)) = 7 */
    qc_quant_find_params(&a3, x5, 2, 1, &sc, &zp, NULL);
    CHECK(sc == 3.0f / 7.0f && zp == 7.0f, "asym negative-only: scale %.9g zero %g", sc, zp);
    CHECK(qc_quant_code(-3.0f, sc, zp, 7) == 0.0f && qc_quant_code(-1e-9f, sc, zp, 7) == 7.0f, "ends of the range");
    /* asymmetric, positive only: [0, 2]: zero 0 */
    float x6[] = { 1.0f, 2.0f };
    qc_quant_find_params(&a3, x6, 2, 1, &sc, &zp, NULL);
    CHECK(sc == 2.0f / 7.0f && zp == 0.0f, "asym positive-only: scale %.9g zero %g", sc, zp);
    /* all zero: [-1, 1]; scale 2/15 rounds up in fp32 (0.13333334), so 1/scale is
     * 7.4999996 and the zero 7, as in the reference's fp32 */
    float x7[] = { 0.0f, 0.0f, -0.0f };
    qc_quant_find_params(&a4, x7, 3, 1, &sc, &zp, NULL);
    CHECK(sc == 2.0f / 15.0f && zp == 7.0f, "all-zero asym: scale %.9g zero %g", sc, zp);
    /* a tie: [-1.5, 0], 2 bits: scale 0.5, -xmin/scale = 3 exactly; [-0.75, 1.25], 3 bits:
     * scale 2/7, 0.75/scale = 2.625 -> 3; [-1.25, 0.75], 2 bits: scale 2/3, 1.875 -> 2 */
    float x8[] = { -1.25f, 0.75f };
    qc_quant_find_params(&a2, x8, 2, 1, &sc, &zp, NULL);
    CHECK(sc == 2.0f / 3.0f && zp == 2.0f, "asym 2-bit: scale %.9g zero %g", sc, zp);
    qc_quant_find_params(&s4, x7, 3, 1, &sc, &zp, NULL);
    CHECK(sc == 2.0f / 15.0f && zp == 8.0f, "all-zero sym: scale %.9g zero %g", sc, zp);
    /* a strided group equals the contiguous one */
    float inter[30], cont[10];
    for (int i = 0; i < 10; i++) cont[i] = inter[3 * i + 1] = frand(), inter[3 * i] = 100.0f, inter[3 * i + 2] = -100.0f;
    float sc2, zp2;
    qc_quant_find_params(&a4, cont, 10, 1, &sc, &zp, NULL);
    qc_quant_find_params(&a4, inter + 1, 10, 3, &sc2, &zp2, NULL);
    CHECK(sc == sc2 && zp == zp2, "stride 3");
    /* every width, both kinds: the formula, the zero on the grid, every value within
     * scale/2 of its dequantized code */
    int bad = 0;
    for (int b = 2; b <= 8; b++)
        for (int sym = 0; sym < 2; sym++) {
            qc_quant_spec s = { .bits = b, .groupsize = -1, .sym = sym };
            int maxq = (1 << b) - 1;
            for (int t = 0; t < 50; t++) {
                float x[40], lo = 0, hi = 0;
                float off = t % 5 == 0 ? 0.5f : 0.0f; /* some groups of one sign */
                for (int i = 0; i < 40; i++) {
                    x[i] = frand() + (t % 2 ? off : -off);
                    lo = x[i] < lo ? x[i] : lo, hi = x[i] > hi ? x[i] : hi;
                }
                qc_quant_find_params(&s, x, 40, 1, &sc, &zp, NULL);
                if (sym) {
                    float m = fmaxf(-lo, hi);
                    bad += sc != ((lo < 0 ? m : hi) - (lo < 0 ? -m : 0.0f)) / (float)maxq || zp != (float)(maxq + 1) / 2;
                    if (lo < 0)
                        for (int i = 0; i < 40; i++)
                            bad += fabsf(qc_qvalue(qc_quant_code(x[i], sc, zp, maxq), sc, zp) - x[i]) >
                                   roundtrip_bound(x[i], sc, maxq);
                } else {
                    bad += sc != (hi - lo) / (float)maxq || zp != nearbyintf(-lo / sc) || zp < 0 || zp > maxq;
                    for (int i = 0; i < 40; i++)
                        bad += fabsf(qc_qvalue(qc_quant_code(x[i], sc, zp, maxq), sc, zp) - x[i]) >
                               roundtrip_bound(x[i], sc, maxq);
                }
            }
        }
    CHECK(bad == 0, "%d parameter or rounding mismatches over widths 2..8", bad);
}

/* Σ|q − x|^2.4 in double, and in *bound how far the search's own figure can lie from it: it
 * forms d = q − x in fp32 (a product and a difference: 2u·(|q| + |x|), moving |d|^2.4 by 2.4·
 * |d|^1.4 times that) and takes powf(|d|, 2.4f) (the exponent 2.4f is off from 2.4 by δp,
 * moving the term by |δp·ln|d||, and powf by 2u), summed in double. */
static double norm24(const float *x, int n, float sc, float zp, int maxq, double *bound) {
    double e = 0, b = 0, dp = fabs((double)2.4f - 2.4);
    for (int i = 0; i < n; i++) {
        double q = qc_qvalue(qc_quant_code(x[i], sc, zp, maxq), sc, zp), d = fabs(q - x[i]);
        double t = pow(d, 2.4);
        e += t;
        if (d > 0) b += 2.4 * pow(d, 1.4) * 2 * FP32_U * (fabs(q) + fabs(x[i])) + t * (dp * fabs(log(d)) + 2 * FP32_U);
    }
    *bound = b;
    return e;
}

/* The clip search never does worse than the plain range in Σ|q − x|^2.4 (its first
 * candidate is the plain range), and does better on a group with an outlier. */
static void test_mse(void) {
    int worse = 0, better = 0;
    for (int b = 2; b <= 8; b++)
        for (int sym = 0; sym < 2; sym++)
            for (int t = 0; t < 30; t++) {
                qc_quant_spec plain = { .bits = b, .groupsize = -1, .sym = sym }, mse = { .bits = b, .groupsize = -1, .sym = sym, .mse = true };
                float x[64];
                for (int i = 0; i < 64; i++) x[i] = frand() * (i == t ? 6.0f : 1.0f);
                float s0, z0, s1, z1;
                qc_quant_find_params(&plain, x, 64, 1, &s0, &z0, NULL);
                qc_quant_find_params(&mse, x, 64, 1, &s1, &z1, NULL);
                int maxq = (1 << b) - 1;
                double b0, b1, e0 = norm24(x, 64, s0, z0, maxq, &b0), e1 = norm24(x, 64, s1, z1, maxq, &b1);
                worse += e1 > e0 + b0 + b1;
                better += e1 < e0;
                /* the chosen scale is one of the grid's: range · p / maxq for p = 1 − i/100. The
                 * search forms p·xmax and p·xmin, their difference and its division (a rounding
                 * each), here s0·p (two more, s0's own division among them): within 6u. */
                bool on_grid = false;
                for (int i = 0; i < 80 && !on_grid; i++)
                    on_grid = fabs((double)s1 - (double)s0 * (float)(1.0 - i / 100.0)) <= 6 * FP32_U * s0;
                worse += !on_grid;
            }
    CHECK(worse == 0, "%d searches worse than the plain range (or off the grid)", worse);
    CHECK(better >= 200, "the search improved %d of 420 groups with an outlier", better); /* 232 with this seed */
}

/* fp16 scales: representable in fp16, found after rounding (the zero fits the rounded
 * scale), never 0 for a tiny range; with the MSE search too. */
static void test_f16_scales(void) {
    int bad = 0;
    for (int mse = 0; mse < 2; mse++)
        for (int t = 0; t < 200; t++) {
            qc_quant_spec s = { .bits = 2 + t % 7, .groupsize = -1, .sym = t % 2, .mse = mse, .f16_scales = true };
            float x[32], sc, zp;
            float mag = t % 10 == 0 ? 1e-6f : 0.05f;
            for (int i = 0; i < 32; i++) x[i] = mag * frand();
            qc_quant_find_params(&s, x, 32, 1, &sc, &zp, NULL);
            bad += qc_f16_to_f32(qc_f32_to_f16(sc)) != sc || !(sc > 0);
            if (!s.sym && !mse) {
                float lo = 0;
                for (int i = 0; i < 32; i++) lo = x[i] < lo ? x[i] : lo;
                bad += zp != nearbyintf(-lo / sc);
            }
        }
    CHECK(bad == 0, "%d scales not fp16 or zero points not from the rounded scale", bad);
    float tiny[4] = { 1e-12f, -1e-12f, 0, 2e-12f }, sc, zp;
    qc_quant_spec s = { .bits = 4, .groupsize = -1, .f16_scales = true };
    qc_quant_find_params(&s, tiny, 4, 1, &sc, &zp, NULL);
    CHECK(sc == 0x1p-24f && zp >= 0 && zp <= 15, "a range below fp16's: scale %g (the smallest subnormal)", sc);
}

/* Round-to-nearest with a short last group: 172 = 5×32 + 12 columns. Each group's
 * parameters come from its own columns; dequantized weights are within scale/2. */
static void test_rtn(void) {
    enum { R = 7, C = 172 };
    float w[R * C], q[R * C];
    for (int i = 0; i < R * C; i++) w[i] = 0.1f * frand();
    w[3 * C + 171] = 5.0f; /* an outlier in the short last group of row 3 */
    qc_quant_spec s = { .bits = 4, .groupsize = 32 };
    qc_qweight r;
    qc_err e = { "" };
    CHECK_OK(qc_quant_rtn(w, R, C, &s, &r, &e), e);
    CHECK(r.ngroups == 6, "6 groups");
    int bad = 0;
    for (int c = 0; c < C; c++) bad += r.g_idx[c] != c / 32 || r.perm[c] != c;
    for (int i = 0; i < R; i++)
        for (int g = 0; g < 6; g++) {
            float sc, zp;
            qc_quant_find_params(&s, w + i * C + g * 32, g < 5 ? 32 : 12, 1, &sc, &zp, NULL);
            bad += sc != r.scales[i * 6 + g] || zp != r.zeros[i * 6 + g];
        }
    CHECK(bad == 0, "%d group parameters or indices differ", bad);
    CHECK(r.scales[3 * 6 + 5] > 0.3f && r.scales[3 * 6 + 4] < 0.02f, "the outlier widens its own group only");
    qc_qweight_dequantize(&r, q);
    bad = 0;
    for (int i = 0; i < R; i++)
        for (int c = 0; c < C; c++) {
            float sc = r.scales[i * 6 + c / 32];
            bad += fabsf(q[i * C + c] - w[i * C + c]) > sc / 2 * 1.0001f;
            bad += q[i * C + c] != sc * ((float)r.codes[i * C + c] - r.zeros[i * 6 + c / 32]);
        }
    CHECK(bad == 0, "%d dequantized weights off by more than scale/2", bad);
    qc_qweight_free(&r);
    /* per row: -1 and 0 alike; symmetric data within scale/2 too */
    qc_quant_spec p1 = { .bits = 3, .groupsize = -1, .sym = true }, p0 = { .bits = 3, .sym = true };
    qc_qweight r1, r0;
    CHECK_OK(qc_quant_rtn(w, R, C, &p1, &r1, &e), e);
    CHECK_OK(qc_quant_rtn(w, R, C, &p0, &r0, &e), e);
    CHECK(r1.ngroups == 1 && memcmp(r1.codes, r0.codes, R * C) == 0 && memcmp(r1.scales, r0.scales, R * 4) == 0, "-1 == 0");
    qc_qweight_dequantize(&r1, q);
    bad = 0;
    for (int i = 0; i < R * C; i++) bad += fabsf(q[i] - w[i]) > r1.scales[i / C] / 2 * 1.0001f;
    CHECK(bad == 0, "symmetric per-row: %d off by more than scale/2", bad);
    qc_qweight_free(&r1), qc_qweight_free(&r0);
}

static void test_result_lifecycle(void) {
    qc_qweight r;
    qc_err e = { "" };
    qc_quant_spec s = { .bits = 4, .groupsize = 16 };
    CHECK_OK(qc_quant_alloc(&r, 3, 40, &s, &e), e);
    CHECK(r.ngroups == 3 && r.g_idx[39] == 2 && r.perm[39] == 39 && r.codes[0] == 0, "defaults");
    qc_qweight_free(&r);
    CHECK(r.codes == NULL, "freed and zeroed");
    qc_qweight_free(&r); /* zeroed: no-op */
    qc_qweight_free(NULL);
    CHECK_FAILS(qc_quant_alloc(&r, 0, 40, &s, &e), e, "shape");
    s.bits = 12;
    CHECK_FAILS(qc_quant_rtn(NULL, 3, 40, &s, &r, &e), e, "--wbits");
    CHECK(r.codes == NULL, "nothing allocated on failure");
    s.bits = 4;
    float w[3 * 40] = { 0 };
    w[2 * 40 + 7] = NAN;
    CHECK_FAILS(qc_quant_rtn(w, 3, 40, &s, &r, &e), e, "non-finite");
    CHECK(strstr(e.msg, "[2, 7]") && r.codes == NULL, "names the entry, allocates nothing: %s", e.msg);
}

/* tr((W−Q)H(W−Q)ᵀ) and tr(WHWᵀ) equal ‖X(W−Q)ᵀ‖² and ‖XWᵀ‖² computed directly from X, and
 * their ratio is the reported error; 0 for Q = W; only H's upper triangle is read. SYNTHETIC
 * X, W, Q. Inputs and weights have nonzero means, as real activations do, so that H's
 * off-diagonal entries carry much of each quadratic form (a strip counted once instead of
 * twice is far outside the bound). R = 300 rows: two chunks of the implementation; C = 600
 * columns: two strips of H, a full one and a partial one with strictly-upper rows. */
static void output_error_case(int R, int C, int T) {
    float *x = malloc(sizeof(float) * T * C), *w = malloc(sizeof(float) * R * C), *q = malloc(sizeof(float) * R * C);
    float *h = malloc(sizeof(float) * C * C);
    for (int i = 0; i < T * C; i++) x[i] = (frand() + 0.5f) * (i % C == 3 ? 5.0f : 1.0f);
    for (int i = 0; i < R * C; i++) w[i] = frand() + 0.3f, q[i] = w[i] + 0.05f * (frand() + 0.2f);
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++) {
            double acc = 0;
            for (int t = 0; t < T; t++) acc += (double)x[t * C + i] * x[t * C + j];
            h[i * C + j] = (float)acc;
        }
    double num = 0, den = 0;
    for (int t = 0; t < T; t++)
        for (int r = 0; r < R; r++) {
            double y = 0, d = 0;
            for (int c = 0; c < C; c++) y += (double)x[t * C + c] * w[r * C + c], d += (double)x[t * C + c] * (w[r * C + c] - q[r * C + c]);
            num += d * d, den += y * y;
        }
    /* qcalib forms D·H in fp32 (sums of at most C terms: gamma_C of Σ|d||H|), D = W − Q and H
     * in fp32 (a rounding each), the traces in double; so each trace is off by (gamma_C + 3u)
     * times the same quadratic form with every term's magnitude, and the ratio by the sum of
     * the two relative bounds */
    double num_abs = 0, den_abs = 0;
    for (int r = 0; r < R; r++)
        for (int i = 0; i < C; i++)
            for (int j = 0; j < C; j++) {
                double hij = fabs((double)h[i * C + j]);
                num_abs += fabs((double)w[r * C + i] - q[r * C + i]) * hij * fabs((double)w[r * C + j] - q[r * C + j]);
                den_abs += fabs((double)w[r * C + i]) * hij * fabs((double)w[r * C + j]);
            }
    const double g = fp32_gamma(C) + 3 * FP32_U;
    double got_num, got_den;
    qc_err e;
    CHECK(qc_quant_output_error_parts(w, q, R, C, h, &got_num, &got_den, &e) == QC_OK, "output error: %s", e.msg);
    CHECK(fabs(got_num - num) <= g * num_abs, "(%d, %d): error %.9g, direct %.9g, fp32 bound %.3g", R, C, got_num, num,
          g * num_abs);
    CHECK(fabs(got_den - den) <= g * den_abs, "(%d, %d): energy %.9g, direct %.9g, fp32 bound %.3g", R, C, got_den, den,
          g * den_abs);
    double direct = num / den, got = qc_quant_output_error(w, q, R, C, h);
    double tol = g * (num_abs / num + den_abs / den) * direct;
    CHECK(fabs(got - direct) <= tol, "(%d, %d): output error %.9g, direct %.9g, fp32 bound %.3g", R, C, got, direct, tol);
    for (int i = 0; i < C; i++)
        for (int j = 0; j < i; j++) h[i * C + j] = NAN; /* the lower triangle is not read */
    CHECK(qc_quant_output_error(w, q, R, C, h) == got, "upper triangle only");
    CHECK(qc_quant_output_error(w, w, R, C, h) == 0.0, "Q = W: 0");
    free(x), free(w), free(q), free(h);
}

static void test_output_error(void) {
    output_error_case(300, 48, 200);
    output_error_case(300, 600, 200);
}

/* SYNTHETIC: an all-positive group has zero point 0, which GPTQ v1 files cannot store;
 * zero_from_one moves it to 1 and leaves groups containing negatives alone. */
static void test_zero_from_one(void) {
    float pos[4] = { 0.5f, 1.0f, 2.0f, 3.0f }, mixed[4] = { -1.0f, 0.5f, 2.0f, 3.0f };
    qc_quant_spec s = { .bits = 4, .groupsize = -1 }, v1 = s;
    v1.zero_from_one = true;
    float sc, zp, sc1, zp1;
    qc_quant_find_params(&s, pos, 4, 1, &sc, &zp, NULL);
    qc_quant_find_params(&v1, pos, 4, 1, &sc1, &zp1, NULL);
    CHECK(zp == 0.0f && zp1 == 1.0f && sc1 == sc, "all-positive group: zero %g -> %g, scale kept", zp, zp1);
    qc_quant_find_params(&s, mixed, 4, 1, &sc, &zp, NULL);
    qc_quant_find_params(&v1, mixed, 4, 1, &sc1, &zp1, NULL);
    CHECK(zp == zp1 && sc == sc1 && zp >= 1.0f, "a group with negatives is unchanged (zero %g)", zp);
}

/* SYNTHETIC: a signed scale puts the extreme value on the extra level exactly, whichever
 * its sign (llama.cpp's Q4_0), where GPTQ's symmetric grid clips a positive extreme. */
static void test_signed_scale(void) {
    float pos[4] = { 0.1f, -0.5f, 0.3f, 1.6f }, neg[4] = { 0.1f, -1.6f, 0.3f, 0.5f };
    qc_quant_spec s = { .bits = 4, .groupsize = -1, .sym = true, .signed_scale = true }, g = s;
    g.signed_scale = false;
    float sc, zp;
    for (int k = 0; k < 2; k++) {
        float *x = k ? neg : pos, ext = k ? -1.6f : 1.6f;
        qc_quant_find_params(&s, x, 4, 1, &sc, &zp, NULL);
        float q = qc_quant_code(ext, sc, zp, 15);
        CHECK(zp == 8 && q == 0 && qc_qvalue(q, sc, zp) == ext, "extreme %g on level 0 (scale %g)", ext, sc);
    }
    qc_quant_find_params(&g, pos, 4, 1, &sc, &zp, NULL);
    CHECK(qc_qvalue(qc_quant_code(1.6f, sc, zp, 15), sc, zp) < 1.55f, "GPTQ's symmetric grid clips the positive extreme");
}

int main(void) {
    qc_set_threads(0);
    RUN(test_spec_check);
    RUN(test_rounding);
    RUN(test_find_params);
    RUN(test_mse);
    RUN(test_f16_scales);
    RUN(test_rtn);
    RUN(test_result_lifecycle);
    RUN(test_output_error);
    RUN(test_zero_from_one);
    RUN(test_signed_scale);
    return check_summary();
}
