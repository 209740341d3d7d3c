/* unit/calib_stats.c — `qcalib stats`'s figures against ones computed here, independently, from
 * the reference's own copies of stories260K's weights and of its fp32 activations
 * (../shared/testvectors/inputs), and the files the report writes. */
#include "calib/calib.h"
#include "tests/bounds.h"
#include "tests/check.h"

#include <math.h>

/* A reference tensor of n floats (testvectors root: $QCALIB_TESTVECTORS or ../shared/testvectors). */
static float *load_ref(const char *rel, size_t n) {
    const char *path = env_path("QCALIB_TESTVECTORS", shared_path("testvectors"), rel);
    float *v = malloc(n * sizeof(float));
    FILE *f = fopen(path, "rb");
    size_t got = f && v ? fread(v, sizeof(float), n, f) : 0;
    CHECK(got == n && fgetc(f) == EOF, "%s: expected exactly %zu floats", path, n);
    if (f) fclose(f);
    if (got != n) free(v), v = NULL;
    return v;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The figures of one weight by the textbook formulas, in double. */
static void naive_wstats(const float *w, int rows, int cols, qc_wstats *s) {
    size_t n = (size_t)rows * cols;
    double mean = 0, m2 = 0, m4 = 0;
    s->min = INFINITY, s->max = -INFINITY;
    for (size_t i = 0; i < n; i++) mean += w[i], s->min = fmin(s->min, w[i]), s->max = fmax(s->max, w[i]);
    mean /= n;
    for (size_t i = 0; i < n; i++) m2 += pow(w[i] - mean, 2), m4 += pow(w[i] - mean, 4);
    s->mean = mean, s->std = sqrt(m2 / n), s->kurtosis = (m4 / n) / pow(m2 / n, 2);
    s->beyond3 = s->beyond6 = 0;
    for (size_t i = 0; i < n; i++) {
        s->beyond3 += fabs(w[i] - mean) > 3 * s->std;
        s->beyond6 += fabs(w[i] - mean) > 6 * s->std;
    }
    double *am = calloc((size_t)rows, sizeof(double));
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) am[r] = fmax(am[r], fabs(w[(size_t)r * cols + c]));
    qsort(am, (size_t)rows, sizeof(double), cmp_double);
    s->row_absmax_min = (float)am[0], s->row_absmax_max = (float)am[rows - 1];
    s->row_absmax_median = (float)(rows % 2 ? am[rows / 2] : 0.5 * (am[rows / 2 - 1] + am[rows / 2]));
    free(am);
}

static void test_weight_stats_match_independent_figures(void) {
    qc_err e = { "" };
    qc_checkpoint *ck;
    CHECK_OK(qc_checkpoint_open(&ck, shared_path("models/stories260K/stories260K.bin"), &e), e);
    qc_wstats *ws = NULL;
    int n = 0;
    CHECK_OK(qc_wstats_checkpoint(ck, NULL, &ws, &n, &e), e);
    const qc_config *c = qc_checkpoint_config(ck);
    CHECK(n == 1 + c->n_layers * QC_LIN_COUNT, "%d weights (tied classifier: embedding + 7 per block)", n);
    static const char *ref_names[QC_LIN_COUNT] = { "wq", "wk", "wv", "wo", "w1", "w3", "w2" };
    int compared = 0;
    for (int i = 1; i < n && ws; i++) {
        const qc_wstats *s = &ws[i];
        int lin = (i - 1) % QC_LIN_COUNT;
        CHECK(s->layer == (i - 1) / QC_LIN_COUNT && s->weight == qc_linear_weight(lin), "entry %d order", i);
        char rel[64];
        snprintf(rel, sizeof rel, "inputs/stories260K/L%d.%s.f32", s->layer, ref_names[lin]);
        float *w = load_ref(rel, (size_t)s->rows * s->cols);
        if (!w) continue;
        qc_wstats want;
        naive_wstats(w, s->rows, s->cols, &want);
        /* both sides in double over rows*cols <= 11008 weights: fp64's gamma_n is 1.2e-12 of the
         * magnitudes summed (|w| up to ~10 std, w^4 up to ~10^4 std^4 for the kurtosis); 1e-9
         * of the std (and of the kurtosis) is that bound with room for the two formulas */
        double tol = 1e-9 * want.std;
        CHECK(s->min == want.min && s->max == want.max, "%s: range", rel);
        CHECK_NEAR(s->mean, want.mean, tol);
        CHECK_NEAR(s->std, want.std, tol);
        CHECK_NEAR(s->kurtosis, want.kurtosis, 1e-9 * want.kurtosis);
        CHECK(s->beyond3 == want.beyond3 && s->beyond6 == want.beyond6, "%s: %lld/%lld beyond 3σ/6σ, want %lld/%lld",
              rel, (long long)s->beyond3, (long long)s->beyond6, (long long)want.beyond3, (long long)want.beyond6);
        CHECK(s->row_absmax_min == want.row_absmax_min && s->row_absmax_max == want.row_absmax_max &&
                  s->row_absmax_median == want.row_absmax_median,
              "%s: per-row max|w| spread", rel);
        int64_t total = 0;
        for (int b = 0; b < QC_WSTATS_BINS; b++) total += s->hist[b];
        CHECK(total == (int64_t)s->rows * s->cols, "%s: histogram holds every weight", rel);
        compared++;
        free(w);
    }
    printf("    %d linears compared with figures from the reference's weight files\n", compared);
    CHECK(compared == c->n_layers * QC_LIN_COUNT, "compared %d", compared);
    free(ws);
    qc_checkpoint_close(ck);
}

/* Per-channel max, min, mean, std and mean|x| of x (ntok, n), as qc_stats describes them, to
 * within rel of each channel's largest |x|: x is the reference's (torch's) fp32 forward, the
 * statistics come from qcalib's, and each is within fp32's bound of the exact activations. */
static void check_channels(const qc_stats *s, const float *x, int ntok, double rel, const char *what) {
    int bad = 0;
    for (int j = 0; j < s->n; j++) {
        double mx = -INFINITY, mn = INFINITY, sum = 0, sa = 0, sq = 0;
        for (int t = 0; t < ntok; t++) {
            double v = x[(size_t)t * s->n + j];
            mx = fmax(mx, v), mn = fmin(mn, v), sum += v, sa += fabs(v);
        }
        double mean = sum / ntok;
        for (int t = 0; t < ntok; t++) sq += pow(x[(size_t)t * s->n + j] - mean, 2);
        double sd = sqrt(sq / ntok), scale = fmax(fabs(mx), fabs(mn)), tol = rel * scale;
        double got_mean = s->sum[j] / s->count, got_sd = sqrt(s->sum_sq[j] / s->count - got_mean * got_mean);
        bad += fabs(s->max[j] - mx) > tol || fabs(s->min[j] - mn) > tol || fabs(got_mean - mean) > tol ||
               fabs(got_sd - sd) > tol || fabs(s->sum_abs[j] / s->count - sa / ntok) > tol ||
               s->absmax[j] != fmaxf(s->max[j], -s->min[j]);
    }
    printf("    %s: %d channels agree with the reference's fp32 activations\n", what, s->n - bad);
    CHECK(bad == 0 && s->count == ntok, "%s: %d channels differ; %lld tokens", what, bad, (long long)s->count);
}

/* One window of the first 512 tokens of the calibration text: what inputs/act_T512 holds. */
static void test_activation_stats_match_reference_activations(void) {
    qc_err e = { "" };
    qc_model *m;
    CHECK_OK(qc_model_open(&m, shared_path("models/stories260K/stories260K.bin"), &e), e);
    qc_tokenizer t;
    CHECK_OK(qc_tokenizer_load(&t, shared_path("models/stories260K/tok512.bin"), 512, &e), e);
    qc_corpus corpus;
    CHECK_OK(qc_corpus_load(&corpus, shared_path("data/tinystories/tinystories_calib.txt"), &e), e);
    char *text;
    size_t len, n;
    int32_t *ids = NULL;
    CHECK_OK(qc_corpus_joined(&corpus, &text, &len, &e), e);
    CHECK_OK(qc_tokenizer_encode(&t, text, len, true, false, &ids, &n, &e), e);
    qc_windows w = { .n = 1, .seqlen = 512, .tokens = ids };
    const qc_config *c = &m->cfg;
    qc_stats *act = calloc((size_t)c->n_layers * QC_SITE_COUNT, sizeof *act);
    CHECK_OK(qc_activation_stats(m, &w, 256, NULL, act, &e), e);
    for (int l = 1; l <= 2; l++) {
        /* block l's inputs: l blocks of the forward, then the attention half of block l (bounds.h);
         * two fp32 routes, so twice the bound of one */
        qc_config upto = *c;
        upto.n_layers = l + 1;
        double tol = 2 * fp32_gamma_prob(forward_chain_length(&upto, 512));
        char rel[64], what[64];
        snprintf(rel, sizeof rel, "inputs/act_T512/L%d.xm.f32", l);
        float *xm = load_ref(rel, (size_t)512 * c->dim);
        snprintf(what, sizeof what, "block %d gate/up input", l);
        if (xm) check_channels(&act[l * QC_SITE_COUNT + QC_SITE_GATE_UP], xm, 512, tol, what);
        snprintf(rel, sizeof rel, "inputs/act_T512/L%d.xd.f32", l);
        float *xd = load_ref(rel, (size_t)512 * c->hidden_dim);
        snprintf(what, sizeof what, "block %d down input", l);
        if (xd) check_channels(&act[l * QC_SITE_COUNT + QC_SITE_DOWN], xd, 512, tol, what);
        free(xm), free(xd);
    }
    for (int i = 0; i < c->n_layers * QC_SITE_COUNT; i++) {
        CHECK(act[i].xtx == NULL && act[i].count == 512, "site %d: channels only, every token", i);
        qc_stats_free(&act[i]);
    }
    free(act), free(ids), free(text);
    qc_corpus_free(&corpus);
    qc_tokenizer_free(&t);
    qc_model_free(m);
}

int main(void) {
    RUN(test_weight_stats_match_independent_figures);
    RUN(test_activation_stats_match_reference_activations);
    return check_summary();
}
