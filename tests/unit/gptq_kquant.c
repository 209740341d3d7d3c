/* unit/gptq_kquant.c — GPTQ into GGUF K-quant blocks (docs/kquant-gptq.md) on real weights and
 * real Hessians: tinystories-656K calibrated on TinyStories text, each block's linears and
 * their inputs' Σxᵀx captured as the runner sees them. Its rows (128 and 384 wide) are not
 * whole 256-value super-blocks, so each test problem is two real linears with the same
 * number of rows side by side, W = [A | B], with H = diag(H_A, H_B): the output error of the
 * pair, Σ tr(ΔW H ΔWᵀ), is the sum of the two linears' own (their inputs taken as
 * uncorrelated). Per block: [q | o] (128 × 256), [gate | up] (384 × 256), [down | q]
 * (128 × 512).
 *
 * Three choices of every K-quant type's blocks are compared by that error:
 *   plain      llama.cpp's reference quantizer (llama-quantize without an imatrix);
 *   imatrix    llama.cpp's importance-weighted quantizer with diag(H) as the importances
 *              (llama-quantize with an imatrix from the same calibration);
 *   GPTQ-K     qcalib's: each super-block's scales by the imatrix quantizer on the weights
 *              GPTQ has compensated so far, then GPTQ's column loop against them.
 * GPTQ-K must beat the imatrix choice on the sum over the problems, for every type; its
 * result must also be what the file stores (the writer's checks pass, and the blocks decode
 * to exactly the weights GPTQ compensated for). The figures are printed (README's table). */
#include "calib/calib.h"
#include "io/gguf.h"
#include "io/gguf_kquants.h"
#include "gptq/internal.h"
#include "tests/check.h"

#define NSAMPLES 64
#define SEQLEN 128
#define MAX_LAYERS 2

/* What the observer keeps: each linear's original weights and each site's Σxᵀx. */
typedef struct captured {
    const qc_config *cfg;
    float *w[MAX_LAYERS][QC_LIN_COUNT];
    float *h[MAX_LAYERS][QC_SITE_COUNT];
} captured;

static qc_status capture(void *ctx, const qc_observation *ob, qc_err *e) {
    captured *c = ctx;
    if (ob->layer >= MAX_LAYERS) return QC_OK;
    int n = ob->stats->n;
    float *h = malloc((size_t)n * n * sizeof *h);
    for (int i = 0; i < n; i++) /* mirrored from the upper triangle */
        for (int j = i; j < n; j++) h[(size_t)i * n + j] = h[(size_t)j * n + i] = ob->stats->xtx[(size_t)i * n + j];
    c->h[ob->layer][ob->site] = h;
    for (int lin = 0; lin < QC_LIN_COUNT; lin++) {
        if (qc_linear_site((qc_linear)lin) != ob->site) continue;
        int rows, cols;
        qc_weight_shape(c->cfg, qc_linear_weight((qc_linear)lin), &rows, &cols);
        c->w[ob->layer][lin] = malloc((size_t)rows * cols * sizeof(float));
        memcpy(c->w[ob->layer][lin], ob->block->w[lin], (size_t)rows * cols * sizeof(float));
    }
    return QC_OK;
}

/* One problem: W = [A | B] (rows, ca + cb), H = diag(HA, HB). */
typedef struct problem {
    const char *name;
    int layer, rows, cols;
    float *w, *h;
} problem;

static problem pair(const captured *c, int l, const char *name, qc_linear a, qc_linear b) {
    int ra, ca, rb, cb;
    qc_weight_shape(c->cfg, qc_linear_weight(a), &ra, &ca);
    qc_weight_shape(c->cfg, qc_linear_weight(b), &rb, &cb);
    CHECK(ra == rb, "%s: %d and %d rows", name, ra, rb);
    problem p = { name, l, ra, ca + cb, NULL, NULL };
    int n = p.cols;
    p.w = malloc((size_t)p.rows * n * sizeof *p.w);
    p.h = calloc((size_t)n * n, sizeof *p.h);
    for (int r = 0; r < p.rows; r++) {
        memcpy(p.w + (size_t)r * n, c->w[l][a] + (size_t)r * ca, (size_t)ca * sizeof(float));
        memcpy(p.w + (size_t)r * n + ca, c->w[l][b] + (size_t)r * cb, (size_t)cb * sizeof(float));
    }
    const float *ha = c->h[l][qc_linear_site(a)], *hb = c->h[l][qc_linear_site(b)];
    for (int i = 0; i < ca; i++) memcpy(p.h + (size_t)i * n, ha + (size_t)i * ca, (size_t)ca * sizeof(float));
    for (int i = 0; i < cb; i++) memcpy(p.h + (size_t)(ca + i) * n + ca, hb + (size_t)i * cb, (size_t)cb * sizeof(float));
    return p;
}

static qc_quant_spec kspec(int bits) {
    bool mins = bits == 2 || bits == 4 || bits == 5;
    return (qc_quant_spec){ .bits = bits, .groupsize = bits == 4 || bits == 5 ? 32 : 16, .sym = !mins, .f16_scales = true,
                            .store_min = mins, .kquant = qc_gguf_kquant_fit };
}

/* ‖X(W − Q)ᵀ‖² for the problem. */
static double out_err(const problem *p, const float *q) {
    double err, energy;
    qc_err e = { "" };
    CHECK_OK(qc_quant_output_error_parts(p->w, q, p->rows, p->cols, p->h, &err, &energy, &e), e);
    return err;
}

/* The imatrix choice: every super-block by the weighted quantizer with diag(H); with refit,
 * its scales then refitted to W given its codes (gptq/kquant_refit.c, which GPTQ-K runs on
 * its own codes), and still what the file stores (the writer's range and product checks). */
static void imatrix_choice(const problem *p, const qc_quant_spec *s, bool refit, float *q) {
    qc_qweight r;
    qc_err e = { "" };
    CHECK_OK(qc_quant_alloc(&r, p->rows, p->cols, s, &e), e);
    float *imp = malloc((size_t)p->cols * sizeof *imp);
    for (int i = 0; i < p->cols; i++) imp[i] = p->h[(size_t)i * p->cols + i];
    int nsb = p->cols / QC_KQ_SUPER, per = QC_KQ_SUPER / s->groupsize;
    for (int row = 0; row < p->rows; row++)
        for (int b = 0; b < nsb; b++) {
            size_t g = (size_t)row * r.ngroups + (size_t)b * per;
            qc_gguf_kquant_fit(s->bits, p->w + (size_t)row * p->cols + b * QC_KQ_SUPER, imp + b * QC_KQ_SUPER,
                               r.codes + (size_t)row * p->cols + b * QC_KQ_SUPER, r.scales + g, r.zeros + g,
                               r.mins ? r.mins + g : NULL, r.super + ((size_t)row * nsb + b) * QC_KQ_SB_FLOATS(s->groupsize));
        }
    if (refit) {
        float *hc = malloc((size_t)p->cols * p->cols * sizeof *hc);
        uint8_t *dead = malloc((size_t)p->cols);
        memcpy(hc, p->h, (size_t)p->cols * p->cols * sizeof *hc);
        for (int i = 0; i < p->cols; i++) dead[i] = imp[i] == 0.0f;
        qc_gptq_kquant_refit(p->w, hc, dead, &r);
        qc_gguf_type ty;
        CHECK_OK(qc_gguf_qweight_type(&r, p->name, &ty, &e), e);
        free(hc), free(dead);
    }
    qc_qweight_dequantize(&r, q);
    qc_qweight_free(&r);
    free(imp);
}

static void test_gptq_beats_imatrix(void) {
    qc_err e = { "" };
    qc_model *m = NULL;
    CHECK_OK(qc_model_open(&m, shared_path("models/tinystories-656K"), &e), e);
    qc_tokenizer t;
    CHECK_OK(qc_checkpoint_require_tokenizer(NULL, m->ck, &t, &e), e);
    const char *src[1] = { shared_path("data/tinystories/tinystories_calib.txt") };
    qc_windows w = { 0 };
    CHECK_OK(qc_windows_draw(&t, src, 1, NSAMPLES, SEQLEN, 0, &w, &e), e);
    captured c = { .cfg = &m->cfg };
    qc_calib_opts o = { .method = QC_METHOD_RTN, .spec = { .bits = 8, .groupsize = 32, .sym = true },
                        .gptq = qc_gptq_defaults(), .true_sequential = true, .observe = capture, .observe_ctx = &c };
    qc_quantized qd;
    CHECK_OK(qc_calibrate(m, &w, &o, &qd, &e), e);
    qc_quantized_free(&qd);
    problem ps[3 * MAX_LAYERS];
    int np = 0;
    for (int l = 0; l < MAX_LAYERS && l < m->cfg.n_layers; l++) {
        ps[np++] = pair(&c, l, "[q | o]", QC_LIN_Q, QC_LIN_O);
        ps[np++] = pair(&c, l, "[gate | up]", QC_LIN_GATE, QC_LIN_UP);
        ps[np++] = pair(&c, l, "[down | q]", QC_LIN_DOWN, QC_LIN_Q);
    }
    printf("    output error sum_l tr(dW H dW^T) over %d problems (tinystories-656K, %d x %d tokens):\n", np, NSAMPLES, SEQLEN);
    for (int bits = 2; bits <= 6; bits++) {
        qc_quant_spec s = kspec(bits);
        double sum[4] = { 0 };
        int gptq_wins = 0;
        for (int k = 0; k < np; k++) {
            const problem *p = &ps[k];
            size_t n = (size_t)p->rows * p->cols;
            float *q = malloc(n * sizeof *q), *wc = malloc(n * sizeof *wc), *hc = malloc((size_t)p->cols * p->cols * sizeof *hc);
            qc_qweight r;
            CHECK_OK(qc_quant_rtn(p->w, p->rows, p->cols, &s, &r, &e), e);
            qc_qweight_dequantize(&r, q);
            qc_qweight_free(&r);
            double plain = out_err(p, q);
            imatrix_choice(p, &s, false, q);
            double imat = out_err(p, q);
            /* the refit never raises the error: each super-block's change lowers the row's
             * quadratic, whose terms it sums in double from fp32 sums of <= 32 products (a
             * relative error near 32·2^-24 of the entries); 1e-4 of the error is far above that */
            imatrix_choice(p, &s, true, q);
            double refit = out_err(p, q);
            CHECK(refit <= imat * (1.0 + 1e-4), "Q%d_K %s: the refit raised the error from %g to %g", bits, p->name,
                  imat, refit);
            sum[3] += refit;
            memcpy(wc, p->w, n * sizeof *wc);
            memcpy(hc, p->h, (size_t)p->cols * p->cols * sizeof *hc);
            qc_gptq_info info;
            CHECK_OK(qc_gptq_quantize(wc, hc, p->rows, p->cols, &s, NULL, &r, &info, &e), e);
            CHECK(!info.fallback, "Q%d_K %s: GPTQ fell back", bits, p->name);
            /* what the file stores: the writer's checks, and the blocks decode to the weights
             * GPTQ compensated for */
            qc_gguf_type ty;
            CHECK_OK(qc_gguf_qweight_type(&r, p->name, &ty, &e), e);
            const qc_gguf_type_info *ti = qc_gguf_type_info_of((uint32_t)ty);
            size_t rb = qc_gguf_row_bytes(ti, p->cols);
            uint8_t *blocks = malloc(rb);
            float *dec = malloc((size_t)p->cols * sizeof *dec);
            qc_qweight_dequantize(&r, q);
            bool same = true;
            for (int row = 0; row < p->rows; row++) {
                qc_gguf_encode_qweight_row(&r, ty, row, blocks);
                ti->to_float(blocks, dec, p->cols);
                same &= !memcmp(dec, q + (size_t)row * p->cols, (size_t)p->cols * sizeof *dec);
            }
            CHECK(same, "Q%d_K %s: the blocks do not decode to GPTQ's weights", bits, p->name);
            free(blocks), free(dec);
            qc_qweight_free(&r);
            double gk = out_err(p, q);
            sum[0] += plain, sum[1] += imat, sum[2] += gk;
            gptq_wins += gk < imat;
            free(q), free(wc), free(hc);
        }
        printf("    Q%d_K: plain %.6g, imatrix %.6g (refitted %.6g), GPTQ-K %.6g (%.3fx imatrix; better on %d of %d "
               "problems)\n", bits, sum[0], sum[1], sum[3], sum[2], sum[2] / sum[1], gptq_wins, np);
        CHECK(sum[2] < sum[1], "Q%d_K: GPTQ-K %g is not below the imatrix choice %g", bits, sum[2], sum[1]);
    }
    for (int k = 0; k < np; k++) free(ps[k].w), free(ps[k].h);
    for (int l = 0; l < MAX_LAYERS; l++) {
        for (int i = 0; i < QC_LIN_COUNT; i++) free(c.w[l][i]);
        for (int i = 0; i < QC_SITE_COUNT; i++) free(c.h[l][i]);
    }
    qc_windows_free(&w);
    qc_tokenizer_free(&t);
    qc_model_free(m);
}

/* Static groups carry the scheme to act-order: the super-blocks' scales from the original W,
 * the columns in decreasing diag(H). Without static groups act-order is refused. */
static void test_act_order(void) {
    qc_err e = { "" };
    int rows = 8, cols = 256;
    float *w = malloc((size_t)rows * cols * sizeof *w), *h = calloc((size_t)cols * cols, sizeof *h);
    for (int i = 0; i < rows * cols; i++) w[i] = sinf(0.37f * (float)i) * 0.05f;
    for (int i = 0; i < cols; i++) h[(size_t)i * cols + i] = 1.0f + (float)(i % 7);
    qc_quant_spec s = kspec(4);
    qc_gptq_opts o = qc_gptq_defaults();
    o.act_order = true;
    qc_qweight r;
    CHECK_FAILS(qc_gptq_quantize(w, h, rows, cols, &s, &o, &r, NULL, &e), e, "--act-order needs --static-groups");
    o.static_groups = true;
    CHECK_OK(qc_gptq_quantize(w, h, rows, cols, &s, &o, &r, NULL, &e), e);
    qc_gguf_type ty;
    CHECK_OK(qc_gguf_qweight_type(&r, "act-order", &ty, &e), e);
    qc_qweight_free(&r);
    free(w), free(h);
}

int main(void) {
    RUN(test_gptq_beats_imatrix);
    RUN(test_act_order);
    return check_summary();
}
