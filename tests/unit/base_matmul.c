/* unit/base_matmul.c — base/matmul.c, qcalib's products through oneDNN, on stories260K's real
 * weights: every transposition, leading dimensions wider than the operands, alpha and beta,
 * against a double-precision reference within the bound of the arithmetic; bf16 operands
 * against the product of the operands rounded to bf16; more shapes than the primitive cache
 * holds; a scratch's kept and held bf16 conversions; a failure named, never an abort. */
#include "io/io.h"
#include "tests/check.h"

static float *ewords, *w1;   /* the token embedding (512 × 64) and block 0's w1 (172 × 64) */
static int dim, hidden;

static bool load(void) {
    qc_err e = { "" };
    qc_checkpoint *ck;
    if (qc_checkpoint_open(&ck, shared_path("models/stories260K/stories260K.bin"), &e)) {
        CHECK(false, "%s", e.msg);
        return false;
    }
    const qc_config *c = qc_checkpoint_config(ck);
    dim = c->dim, hidden = c->hidden_dim;
    ewords = malloc((size_t)c->vocab_size * dim * sizeof(float));
    w1 = malloc((size_t)hidden * dim * sizeof(float));
    CHECK_OK(qc_checkpoint_read(ck, QC_W_EMBED, 0, ewords, &e), e);
    CHECK_OK(qc_checkpoint_read(ck, QC_W_GATE, 0, w1, &e), e);
    qc_checkpoint_close(ck);
    return true;
}

static float as_bf16(float x) { return qc_bf16_to_f32(qc_f32_to_bf16(x)); }

/* c (m × n, ldc) = alpha · op(a) · op(b) + beta · c0 checked element by element against the
 * double-precision sum. Each fp32 sum of k products, in any order and blocking, is within
 * γ_k · Σ|a·b| of the exact one (check.h); with bf16 operands the reference multiplies the
 * operands rounded to bf16, whose products are exact in fp32 (8 + 8 significant bits), so the
 * same bound holds; alpha (a power of 2) scales exactly; beta's add is one rounding more,
 * hence γ_{k+1} over Σ|alpha·a·b| + |beta·c0|. An AVX512-BF16 kernel flushes subnormal
 * products to zero: k · 2⁻¹²⁶ more at most. */
static void check_product(qc_compute ct, bool a_t, bool b_t, int m, int n, int k, float alpha, const float *a,
                          int lda, const float *b, int ldb, float beta, const float *c0, const float *c, int ldc,
                          const char *what) {
    double worst = 0;
    int bad = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double sum = 0, mag = 0;
            for (int t = 0; t < k; t++) {
                double x = a_t ? a[(size_t)t * lda + i] : a[(size_t)i * lda + t];
                double y = b_t ? b[(size_t)j * ldb + t] : b[(size_t)t * ldb + j];
                if (ct == QC_COMPUTE_BF16) x = as_bf16((float)x), y = as_bf16((float)y);
                sum += x * y;
                mag += fabs(x * y);
            }
            double c0v = beta != 0 ? c0[(size_t)i * ldc + j] : 0;
            double ref = alpha * sum + beta * c0v;
            double bound = fp32_gamma(k + 1) * (fabs(alpha) * mag + fabs(beta * c0v)) + k * 0x1p-126;
            double err = fabs(c[(size_t)i * ldc + j] - ref);
            if (err > bound) bad++;
            if (bound > 0 && err / bound > worst) worst = err / bound;
        }
    CHECK(bad == 0, "%s: %d of %d elements beyond the bound (worst %.3g of it)", what, bad, m * n, worst);
}

/* Every transposition, leading dimensions wider than the operands (sub-blocks of the real
 * matrices), alpha 0.5 and beta 0 or 1. */
static void products(qc_compute ct) {
    qc_err e = { "" };
    int m = 100, n = 37, k = 60; /* within the embedding (512 × 64) and w1 (172 × 64) */
    float *c = malloc((size_t)m * 80 * sizeof(float)), *c0 = malloc((size_t)m * 80 * sizeof(float));
    for (int at = 0; at < 2; at++)
        for (int bt = 0; bt < 2; bt++)
            for (int beta = 0; beta < 2; beta++) {
                /* a: (m, k) rows of the embedding, or its (k, m) block read transposed */
                const float *a = ewords + 3 * dim + 2; /* an offset block: lda 64 > k or m */
                const float *b = w1 + 5 * dim + 1;
                int lda = dim, ldb = dim, ldc = 80;
                if (at) a = ewords, lda = 128; /* a (k, m): the embedding's values in rows of 128 */
                for (int i = 0; i < m * ldc; i++) c[i] = c0[i] = (float)(i % 7) * 0.25f;
                char what[96];
                snprintf(what, sizeof what, "%s a%s b%s beta %d", qc_compute_name(ct), at ? "ᵀ" : "", bt ? "ᵀ" : "", beta);
                CHECK_OK(qc_matmul(ct, at, bt, m, n, k, 0.5f, a, lda, b, ldb, (float)beta, c, ldc, &e), e);
                check_product(ct, at, bt, m, n, k, 0.5f, a, lda, b, ldb, (float)beta, c0, c, ldc, what);
            }
    free(c), free(c0);
}

static void test_f32_products(void) { products(QC_COMPUTE_F32); }
static void test_bf16_products(void) { products(QC_COMPUTE_BF16); }

/* A forward's bf16 products through one scratch, shapes growing and shrinking as a block's
 * linears do (x · wᵀ with w the embedding's or w1's rows): each result equals the product with
 * buffers of its own bit for bit (the same primitive and conversions, only the memory
 * differs), and what the scratch holds stays within qc_matmul_operand_bytes of the largest
 * source and the largest weights, the memory plan's figure. (Where oneDNN has no bf16 matmul,
 * AVX2, the operands are rounded into buffers of the product's own and the scratch stays
 * empty.) */
static void test_bf16_scratch(void) {
    qc_err e = { "" };
    const int shapes[][3] = { { 64, 172, 64 }, { 200, 512, 64 }, { 31, 7, 40 }, { 128, 172, 64 }, { 5, 512, 64 } };
    qc_matmul_scratch s = { 0 };
    int64_t src = 0, wt = 0;
    bool converts = strncmp(qc_matmul_isa(), "avx512", 6) == 0; /* on AVX2 qcalib rounds its own copies */
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int m = shapes[i][0], n = shapes[i][1], k = shapes[i][2];
        const float *b = n > hidden ? ewords : w1; /* (n, k) rows of dim values */
        float *c1 = malloc((size_t)m * n * sizeof(float)), *c2 = malloc((size_t)m * n * sizeof(float));
        CHECK_OK(qc_matmul(QC_COMPUTE_BF16, false, true, m, n, k, 1.0f, ewords, dim, b, dim, 0.0f, c1, n, &e), e);
        CHECK_OK(qc_matmul_kept(QC_COMPUTE_BF16, false, true, m, n, k, 1.0f, ewords, dim, b, dim, 0.0f, c2, n, &s, &e), e);
        CHECK(memcmp(c1, c2, (size_t)m * n * sizeof(float)) == 0, "%d x %d x %d: the scratch's product differs", m, n, k);
        int64_t sb = (int64_t)qc_matmul_operand_bytes(QC_COMPUTE_BF16, m, k), wb = (int64_t)qc_matmul_operand_bytes(QC_COMPUTE_BF16, n, k);
        src = sb > src ? sb : src, wt = wb > wt ? wb : wt;
        CHECK((s.cap[0] > 0 || !converts) && (int64_t)s.cap[0] <= src && (int64_t)s.cap[1] <= wt,
              "%d x %d x %d: the scratch holds %zu + %zu bytes, the plan's bound %lld + %lld", m, n, k, s.cap[0],
              s.cap[1], (long long)src, (long long)wt);
        free(c1), free(c2);
    }
    qc_matmul_scratch_free(&s);
    CHECK(!s.p[0] && !s.p[1] && !s.cap[0] && !s.cap[1], "a freed scratch is empty");
    CHECK(qc_matmul_operand_bytes(QC_COMPUTE_F32, 512, 64) == 0, "fp32 products convert nothing");
}

/* A holding scratch (qc_matmul_scratch_hold): each held product equals the product with
 * buffers of its own bit for bit, over chunks of several row counts, a ragged one among them;
 * the same product again converts nothing; a weight changed in place while held is still
 * multiplied as it was when converted (the contract: callers hold only while their weights
 * stay as they are), and after the hold the change is seen; the hold's copies are dropped,
 * and fp32 products hold nothing. */
static void test_bf16_held(void) {
    qc_err e = { "" };
    bool converts = strncmp(qc_matmul_isa(), "avx512", 6) == 0; /* on AVX2 nothing is held */
    size_t nw = (size_t)hidden * dim;
    float *w = malloc(nw * sizeof(float));
    float *c1 = malloc((size_t)200 * hidden * sizeof(float)), *c2 = malloc((size_t)200 * hidden * sizeof(float));
    memcpy(w, w1, nw * sizeof(float));
    qc_matmul_scratch s = { 0 };
    qc_matmul_scratch_hold(&s, true);
    const int rows[] = { 64, 200, 31, 64 };
    int before_last = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int m = rows[i];
        before_last = s.nheld;
        CHECK_OK(qc_matmul(QC_COMPUTE_BF16, false, true, m, hidden, dim, 1.0f, ewords, dim, w, dim, 0.0f, c1, hidden, &e), e);
        CHECK_OK(qc_matmul_kept(QC_COMPUTE_BF16, false, true, m, hidden, dim, 1.0f, ewords, dim, w, dim, 0.0f, c2, hidden, &s, &e), e);
        CHECK(memcmp(c1, c2, (size_t)m * hidden * sizeof(float)) == 0, "%d rows: the held product differs", m);
    }
    CHECK(!converts || (s.nheld >= 1 && s.nheld <= 3 && s.nheld == before_last && !s.p[1]),
          "%d conversions held for 4 products of one weight, %d before the repeated one; weights buffer %p", s.nheld,
          before_last, s.p[1]);
    for (size_t j = 0; j < nw; j++) w[j] = -w[j];
    CHECK_OK(qc_matmul_kept(QC_COMPUTE_BF16, false, true, 64, hidden, dim, 1.0f, ewords, dim, w, dim, 0.0f, c2, hidden, &s, &e), e);
    CHECK_OK(qc_matmul(QC_COMPUTE_BF16, false, true, 64, hidden, dim, 1.0f, ewords, dim, w1, dim, 0.0f, c1, hidden, &e), e);
    CHECK(!converts || memcmp(c1, c2, (size_t)64 * hidden * sizeof(float)) == 0,
          "a weight changed while held is multiplied as it was converted");
    qc_matmul_scratch_hold(&s, false);
    CHECK(s.nheld == 0 && !s.held && !s.holding, "the hold dropped its copies");
    CHECK_OK(qc_matmul_kept(QC_COMPUTE_BF16, false, true, 64, hidden, dim, 1.0f, ewords, dim, w, dim, 0.0f, c2, hidden, &s, &e), e);
    CHECK_OK(qc_matmul(QC_COMPUTE_BF16, false, true, 64, hidden, dim, 1.0f, ewords, dim, w, dim, 0.0f, c1, hidden, &e), e);
    CHECK(memcmp(c1, c2, (size_t)64 * hidden * sizeof(float)) == 0, "after the hold, the weight is multiplied as it is now");
    qc_matmul_scratch_hold(&s, true);
    CHECK_OK(qc_matmul_kept(QC_COMPUTE_F32, false, true, 64, hidden, dim, 1.0f, ewords, dim, w, dim, 0.0f, c2, hidden, &s, &e), e);
    CHECK(s.nheld == 0, "an fp32 product holds nothing (%d held)", s.nheld);
    qc_matmul_scratch_free(&s);
    CHECK(!s.held && !s.nheld && !s.holding, "a freed scratch holds nothing");
    free(w), free(c1), free(c2);
}

/* More shapes than the cache holds (256): each past it runs on a primitive of its own. */
static void test_beyond_the_cache(void) {
    qc_err e = { "" };
    float *c = malloc((size_t)300 * 3 * sizeof(float));
    for (int m = 1; m <= 300; m++) {
        qc_status st = qc_matmul(QC_COMPUTE_F32, false, true, m, 3, dim, 1.0f, ewords, dim, w1, dim, 0.0f, c, 3, &e);
        if (st) {
            CHECK(false, "m %d: %s", m, e.msg);
            break;
        }
        char what[32];
        snprintf(what, sizeof what, "shape %d x 3 x %d", m, dim);
        check_product(QC_COMPUTE_F32, false, true, m, 3, dim, 1.0f, ewords, dim, w1, dim, 0.0f, NULL, c, 3, what);
    }
    free(c);
}

static void test_isa_and_failure(void) {
    const char *isa = qc_matmul_isa();
    CHECK(isa && *isa && strcmp(isa, "other") != 0, "instruction set \"%s\"", isa ? isa : "(null)");
    CHECK(qc_matmul_native_bf16() == (strstr(isa, "bf16") || strstr(isa, "amx")),
          "native bf16 %d on %s", qc_matmul_native_bf16(), isa);
    qc_err e = { "" };
    float c[4];
    /* a negative inner dimension: oneDNN refuses the descriptor; an error naming the shape */
    CHECK_FAILS(qc_matmul(QC_COMPUTE_F32, false, false, 2, 2, -3, 1.0f, ewords, 3, w1, 2, 0.0f, c, 2, &e), e,
                "oneDNN matmul (2 x 2 x -3, f32)");
}

/* qc_mirror_upper over 130 columns (tiles of 64 and a partial one): the lower triangle
 * becomes the upper one's mirror, the upper triangle and the diagonal stay as they were. */
static void test_mirror_upper(void) {
    enum { N = 130 };
    static float a[N * N];
    for (int i = 0; i < N * N; i++) a[i] = (float)i;
    qc_mirror_upper(a, N);
    int bad = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) bad += a[i * N + j] != (float)(i <= j ? i * N + j : j * N + i);
    CHECK(bad == 0, "%d entries not the upper triangle's mirror", bad);
}

int main(void) {
    if (!load()) return check_summary();
    RUN(test_f32_products);
    RUN(test_bf16_products);
    RUN(test_bf16_scratch);
    RUN(test_bf16_held);
    RUN(test_beyond_the_cache);
    RUN(test_isa_and_failure);
    RUN(test_mirror_upper);
    free(ewords), free(w1);
    return check_summary();
}
