/* badinput/gptq_numeric.c — awkward groups through both solvers (SYNTHETIC weights; the Hessian from
 * real activations, block 1's gate/up input): an all-zero row, constant rows of either sign,
 * a row whose fp16 scale would overflow (±1e6) and one whose fp16 scale would underflow
 * (1e-9), beside an ordinary row, under every quantizer variant the formats use (GPTQ v1
 * asymmetric, symmetric, GGUF's Q4_0 signed scale and Q4_1 fp16 d and m). Every code must be
 * in range, every scale finite and non-zero, every dequantized weight finite, GPTQ must
 * not fall back; the all-zero row must come back exactly zero, and round-to-nearest must keep
 * the constant rows within one step of their value (except on the reference's symmetric
 * grid, which gives a one-signed group half its levels by design). */
#include "gptq/gptq.h"
#include "quant/quant.h"
#include "tests/check.h"

#define R 6
#define C 64

static void fill(float *w) {
    for (int c = 0; c < C; c++) {
        w[0 * C + c] = 0.0f;
        w[1 * C + c] = 0.3f;
        w[2 * C + c] = -2.5f;
        w[3 * C + c] = c % 2 ? 1e6f : -1e6f;
        w[4 * C + c] = 1e-9f * (float)(c % 3);
        w[5 * C + c] = 0.01f * (float)((c * 37) % 19 - 9);
    }
}

/* H = 2 XᵀX from 512 tokens of block 1's FFN input (full rank). */
static float *hessian(void) {
    char *xb = NULL;
    size_t xl = 0;
    qc_err e = { "" };
    CHECK_OK(qc_read_file(shared_path("testvectors/inputs/act_T512/L1.xm.f32"), 1 << 24, &xb, &xl, &e), e);
    if (xl != 512 * C * 4) {
        CHECK(0, "act_T512/L1.xm.f32 has %zu bytes", xl);
        free(xb);
        return NULL;
    }
    const float *x = (const float *)xb;
    float *h = calloc(C * C, sizeof *h);
    for (int t = 0; t < 512; t++)
        for (int i = 0; i < C; i++)
            for (int j = 0; j < C; j++) h[i * C + j] += 2.0f * x[t * C + i] * x[t * C + j];
    free(xb);
    return h;
}

/* The checks on one result; rtn: also the constant rows' accuracy. */
static void check_result(const qc_qweight *q, const qc_quant_spec *s, const char *what, bool rtn) {
    float deq[R * C];
    qc_qweight_dequantize(q, deq);
    int maxq = qc_quant_maxq(s), bad_code = 0, bad_scale = 0, bad_value = 0;
    for (int i = 0; i < R * C; i++) bad_code += q->codes[i] > maxq, bad_value += !isfinite(deq[i]);
    for (int i = 0; i < R * q->ngroups; i++) bad_scale += !isfinite(q->scales[i]) || q->scales[i] == 0.0f;
    CHECK(bad_code == 0 && bad_scale == 0 && bad_value == 0, "%s: %d codes over %d, %d bad scales, %d non-finite values",
          what, bad_code, maxq, bad_scale, bad_value);
    int nonzero = 0, off = 0;
    for (int c = 0; c < C; c++) nonzero += deq[c] != 0.0f;
    CHECK(nonzero == 0, "%s: the all-zero row dequantizes to %d non-zero values", what, nonzero);
    /* the reference's symmetric grid keeps 0 at the centre, so a one-signed group keeps only
     * half its levels (as in its own runs): accuracy is asked of the other quantizers */
    if (!rtn || (s->sym && !s->signed_scale)) return;
    for (int r = 1; r <= 2; r++) {
        float v = r == 1 ? 0.3f : -2.5f, step = (s->sym ? 2.0f : 1.0f) * fabsf(v) / (float)maxq * 1.001f;
        for (int c = 0; c < C; c++) off += fabsf(deq[r * C + c] - v) > step;
    }
    CHECK(off == 0, "%s: %d weights of the constant rows more than one step off", what, off);
}

static void test_awkward_groups(void) {
    const qc_quant_spec specs[] = {
        { .bits = 4, .groupsize = 32, .f16_scales = true, .zero_from_one = true },      /* GPTQ v1 file */
        { .bits = 4, .groupsize = 32 },                                                 /* the reference */
        { .bits = 3, .groupsize = -1, .sym = true },                                    /* per row */
        { .bits = 4, .groupsize = 32, .sym = true, .f16_scales = true, .signed_scale = true }, /* Q4_0 */
        { .bits = 4, .groupsize = 32, .f16_scales = true, .store_min = true },          /* Q4_1 */
        { .bits = 8, .groupsize = 32, .sym = true, .f16_scales = true, .mse = true },   /* Q8_0, clip search */
    };
    float *h0 = hessian();
    if (!h0) return;
    for (size_t k = 0; k < sizeof specs / sizeof *specs; k++) {
        const qc_quant_spec *s = &specs[k];
        float w[R * C], h[C * C];
        qc_qweight rtn = { 0 }, gq = { 0 };
        qc_err e = { "" };
        char what[64];
        fill(w);
        snprintf(what, sizeof what, "spec %zu, round-to-nearest", k);
        CHECK_OK(qc_quant_rtn(w, R, C, s, &rtn, &e), e);
        if (rtn.codes) check_result(&rtn, s, what, true);
        memcpy(h, h0, sizeof h);
        qc_gptq_opts o = qc_gptq_defaults();
        qc_gptq_info info;
        snprintf(what, sizeof what, "spec %zu, GPTQ", k);
        CHECK_OK(qc_gptq_quantize(w, h, R, C, s, &o, &gq, &info, &e), e);
        if (gq.codes) check_result(&gq, s, what, false);
        CHECK(!info.fallback && isfinite(info.loss), "%s: fallback %d, loss %g", what, info.fallback, info.loss);
        qc_qweight_free(&rtn), qc_qweight_free(&gq);
    }
    free(h0);
}

int main(void) {
    RUN(test_awkward_groups);
    return check_summary();
}
