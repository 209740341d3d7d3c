/* unit/calib_stages.c — true-sequential calibration keeps the block's activations between sites
 * (calib/runner.c's stages: each linear's input computed once) or recomputes each site's
 * inputs from the block's input (o.recompute, the memory plan's fallback). Both routes do the
 * same operations on the same chunks of windows, so they must give the same bits: every
 * result's codes, scales, zero points, g_idx and order, every log row, the pre-step's scales,
 * each block's output (the residual stream a checkpoint saves), what an observer sees, and
 * mixed precision's measured errors. On the real stories260K (llama2.c) and TinyStories-656K
 * (a Hugging Face folder), with a ragged last chunk, for GPTQ, RTN with a kept linear, AWQ
 * (fp32 propagation), SmoothQuant before GPTQ, the residual stream in fp16 and bf16, and bf16
 * products (whose weight conversions the kept route holds over a stage's chunks). */
#include "calib/calib.h"
#include "tests/check.h"

#define NWIN 5
#define SEQLEN 64
#define BATCH_TOKENS 128 /* two windows per chunk: chunks of 2, 2 and 1 */
#define MAX_LAYERS 8

typedef struct model_case {
    const char *name, *model, *tokenizer;
    bool json; /* tokenizer.json; else llama2.c's tokenizer of 512 pieces */
} model_case;

static const model_case models[] = {
    { "stories260K", "models/stories260K/stories260K.bin", "models/stories260K/tok512.bin", false },
    { "TinyStories-656K", "models/tinystories-656K", "models/tinystories-656K/tokenizer.json", true },
};

static void windows_of(const model_case *mc, qc_windows *w) {
    qc_err e = { "" };
    qc_tokenizer t = { 0 };
    CHECK_OK(mc->json ? qc_tokenizer_load_json(&t, shared_path(mc->tokenizer), &e)
                      : qc_tokenizer_load(&t, shared_path(mc->tokenizer), 512, &e), e);
    const char *src[1] = { shared_path("data/tinystories/tinystories_calib.txt") };
    CHECK_OK(qc_windows_draw(&t, src, 1, NWIN, SEQLEN, 0, w, &e), e);
    qc_tokenizer_free(&t);
}

/* What a run shows besides its results: each block's output (through the checkpoint hook)
 * and, per block and site, the observer's statistics and block input. */
typedef struct trail {
    uint64_t out[MAX_LAYERS];
    uint64_t seen[MAX_LAYERS][QC_SITE_COUNT];
    int saved, observed;
    size_t xbytes; /* the residual stream's bytes */
} trail;

static qc_status no_restore(void *ctx, qc_quantized *out, void *x, size_t nbytes, int *first, qc_err *e) {
    (void)ctx, (void)out, (void)x, (void)nbytes, (void)e;
    *first = 0;
    return QC_OK;
}

static qc_status save_output(void *ctx, int layer, const qc_quantized *out, const void *x, size_t nbytes, qc_err *e) {
    (void)out, (void)e;
    trail *t = ctx;
    QC_ASSERT(layer < MAX_LAYERS);
    t->out[layer] = qc_hash64(QC_HASH64_SEED, x, nbytes);
    t->saved++;
    return QC_OK;
}

static qc_status observe(void *ctx, const qc_observation *ob, qc_err *e) {
    (void)e;
    trail *t = ctx;
    const qc_stats *s = ob->stats;
    size_t n = (size_t)s->n;
    uint64_t h = qc_hash64(QC_HASH64_SEED, s->xtx, n * n * sizeof(float));
    h = qc_hash64(h, s->absmax, n * sizeof(float));
    h = qc_hash64(h, s->sum_abs, n * sizeof(double));
    h = qc_hash64(h, &s->count, sizeof s->count);
    h = qc_hash64(h, ob->x, t->xbytes);
    t->seen[ob->layer][ob->site] = h;
    t->observed++;
    return QC_OK;
}

typedef struct run {
    qc_model *m;
    qc_quantized q;
    trail t;
} run;

static qc_status calibrate(const model_case *mc, const qc_windows *w, qc_calib_opts o, bool recompute, bool observed,
                           run *r, qc_err *e) {
    memset(r, 0, sizeof *r);
    qc_calib_checkpoint cp = { no_restore, save_output, &r->t };
    o.recompute = recompute;
    o.batch_tokens = BATCH_TOKENS;
    if (!qc_calib_rescales(&o)) o.checkpoint = &cp; /* the CLI checkpoints single gptq and rtn passes */
    if (observed) o.observe = observe, o.observe_ctx = &r->t;
    qc_status st = qc_model_open(&r->m, shared_path(mc->model), e);
    if (st) return st;
    r->t.xbytes = (size_t)w->n * w->seqlen * r->m->cfg.dim * qc_dtype_size(o.act_dtype);
    return qc_calibrate(r->m, w, &o, &r->q, e);
}

static void run_free(run *r) {
    qc_quantized_free(&r->q);
    qc_model_free(r->m);
}

static bool same(const void *a, const void *b, size_t n) { return (!a && !b) || (a && b && memcmp(a, b, n) == 0); }

/* Every figure of a log row but its time. */
static bool same_report(const qc_layer_report *a, const qc_layer_report *b) {
    return a->block == b->block && a->linear == b->linear && a->rows == b->rows && a->cols == b->cols &&
           same(&a->loss, &b->loss, sizeof a->loss) && same(&a->rel_err, &b->rel_err, sizeof a->rel_err) &&
           same(&a->abs_err, &b->abs_err, sizeof a->abs_err) && same(&a->damp, &b->damp, sizeof a->damp) &&
           a->retries == b->retries && a->fallback == b->fallback && a->kept_f16 == b->kept_f16 && a->dead == b->dead &&
           a->awq_grid == b->awq_grid && same(&a->awq_loss, &b->awq_loss, sizeof a->awq_loss) &&
           same(&a->awq_loss0, &b->awq_loss0, sizeof a->awq_loss0) && same(&a->clip_mean, &b->clip_mean, sizeof a->clip_mean) &&
           same(&a->clip_min, &b->clip_min, sizeof a->clip_min) && same(&a->smooth_min, &b->smooth_min, sizeof a->smooth_min) &&
           same(&a->smooth_max, &b->smooth_max, sizeof a->smooth_max);
}

/* The two runs' results, log rows, pre-step scales and trails are the same bits. */
static void compare(const char *what, const run *kept, const run *re, bool observed) {
    const qc_quantized *a = &kept->q, *b = &re->q;
    int nl = a->n_layers, differ = 0, quantized = 0;
    CHECK(nl == b->n_layers && nl > 0 && nl <= MAX_LAYERS, "%s: %d and %d blocks", what, nl, b->n_layers);
    if (nl != b->n_layers || nl <= 0 || nl > MAX_LAYERS) return;
    for (size_t i = 0; i < (size_t)nl * QC_LIN_COUNT; i++) {
        const qc_qweight *x = &a->res[i], *y = &b->res[i];
        size_t ng = (size_t)x->rows * x->ngroups, bad = 0;
        bad += x->rows != y->rows || x->cols != y->cols || x->ngroups != y->ngroups || x->bits != y->bits;
        bad += !bad && !same(x->codes, y->codes, (size_t)x->rows * x->cols);
        bad += !bad && !(same(x->scales, y->scales, ng * 4) && same(x->zeros, y->zeros, ng * 4) && same(x->mins, y->mins, ng * 4));
        bad += !bad && !(same(x->g_idx, y->g_idx, (size_t)x->cols * 4) && same(x->perm, y->perm, (size_t)x->cols * 4));
        if (bad) fprintf(stderr, "%s: block %zu %s differs\n", what, i / QC_LIN_COUNT, qc_weight_short_name(qc_linear_weight((int)(i % QC_LIN_COUNT))));
        differ += bad != 0;
        quantized += x->codes != NULL;
    }
    CHECK(differ == 0, "%s: %d of %d results differ between kept and recomputed stages", what, differ, nl * QC_LIN_COUNT);
    CHECK(quantized > 0, "%s: something was quantized", what);
    int rows = 0;
    for (int i = 0; i < a->nreports && i < b->nreports; i++) rows += !same_report(&a->reports[i], &b->reports[i]);
    CHECK(a->nreports == nl * QC_LIN_COUNT && b->nreports == a->nreports && rows == 0, "%s: %d and %d log rows, %d differ",
          what, a->nreports, b->nreports, rows);
    CHECK(!a->scales == !b->scales, "%s: pre-step scales in one run only", what);
    const qc_config *c = &kept->m->cfg;
    for (size_t i = 0; a->scales && b->scales && i < (size_t)nl * QC_SCALE_STAGES * QC_SITE_COUNT; i++)
        CHECK(same(a->scales[i], b->scales[i], (size_t)qc_site_width(c, (qc_site)(i % QC_SITE_COUNT)) * sizeof(float)),
              "%s: block %zu's scales of stage %zu, site %s differ", what, i / (QC_SCALE_STAGES * QC_SITE_COUNT),
              i / QC_SITE_COUNT % QC_SCALE_STAGES, qc_site_name((qc_site)(i % QC_SITE_COUNT)));
    const trail *s = &kept->t, *t = &re->t;
    CHECK(s->saved == t->saved && memcmp(s->out, t->out, sizeof s->out) == 0,
          "%s: the blocks' outputs differ (%d and %d saved)", what, s->saved, t->saved);
    CHECK(!observed || (s->observed == nl * QC_SITE_COUNT && t->observed == s->observed &&
                        memcmp(s->seen, t->seen, sizeof s->seen) == 0),
          "%s: the observer saw other statistics (%d and %d sites)", what, s->observed, t->observed);
}

static void both_routes(const model_case *mc, const qc_windows *w, const char *label, qc_calib_opts o, bool observed) {
    qc_err e = { "" };
    char what[160];
    snprintf(what, sizeof what, "%s, %s", mc->name, label);
    run kept, re;
    CHECK_OK(calibrate(mc, w, o, false, observed, &kept, &e), e);
    CHECK_OK(calibrate(mc, w, o, true, observed, &re, &e), e);
    if (kept.q.res && re.q.res) compare(what, &kept, &re, observed);
    run_free(&kept);
    run_free(&re);
}

static void test_same_bits(void) {
    for (size_t k = 0; k < sizeof models / sizeof *models; k++) {
        const model_case *mc = &models[k];
        qc_windows w = { 0 };
        windows_of(mc, &w);
        CHECK(w.n == NWIN && w.seqlen == SEQLEN, "%s: %d windows of %d", mc->name, w.n, w.seqlen);
        qc_calib_opts gptq = { .method = QC_METHOD_GPTQ, .spec = { .bits = 4, .groupsize = 32 }, .gptq = qc_gptq_defaults(),
                               .true_sequential = true };
        gptq.gptq.act_order = true;
        both_routes(mc, &w, "gptq w4 g32 act-order, observed", gptq, true);

        qc_calib_opts half = gptq;
        half.spec = (qc_quant_spec){ .bits = 3, .groupsize = 0 };
        half.act_dtype = k == 0 ? QC_DT_F16 : QC_DT_BF16;
        both_routes(mc, &w, k == 0 ? "gptq w3 per-row, residual stream f16" : "gptq w3 per-row, residual stream bf16", half,
                    false);

        qc_calib_opts rtn = { .method = QC_METHOD_RTN, .spec = { .bits = 4, .groupsize = 32 }, .true_sequential = true };
        rtn.keep_f16[QC_LIN_K] = true;
        both_routes(mc, &w, "rtn w4 g32, k kept in fp16", rtn, false);

        qc_calib_opts awq = { .method = QC_METHOD_AWQ, .spec = { .bits = 4, .groupsize = 32, .awq_range = true },
                              .true_sequential = true, .propagate_fp32 = true, .awq = { .clip = true } };
        both_routes(mc, &w, "awq w4 g32, clipped, fp32 propagation", awq, false);

        qc_calib_opts smooth = gptq;
        smooth.smooth_alpha = 0.5f;
        smooth.gptq.act_order = false;
        both_routes(mc, &w, "smoothquant 0.5 then gptq w4 g32", smooth, false);
        qc_windows_free(&w);
    }
}

/* The other tests run on one thread (quick on a loaded machine); the same on two. */
static void test_two_threads(void) {
    const model_case *mc = &models[0];
    qc_windows w = { 0 };
    windows_of(mc, &w);
    qc_calib_opts gptq = { .method = QC_METHOD_GPTQ, .spec = { .bits = 4, .groupsize = 32 }, .gptq = qc_gptq_defaults(),
                           .true_sequential = true };
    qc_set_threads(2);
    both_routes(mc, &w, "gptq w4 g32 on two threads, observed", gptq, true);
    qc_set_threads(1);
    qc_windows_free(&w);
}

/* bf16 products: the kept route holds each stage's weight conversions over its chunks
 * (qc_workspace_hold_weights), the recomputing route converts them per product; the same
 * conversions, so the same bits, observer included. */
static void test_bf16_held(void) {
    qc_set_compute(QC_COMPUTE_BF16);
    for (size_t k = 0; k < sizeof models / sizeof *models; k++) {
        qc_windows w = { 0 };
        windows_of(&models[k], &w);
        qc_calib_opts gptq = { .method = QC_METHOD_GPTQ, .spec = { .bits = 4, .groupsize = 32 },
                               .gptq = qc_gptq_defaults(), .true_sequential = true };
        both_routes(&models[k], &w, "gptq w4 g32, bf16 products, observed", gptq, true);
        qc_windows_free(&w);
    }
    qc_set_compute(QC_COMPUTE_F32);
}

/* Mixed precision's measuring pass: its observer runs the rest of the model on the runner's
 * workspace between stages; the measured errors are the same bits either way. */
static void test_mixed_measure(void) {
    qc_err e = { "" };
    const model_case *mc = &models[1];
    qc_windows w = { 0 };
    windows_of(mc, &w);
    qc_quant_spec cands[2] = { { .bits = 3, .groupsize = 32 }, { .bits = 8, .groupsize = 32 } };
    double *err[2] = { 0 };
    int nl = 0;
    for (int recompute = 0; recompute < 2; recompute++) {
        qc_model *m = NULL;
        qc_calib_opts o = { .method = QC_METHOD_GPTQ, .spec = { .bits = 4, .groupsize = 32 }, .gptq = qc_gptq_defaults(),
                            .true_sequential = true, .recompute = recompute, .batch_tokens = BATCH_TOKENS };
        CHECK_OK(qc_model_open(&m, shared_path(mc->model), &e), e);
        if (!m) break;
        nl = m->cfg.n_layers;
        err[recompute] = malloc((size_t)nl * QC_LIN_COUNT * 2 * sizeof(double));
        CHECK_OK(qc_mixed_measure(m, &w, &o, cands, 2, err[recompute], &e), e);
        qc_model_free(m);
    }
    size_t n = (size_t)nl * QC_LIN_COUNT * 2;
    int positive = 0;
    for (size_t i = 0; err[0] && i < n; i++) positive += err[0][i] > 0;
    CHECK(err[0] && err[1] && memcmp(err[0], err[1], n * sizeof(double)) == 0 && positive == (int)n,
          "%s: the measured errors differ between kept and recomputed stages (%d of %zu positive)", mc->name, positive, n);
    free(err[0]);
    free(err[1]);
    qc_windows_free(&w);
}

int main(void) {
    qc_set_threads(1);
    RUN(test_same_bits);
    RUN(test_two_threads);
    RUN(test_bf16_held);
    RUN(test_mixed_measure);
    return check_summary();
}
