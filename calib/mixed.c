/* mixed.c — mixed precision by measurement (--target-bpw) and GPTQ-for-LLaMa's --observe
 * shortcut: which linears deserve more bits, decided from their measured output error.
 *
 * The error of a linear under a setting is how far it moves its block's output, the residual
 * stream, relative to that output: ‖block(x; W → Q) − block(x)‖² / ‖block(x)‖² over the
 * first MEASURE_TOKENS calibration tokens. Errors in that common currency add up across
 * linears as a first-order estimate of the damage. Two simpler currencies lost to uniform
 * 4-bit on stories260K (README "Mixed precision"): a linear's own output error (‖X(W − Q)ᵀ‖²,
 * what GPTQ minimizes) ranks q_proj, whose errors the softmax mostly absorbs, far above o_proj
 * and down_proj; the block output's absolute error grows with the residual stream, so it
 * spends the bits on the last blocks and starves the first, whose errors every later block
 * carries. Measuring runs one calibration
 * pass whose observer solves each linear at every candidate on the statistics the pass
 * gathered (a linear's inputs come from the earlier blocks quantized with the run's base
 * setting) and runs the block with it. Choosing is a
 * multiple-choice knapsack, solved greedily on each linear's lower convex hull of (bits,
 * error): upgrades are taken in order of error saved per bit while they fit the budget —
 * optimal for the budget it ends up spending up to one step per linear. */
#include "calib/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* n codes of `bits` packed in 32-bit words: whole words, and for 3 bits whole 32-code blocks. */
static double packed_bits(int n, int bits) {
    return bits == 3 ? ceil(n / 32.0) * 96.0 : ceil(n * bits / 32.0) * 32.0;
}

double qc_spec_storage_bits(const qc_quant_spec *s, int rows, int cols) {
    int ng = qc_quant_ngroups(s, cols);
    double zeros = s->store_min ? 16.0 * rows : s->signed_scale ? 0 : packed_bits(rows, s->bits);
    return rows * packed_bits(cols, s->bits) + ng * (16.0 * rows + zeros);
}

/* ---- measuring ---- */

#define MEASURE_TOKENS 4096 /* block outputs compared on this many tokens (at least one window) */

typedef struct measure {
    const qc_config *cfg;
    const qc_calib_opts *o;
    const qc_quant_spec *cands;
    int ncand;
    double *err;      /* (modules, ncand) */
    float *ref, *out; /* (nsub*seqlen, dim) the block's outputs: as it is, with one candidate */
    int nsub;         /* windows compared */
    double ref_energy; /* ‖ref‖² */
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

/* Block b on the first nsub windows of the observation's input, into y. */
static qc_status forward(const measure *k, const qc_observation *ob, const qc_block *b, float *y, qc_err *e) {
    size_t win = (size_t)ob->seqlen * k->cfg->dim;
    qc_convert_to_f32(ob->act_dtype, ob->x, (size_t)k->nsub * win, y);
    for (int w0 = 0; w0 < k->nsub; w0 += ob->chunk) {
        int nw = k->nsub - w0 < ob->chunk ? k->nsub - w0 : ob->chunk;
        qc_status st = qc_block_forward(k->cfg, b, ob->layer, y + (size_t)w0 * win, nw, ob->seqlen, NULL, ob->ws, e);
        if (st) return st;
    }
    return QC_OK;
}

/* Each linear of the site at each candidate: ‖block output − the block's own output‖² relative
 * to ‖the block's own output‖². */
static qc_status on_site(void *ctx, const qc_observation *ob, qc_err *e) {
    measure *k = ctx;
    size_t n = (size_t)k->nsub * ob->seqlen * k->cfg->dim;
    qc_status st = forward(k, ob, ob->block, k->ref, e);
    k->ref_energy = 0;
    for (size_t i = 0; i < n && !st; i++) k->ref_energy += (double)k->ref[i] * k->ref[i];
    if (!st && !(k->ref_energy > 0)) st = qc_fail(e, QC_ERR_NUMERIC, "block %d: its output is all zeros", ob->layer);
    for (int lin = 0; lin < QC_LIN_COUNT && !st; lin++) {
        if (qc_linear_site(lin) != ob->site || qc_calib_keeps(k->o, ob->layer, (qc_linear)lin)) continue;
        int rows, cols;
        qc_weight_shape(k->cfg, qc_linear_weight(lin), &rows, &cols);
        float *q = qc_malloc((size_t)rows * cols, sizeof(float), e, "candidate weights");
        if (!q) return QC_ERR_NOMEM;
        qc_block with = *ob->block;
        with.w[lin] = q;
        for (int j = 0; j < k->ncand && !st; j++) {
            /* the runner owns the statistics; a candidate only borrows the diagonal (restored) */
            st = candidate(k, ob->block->w[lin], rows, cols, (qc_stats *)ob->stats, &k->cands[j], q, e);
            if (!st) st = forward(k, ob, &with, k->out, e);
            double sum = 0;
            for (size_t i = 0; i < n && !st; i++) sum += ((double)k->out[i] - k->ref[i]) * ((double)k->out[i] - k->ref[i]);
            k->err[((size_t)ob->layer * QC_LIN_COUNT + lin) * k->ncand + j] = sum / k->ref_energy;
        }
        free(q);
        if (st) st = qc_fail_prefix(e, st, "measuring block %d %s", ob->layer, qc_weight_short_name(qc_linear_weight(lin)));
    }
    return st;
}

qc_status qc_mixed_measure(qc_model *m, const qc_windows *w, const qc_calib_opts *o, const qc_quant_spec *cands,
                           int ncand, double *err, qc_err *e) {
    int nsub = MEASURE_TOKENS / w->seqlen < 1 ? 1 : MEASURE_TOKENS / w->seqlen;
    measure k = { &m->cfg, o, cands, ncand, err, NULL, NULL, nsub < w->n ? nsub : w->n, 0 };
    for (size_t i = 0; i < (size_t)m->cfg.n_layers * QC_LIN_COUNT * ncand; i++) err[i] = NAN;
    size_t n = (size_t)k.nsub * w->seqlen * m->cfg.dim;
    k.ref = qc_malloc(n, sizeof(float), e, "block outputs");
    k.out = k.ref ? qc_malloc(n, sizeof(float), e, "block outputs") : NULL;
    qc_calib_opts po = *o;
    po.observe = on_site;
    po.observe_ctx = &k;
    po.checkpoint = NULL; /* a measuring pass is not resumed */
    po.embed.bits = 0;
    qc_quantized q;
    qc_status st = k.out ? qc_calibrate(m, w, &po, &q, e) : QC_ERR_NOMEM;
    if (!st) qc_quantized_free(&q);
    free(k.ref), free(k.out);
    return st;
}

/* ---- choosing ---- */

typedef struct step {
    int module, to;       /* the module, and the candidate it moves to */
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

qc_status qc_mixed_choose(const qc_config *c, const qc_quant_spec *cands, int ncand, const double *err,
                          double budget_bpw, qc_module_quant *mods, qc_mixed_result *res, qc_err *e) {
    if (ncand < 1 || ncand > 64) return qc_fail(e, QC_ERR_ARG, "mixed precision needs 1 to 64 candidate settings");
    int nmod = c->n_layers * QC_LIN_COUNT;
    double *bits = qc_malloc((size_t)nmod * ncand, sizeof(double), e, "candidate sizes");
    int *hulls = bits ? qc_malloc((size_t)nmod * ncand, sizeof(int), e, "candidate hulls") : NULL;
    int *nh = hulls ? qc_calloc((size_t)nmod, sizeof(int), e, "candidate hulls") : NULL;
    int *at = nh ? qc_calloc((size_t)nmod, sizeof(int), e, "choices") : NULL;
    step *steps = at ? qc_malloc((size_t)nmod * ncand, sizeof(step), e, "upgrades") : NULL;
    qc_status st = steps ? QC_OK : QC_ERR_NOMEM;
    double weights = 0, fixed = 0, spent = 0;
    int nsteps = 0;
    for (int i = 0; i < nmod && !st; i++) {
        int layer = i / QC_LIN_COUNT, rows, cols;
        qc_weight_shape(c, qc_linear_weight(i % QC_LIN_COUNT), &rows, &cols);
        if (mods[i].keep_f16) continue; /* not quantized: outside the budget */
        weights += (double)rows * cols;
        if (mods[i].pinned) {
            fixed += qc_spec_storage_bits(&mods[i].spec, rows, cols);
            continue;
        }
        const double *ei = &err[(size_t)i * ncand];
        double *bi = &bits[(size_t)i * ncand];
        for (int j = 0; j < ncand; j++) {
            bi[j] = qc_spec_storage_bits(&cands[j], rows, cols);
            if (!isfinite(ei[j]))
                st = qc_fail(e, QC_ERR_NUMERIC, "block %d %s: no measured error for candidate %d", layer,
                             qc_weight_short_name(qc_linear_weight(i % QC_LIN_COUNT)), j);
        }
        if (st) break;
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
        for (int s = 0; s < nsteps; s++) { /* a module's own steps come in hull order */
            const step *u = &steps[s];
            if (at[u->module] != u->to - 1 || spent + u->bits > budget) continue;
            spent += u->bits;
            at[u->module] = u->to;
        }
        double total_err = 0;
        for (int i = 0; i < nmod; i++) {
            if (mods[i].keep_f16 || mods[i].pinned) continue;
            int j = hulls[(size_t)i * ncand + at[i]];
            mods[i].spec = cands[j];
            total_err += err[(size_t)i * ncand + j];
        }
        res->bpw = (spent + fixed) / weights;
        res->est_err = total_err;
    }
    free(bits), free(hulls), free(nh), free(at), free(steps);
    return st;
}

int qc_observe_upgrade(const qc_quantized *q, int k, const qc_quant_spec *up, qc_module_quant *mods) {
    int done = 0;
    bool *taken = calloc((size_t)q->nreports, 1);
    if (!taken) return -1;
    for (; done < k; done++) { /* the k largest errors, by selection (k is small) */
        int best = -1;
        for (int i = 0; i < q->nreports; i++) {
            const qc_layer_report *r = &q->reports[i];
            size_t m = (size_t)r->block * QC_LIN_COUNT + r->linear;
            if (taken[i] || r->kept_f16 || mods[m].pinned || qc_quant_spec_same(&mods[m].spec, up)) continue;
            if (best < 0 || r->abs_err > q->reports[best].abs_err) best = i;
        }
        if (best < 0) break;
        taken[best] = true;
        mods[(size_t)q->reports[best].block * QC_LIN_COUNT + q->reports[best].linear].spec = *up;
    }
    free(taken);
    return done;
}
