/* mixed.c — mixed precision by measurement (--target-bpw) and GPTQ-for-LLaMa's --observe
 * shortcut: which linears deserve more bits, decided from their measured damage.
 *
 * The damage a linear takes under a setting is what it does to the model's prediction: the
 * mean KL divergence per token of the next-token distribution with the linear at that
 * setting from the one with it as it is, over the first MEASURE_TOKENS calibration tokens,
 * the rest of the model unchanged (earlier blocks quantized with the run's base setting, as
 * the pass leaves them; later ones exact). For small perturbations the divergences of
 * separate linears add up, and their sum tracks the quantized model's loss: on stories260K
 * uniform w4 g128 measures 0.083 nats in total and loses 0.069 nats of NLL on held-out text,
 * w4 g32 0.064 and 0.055 (w3 g32: 0.293 and 0.362, larger errors compound). Three cheaper
 * currencies chose worse than uniform 4-bit (README "Mixed precision"): a linear's own
 * output error (what GPTQ minimizes) ranks q_proj, whose errors the softmax mostly absorbs,
 * far above o_proj and down_proj; the block output's absolute error grows with the residual
 * stream and starves the first blocks; the block output's relative error cannot tell which
 * blocks the prediction depends on.
 *
 * Measuring runs one calibration pass whose observer, at each site, solves each of its
 * linears at every candidate on the statistics the pass gathered, runs the block with it,
 * carries all those residual streams (and the block as it is) through the later blocks —
 * each loaded once per site — and compares their predictions. Choosing is a multiple-choice
 * knapsack over units (a linear, or the linears of one site when they must share a setting,
 * as vLLM's fused qkv_proj and gate_up_proj do), solved greedily on each unit's lower convex
 * hull of (bits, damage): upgrades are taken in order of damage saved per bit while they fit
 * the budget — optimal for the budget it ends up spending up to one step per unit. */
#include "calib/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* n codes of `bits` packed in 32-bit words: whole words, and for 3 bits whole 32-code blocks. */
static double packed_bits(int n, int bits) {
    return bits == 3 ? ceil(n / 32.0) * 96.0 : ceil(n * bits / 32.0) * 32.0;
}

double qc_spec_storage_bits(const qc_quant_spec *s, int rows, int cols) {
    if (s->kquant) { /* a super-block: its codes, sub-block scales (and mins), fp16 d (and dmin) */
        double bytes = s->bits * QC_KQ_SUPER / 8 + (s->bits == 2 || s->bits == 6 ? 16 : 12) + (s->store_min ? 4 : 2);
        return 8.0 * bytes * rows * (cols / QC_KQ_SUPER);
    }
    int ng = qc_quant_ngroups(s, cols);
    double zeros = s->store_min ? 16.0 * rows : s->signed_scale ? 0 : packed_bits(rows, s->bits);
    return rows * packed_bits(cols, s->bits) + ng * (16.0 * rows + zeros);
}

/* ---- measuring ---- */

#define MEASURE_TOKENS 4096 /* the model's outputs compared on this many tokens (at least one window) */
#define SITE_LINEARS 3      /* the most linears one site feeds (q, k, v) */

typedef struct measure {
    qc_model *m;
    const qc_calib_opts *o;
    const qc_quant_spec *cands;
    int ncand;
    double *err;     /* (modules, ncand) */
    int nsub;        /* windows compared: this rank's of them (a prefix of its share) */
    int64_t ntok;    /* tokens compared, every rank's */
    float *streams;  /* (1 + SITE_LINEARS*ncand, nsub*seqlen, dim) the residual stream: with the block as
                        it is, then with each candidate of each of the site's linears */
    float *ref, *lp; /* (chunk tokens, vocab) log-probabilities: with the block as it is, with one candidate */
} measure;

/* w quantized by s (as the run would) and dequantized into q. */
static qc_status candidate(const measure *k, const float *w, int rows, int cols, qc_stats *st, const qc_quant_spec *s,
                           float *q, qc_err *e) {
    qc_qweight r = { 0 };
    qc_gptq_info info;
    qc_status rc = qc_calib_quantize_linear(k->o, s, w, rows, cols, st, q, &r, &info, e);
    if (!rc) qc_qweight_dequantize(&r, q);
    qc_qweight_free(&r);
    return rc;
}

/* Block b (layer) over the first nsub windows of y, in place. */
static qc_status forward(const measure *k, const qc_observation *ob, const qc_block *b, int layer, float *y,
                         qc_err *e) {
    size_t win = (size_t)ob->seqlen * k->m->cfg.dim;
    for (int w0 = 0; w0 < k->nsub; w0 += ob->chunk) {
        int nw = k->nsub - w0 < ob->chunk ? k->nsub - w0 : ob->chunk;
        qc_status st = qc_block_forward(&k->m->cfg, b, layer, y + (size_t)w0 * win, nw, ob->seqlen, NULL, ob->ws, e);
        if (st) return st;
    }
    return QC_OK;
}

/* The streams through the blocks after ob's (each read from the checkpoint once, as loaded:
 * the error a candidate causes is judged with the rest of the model exact). */
static qc_status through_the_rest(const measure *k, const qc_observation *ob, int nstreams, qc_err *e) {
    size_t n = (size_t)k->nsub * ob->seqlen * k->m->cfg.dim;
    qc_status st = QC_OK;
    for (int l = ob->layer + 1; l < k->m->cfg.n_layers && !st; l++) {
        qc_block b;
        if ((st = qc_block_load(k->m->ck, l, &b, e))) break;
        for (int s = 0; s < nstreams && !st; s++) st = forward(k, ob, &b, l, k->streams + s * n, e);
        qc_block_free(&b);
    }
    return st;
}

/* Mean KL(model as it is ‖ with the candidate) per token, for streams 1.. into kl. */
static qc_status divergences(const measure *k, const qc_observation *ob, int nstreams, double *kl, qc_err *e) {
    int dim = k->m->cfg.dim, vocab = k->m->cfg.vocab_size, ntok = k->nsub * ob->seqlen; /* this rank's */
    int chunk = ob->chunk * ob->seqlen;
    size_t n = (size_t)ntok * dim;
    for (int s = 1; s < nstreams; s++) kl[s] = 0;
    qc_status st = QC_OK;
    for (int t0 = 0; t0 < ntok && !st; t0 += chunk) {
        int nt = ntok - t0 < chunk ? ntok - t0 : chunk;
        st = qc_model_head(k->m, k->streams + (size_t)t0 * dim, nt, k->ref, e);
        for (int t = 0; t < nt && !st; t++) {
            float *row = k->ref + (size_t)t * vocab;
            qc_log_softmax(row, vocab, row);
        }
        for (int s = 1; s < nstreams && !st; s++) {
            st = qc_model_head(k->m, k->streams + s * n + (size_t)t0 * dim, nt, k->lp, e);
            for (int t = 0; t < nt && !st; t++) {
                float *row = k->lp + (size_t)t * vocab;
                qc_log_softmax(row, vocab, row);
                kl[s] += qc_kl_logprobs(k->ref + (size_t)t * vocab, row, vocab) / (double)k->ntok;
            }
        }
    }
    st = qc_dist_agree(k->o->dist, st, e);
    return st ? st : qc_dist_sum_f64(k->o->dist, kl + 1, (size_t)nstreams - 1, e); /* every rank's tokens */
}

/* Each linear of the site at each candidate: how far it moves the model's next-token
 * distribution, the rest of the model as it is. */
static qc_status on_site(void *ctx, const qc_observation *ob, qc_err *e) {
    measure *k = ctx;
    size_t n = (size_t)k->nsub * ob->seqlen * k->m->cfg.dim;
    int lins[SITE_LINEARS], nl = 0;
    for (int lin = 0; lin < QC_LIN_COUNT; lin++)
        if (qc_linear_site(lin) == ob->site && !qc_calib_keeps(k->o, ob->layer, (qc_linear)lin)) lins[nl++] = lin;
    if (!nl) return QC_OK;
    int nstreams = 1 + nl * k->ncand;
    for (int s = 0; s < nstreams; s++) qc_convert_to_f32(ob->act_dtype, ob->x, n, k->streams + s * n);
    qc_status st = forward(k, ob, ob->block, ob->layer, k->streams, e);
    for (int i = 0; i < nl && !st; i++) {
        int rows, cols;
        qc_weight_shape(&k->m->cfg, qc_linear_weight(lins[i]), &rows, &cols);
        float *q = qc_malloc((size_t)rows * cols, sizeof(float), e, "candidate weights");
        if (!q) {
            st = QC_ERR_NOMEM;
            break;
        }
        qc_block with = *ob->block;
        with.w[lins[i]] = q;
        for (int j = 0; j < k->ncand && !st; j++) {
            /* the runner owns the statistics; a candidate only borrows the diagonal (restored) */
            st = candidate(k, ob->block->w[lins[i]], rows, cols, (qc_stats *)ob->stats, &k->cands[j], q, e);
            if (!st) st = forward(k, ob, &with, ob->layer, k->streams + (1 + (size_t)i * k->ncand + j) * n, e);
        }
        free(q);
        if (st)
            st = qc_fail_prefix(e, st, "%s", qc_weight_short_name(qc_linear_weight(lins[i])));
    }
    double kl[1 + SITE_LINEARS * 64];
    if (!st) st = through_the_rest(k, ob, nstreams, e);
    st = qc_dist_agree(k->o->dist, st, e);
    if (!st) st = divergences(k, ob, nstreams, kl, e);
    for (int i = 0; i < nl && !st; i++)
        for (int j = 0; j < k->ncand; j++)
            k->err[((size_t)ob->layer * QC_LIN_COUNT + lins[i]) * k->ncand + j] = kl[1 + i * k->ncand + j];
    return st ? qc_fail_prefix(e, st, "measuring block %d", ob->layer) : QC_OK;
}

/* The windows compared: MEASURE_TOKENS' worth, at least one, at most all. */
static int measured_windows(int nwin, int seqlen) {
    int nsub = MEASURE_TOKENS / seqlen < 1 ? 1 : MEASURE_TOKENS / seqlen;
    return nsub < nwin ? nsub : nwin;
}

/* Floats of the residual streams compared, and of one chunk of log-probabilities (the
 * runner's forward chunk). */
static void measure_sizes(const qc_config *c, int nwin, int seqlen, const qc_calib_opts *o, int ncand, size_t *streams,
                          size_t *head) {
    *streams = (1 + (size_t)SITE_LINEARS * ncand) * (size_t)measured_windows(nwin, seqlen) * seqlen * c->dim;
    *head = (size_t)qc_calib_chunk_windows(o, nwin, seqlen) * seqlen * c->vocab_size;
}

size_t qc_mixed_measure_bytes(const qc_config *c, int nwin, int seqlen, const qc_calib_opts *o, int ncand) {
    size_t streams, head, block = 2 * (size_t)c->dim, largest = 0;
    measure_sizes(c, nwin, seqlen, o, ncand, &streams, &head);
    for (int l = 0; l < QC_LIN_COUNT; l++) {
        int rows, cols;
        qc_weight_shape(c, qc_linear_weight(l), &rows, &cols);
        block += (size_t)rows * cols;
        largest = (size_t)rows * cols > largest ? (size_t)rows * cols : largest;
    }
    /* streams, two log-probability chunks, a later block, the classifier, one candidate's weights */
    return (streams + 2 * head + block + (size_t)c->vocab_size * c->dim + largest) * sizeof(float);
}

qc_status qc_mixed_measure(qc_model *m, const qc_windows *w, const qc_calib_opts *o, const qc_quant_spec *cands,
                           int ncand, double *err, qc_err *e) {
    if (ncand < 1 || ncand > 64) return qc_fail(e, QC_ERR_ARG, "mixed precision needs 1 to 64 candidate settings");
    /* the first windows of the whole set; with ranks, each compares those of its share */
    int all = measured_windows(qc_windows_total(w), w->seqlen), mine = all - w->first;
    mine = mine < 0 ? 0 : mine > w->n ? w->n : mine;
    measure k = { m, o, cands, ncand, err, mine, (int64_t)all * w->seqlen, NULL, NULL, NULL };
    for (size_t i = 0; i < (size_t)m->cfg.n_layers * QC_LIN_COUNT * ncand; i++) err[i] = NAN;
    size_t streams, head;
    measure_sizes(&m->cfg, w->n, w->seqlen, o, ncand, &streams, &head);
    k.streams = qc_malloc(streams, sizeof(float), e, "measured residual streams");
    k.ref = k.streams ? qc_malloc(head, sizeof(float), e, "log-probabilities") : NULL;
    k.lp = k.ref ? qc_malloc(head, sizeof(float), e, "log-probabilities") : NULL;
    qc_calib_opts po = *o;
    po.observe = on_site;
    po.observe_ctx = &k;
    po.checkpoint = NULL; /* a measuring pass is not resumed */
    po.embed.bits = 0;
    po.classifier.bits = 0;
    qc_quantized q;
    qc_status st = k.lp ? qc_calibrate(m, w, &po, &q, e) : QC_ERR_NOMEM;
    if (!st) qc_quantized_free(&q);
    free(k.streams), free(k.ref), free(k.lp);
    return st;
}

/* ---- choosing ---- */

typedef struct step {
    int module, to;       /* the unit (its first module), and the hull point it moves to */
    double bits, slope;   /* extra bits, error saved per bit */
} step;

static int by_slope(const void *a, const void *b) {
    const step *x = a, *y = b;
    return x->slope > y->slope ? -1 : x->slope < y->slope ? 1 : x->module != y->module ? x->module - y->module : x->to - y->to;
}

/* The candidates of module i on the lower convex hull of (bits, error), cheapest first. */
static int hull(const double *bits, const double *err, int ncand, int *h) {
    int order[64], n = 0;
    for (int j = 0; j < ncand; j++) order[n++] = j;
    for (int a = 1; a < n; a++) /* by bits, then by error */
        for (int b = a; b > 0; b--) {
            int x = order[b - 1], y = order[b];
            if (bits[x] < bits[y] || (bits[x] == bits[y] && err[x] <= err[y])) break;
            order[b - 1] = y, order[b] = x;
        }
    int m = 0;
    for (int t = 0; t < n; t++) {
        int j = order[t];
        if (m && err[j] >= err[h[m - 1]]) continue; /* costs more, saves nothing */
        while (m >= 2) { /* drop a middle point above the chord */
            int a = h[m - 2], b = h[m - 1];
            double s1 = (err[a] - err[b]) / (bits[b] - bits[a]), s2 = (err[b] - err[j]) / (bits[j] - bits[b]);
            if (s2 < s1) break;
            m--;
        }
        h[m++] = j;
    }
    return m;
}

/* The linears chosen for as one: each free linear alone, or with tie_sites those of one site
 * of one block (q, k, v; gate, up) together. Fills unit[] with the first module of each
 * linear's unit (-1: not chosen for: kept or pinned); returns the number of units. */
static int units_of(const qc_config *c, const qc_module_quant *mods, bool tie_sites, int *unit) {
    int nmod = c->n_layers * QC_LIN_COUNT, n = 0;
    for (int i = 0; i < nmod; i++) {
        unit[i] = -1;
        if (mods[i].keep_f16 || mods[i].pinned) continue;
        unit[i] = i;
        for (int j = i - i % QC_LIN_COUNT; tie_sites && j < i; j++) /* an earlier free linear of the site */
            if (unit[j] >= 0 && qc_linear_site(j % QC_LIN_COUNT) == qc_linear_site(i % QC_LIN_COUNT)) {
                unit[i] = unit[j];
                break;
            }
        n += unit[i] == i;
    }
    return n;
}

qc_status qc_mixed_choose(const qc_config *c, const qc_quant_spec *cands, int ncand, const double *err,
                          double budget_bpw, bool tie_sites, qc_module_quant *mods, qc_mixed_result *res,
                          qc_err *e) {
    if (ncand < 1 || ncand > 64) return qc_fail(e, QC_ERR_ARG, "mixed precision needs 1 to 64 candidate settings");
    int nmod = c->n_layers * QC_LIN_COUNT;
    /* per module, the sums over its unit (at the unit's first module) */
    double *bits = qc_calloc((size_t)nmod * ncand, sizeof(double), e, "candidate sizes");
    double *uerr = bits ? qc_calloc((size_t)nmod * ncand, sizeof(double), e, "candidate errors") : NULL;
    int *unit = uerr ? qc_malloc((size_t)nmod, sizeof(int), e, "units") : NULL;
    int *hulls = unit ? qc_malloc((size_t)nmod * ncand, sizeof(int), e, "candidate hulls") : NULL;
    int *nh = hulls ? qc_calloc((size_t)nmod, sizeof(int), e, "candidate hulls") : NULL;
    int *at = nh ? qc_calloc((size_t)nmod, sizeof(int), e, "choices") : NULL;
    step *steps = at ? qc_malloc((size_t)nmod * ncand, sizeof(step), e, "upgrades") : NULL;
    qc_status st = steps ? QC_OK : QC_ERR_NOMEM;
    double weights = 0, fixed = 0, spent = 0;
    int nsteps = 0;
    if (!st) units_of(c, mods, tie_sites, unit);
    for (int i = 0; i < nmod && !st; i++) {
        int layer = i / QC_LIN_COUNT, rows, cols;
        qc_weight_shape(c, qc_linear_weight(i % QC_LIN_COUNT), &rows, &cols);
        if (mods[i].keep_f16) continue; /* not quantized: outside the budget */
        weights += (double)rows * cols;
        if (mods[i].pinned) {
            fixed += qc_spec_storage_bits(&mods[i].spec, rows, cols);
            continue;
        }
        for (int j = 0; j < ncand; j++) {
            double ej = err[(size_t)i * ncand + j];
            bits[(size_t)unit[i] * ncand + j] += qc_spec_storage_bits(&cands[j], rows, cols);
            uerr[(size_t)unit[i] * ncand + j] += ej;
            if (!isfinite(ej))
                st = qc_fail(e, QC_ERR_NUMERIC, "block %d %s: no measured error for candidate %d", layer,
                             qc_weight_short_name(qc_linear_weight(i % QC_LIN_COUNT)), j);
        }
    }
    for (int i = 0; i < nmod && !st; i++) {
        if (unit[i] != i) continue;
        const double *ei = &uerr[(size_t)i * ncand], *bi = &bits[(size_t)i * ncand];
        int *h = &hulls[(size_t)i * ncand];
        nh[i] = hull(bi, ei, ncand, h);
        spent += bi[h[0]];
        for (int t = 1; t < nh[i]; t++) {
            double db = bi[h[t]] - bi[h[t - 1]];
            steps[nsteps++] = (step){ i, t, db, (ei[h[t - 1]] - ei[h[t]]) / db };
        }
    }
    double budget = budget_bpw * weights - fixed;
    if (!st && spent > budget)
        st = qc_fail(e, QC_ERR_ARG, "--target-bpw %g is below what the cheapest candidate gives every linear (%.3f bits "
                     "per weight)", budget_bpw, (spent + fixed) / weights);
    if (!st) {
        qsort(steps, (size_t)nsteps, sizeof *steps, by_slope);
        for (int s = 0; s < nsteps; s++) { /* a unit's own steps come in hull order */
            const step *u = &steps[s];
            if (at[u->module] != u->to - 1 || spent + u->bits > budget) continue;
            spent += u->bits;
            at[u->module] = u->to;
        }
        double total_err = 0;
        for (int i = 0; i < nmod; i++) {
            if (unit[i] < 0) continue;
            int j = hulls[(size_t)unit[i] * ncand + at[unit[i]]];
            mods[i].spec = cands[j];
            total_err += err[(size_t)i * ncand + j];
        }
        res->bpw = (spent + fixed) / weights;
        res->est_err = total_err;
    }
    free(bits), free(uerr), free(unit), free(hulls), free(nh), free(at), free(steps);
    return st;
}

int qc_observe_upgrade(const qc_quantized *q, int k, const qc_quant_spec *up, bool tie_sites, qc_module_quant *mods) {
    int done = 0;
    for (; done < k; done++) { /* the k largest errors, by selection (k is small); an upgraded
                                  linear is at `up` and drops out */
        int best = -1;
        for (int i = 0; i < q->nreports; i++) {
            const qc_layer_report *r = &q->reports[i];
            const qc_module_quant *mq = &mods[(size_t)r->block * QC_LIN_COUNT + r->linear];
            if (r->kept_f16 || mq->pinned || qc_quant_spec_same(&mq->spec, up)) continue;
            if (best < 0 || r->abs_err > q->reports[best].abs_err) best = i;
        }
        if (best < 0) break;
        const qc_layer_report *r = &q->reports[best];
        for (int lin = 0; lin < QC_LIN_COUNT; lin++) {
            qc_module_quant *mq = &mods[(size_t)r->block * QC_LIN_COUNT + lin];
            bool sibling = tie_sites && qc_linear_site(lin) == qc_linear_site(r->linear) && !mq->keep_f16 &&
                           !mq->pinned;
            if (lin == (int)r->linear || sibling) mq->spec = *up;
        }
    }
    return done;
}

qc_status qc_mixed_check_budget(const qc_config *c, const qc_quant_spec *cands, int ncand, double budget_bpw,
                                bool tie_sites, const qc_module_quant *mods, qc_err *e) {
    size_t nmod = (size_t)c->n_layers * QC_LIN_COUNT;
    qc_module_quant *copy = qc_malloc(nmod, sizeof *copy, e, "module settings");
    double *zero = copy ? qc_calloc(nmod * (size_t)(ncand > 0 ? ncand : 1), sizeof(double), e, "candidate errors") : NULL;
    if (!zero) {
        free(copy);
        return QC_ERR_NOMEM;
    }
    memcpy(copy, mods, nmod * sizeof *copy);
    qc_mixed_result res;
    qc_status st = qc_mixed_choose(c, cands, ncand, zero, budget_bpw, tie_sites, copy, &res, e); /* errors all 0 */
    free(copy);
    free(zero);
    return st;
}
