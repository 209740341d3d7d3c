/* runner.c — calibration block by block (DESIGN.md's data flow). For each block: for each
 * true-sequential subset of its input sites, gather the subset's statistics over every
 * window, solve each linear of the subset and put its dequantized weights into the block, so
 * later subsets see them; then the block's output is the next block's input, and the block
 * is released. True-sequential, the block's activations between sites are kept (stages):
 * each site's input is computed once, from the one before it through the linears just
 * solved, and the last stage's output is the next block's input: one forward's worth of
 * linears per block. Without room for them (o->recompute), or with all sites at once,
 * every subset runs the block from its input with hooks that record the statistics and stop
 * at its last site (the stages recompute what came before), and a final pass runs the
 * quantized block; both routes do the same operations on the same chunks of windows, so
 * they give the same bits. The residual stream of all windows (and the kept stages) is the
 * only large state. With SmoothQuant or AWQ, a pre-step (prestep.c) first rescales the
 * loaded block, function unchanged; the scales are kept with the result so writers fold
 * them into the norms; with fp32 propagation the next block's inputs are the pre-step's
 * fp32 outputs instead of the quantized block's. After the blocks, the classifier and the
 * token embedding when they are quantized too (classifier.c, embedding.c). */
#include "calib/internal.h"

#include <stdlib.h>
#include <string.h>

/* The hook's state: which sites it records into, and where to stop. */
typedef struct collect {
    qc_stats *stats[QC_SITE_COUNT]; /* NULL: not recorded in this pass */
    qc_site last;
} collect;

static qc_status on_input(void *ctx, qc_hook_call *call, qc_err *e) {
    collect *k = ctx;
    if (k->stats[call->site]) {
        char what[64];
        snprintf(what, sizeof what, "block %d, input of %s", call->layer, qc_site_name(call->site));
        qc_status st = qc_stats_add(k->stats[call->site], call->x, call->ntok, what, e);
        if (st) return st;
    }
    call->stop = call->site == k->last;
    return QC_OK;
}

/* Everything a pass over the windows needs. */
typedef struct runner {
    const qc_config *cfg;
    const qc_windows *w;
    const qc_calib_opts *o;
    uint8_t *x;        /* (windows*seqlen, dim) the residual stream entering the current block,
                          in o->act_dtype */
    float *tmp;        /* (chunk tokens, dim) scratch for passes that must not advance x */
    int per_chunk;     /* windows per forward chunk */
    qc_workspace *ws;
    /* the kept stages (true-sequential without o->recompute; else NULL), fp32 as the
     * recomputing route has them, every window: */
    float *x1;         /* (windows*seqlen, dim) the block's input, then x + o(attention); x
                          itself when x is fp32 and no observer needs the block's input */
    float *mid;        /* (windows*seqlen, max(heads*head_dim, hidden)) o's input, then down's */
    double load[64];   /* the work each rank has solved (qc_share_owners) */
} runner;

/* The chunk of windows [w0, w0 + nw) of x, where it is stored. */
static uint8_t *chunk_of(const runner *r, int w0) {
    return r->x + (size_t)w0 * r->w->seqlen * r->cfg->dim * qc_dtype_size(r->o->act_dtype);
}

/* Runs block b (NULL: the embedding) over all windows. With hooks, on an fp32 copy of each
 * chunk (x is kept); without, x becomes the next block's input: in place in fp32, through
 * the fp32 chunk and rounded back when x is held in half precision. */
static qc_status pass(runner *r, const qc_model *m, const qc_block *b, int layer, const qc_hooks *hooks, qc_err *e) {
    int seqlen = r->w->seqlen, dim = r->cfg->dim;
    qc_dtype dt = r->o->act_dtype;
    for (int w0 = 0; w0 < r->w->n; w0 += r->per_chunk) {
        int nw = r->w->n - w0 < r->per_chunk ? r->w->n - w0 : r->per_chunk;
        size_t n = (size_t)nw * seqlen * dim;
        uint8_t *xs = chunk_of(r, w0);
        float *x = dt == QC_DT_F32 && !hooks ? (float *)(void *)xs : r->tmp;
        qc_status st;
        if (!b) {
            st = qc_model_embed(m, r->w->tokens + (size_t)w0 * seqlen, nw * seqlen, x, e);
        } else {
            if (x == r->tmp) qc_convert_to_f32(dt, xs, n, x); /* F32: a copy */
            st = qc_block_forward(r->cfg, b, layer, x, nw, seqlen, hooks, r->ws, e);
        }
        if (st) return st;
        if (!hooks && x == r->tmp) qc_convert_from_f32(dt, x, n, xs);
    }
    return QC_OK;
}

/* Stage `site` of the kept route on the chunk of windows [w0, w0 + nw): the site's input,
 * from what the stage before kept and the linears solved since, added to st. QKV: x1 = the
 * block's input in fp32, its attention norm; O: q, k, v, RoPE, attention, kept in mid;
 * GATE_UP: x1 += o(mid), its FFN norm; DOWN: gate, up, SwiGLU, kept in mid. */
static qc_status stage(runner *r, const qc_block *b, int layer, qc_site site, int w0, int nw, qc_stats *st, qc_err *e) {
    const qc_config *c = r->cfg;
    int seqlen = r->w->seqlen, ntok = nw * seqlen;
    size_t t0 = (size_t)w0 * seqlen, n = (size_t)ntok * c->dim;
    float *x1 = r->x1 + t0 * c->dim, *in = r->tmp;
    qc_status s = QC_OK;
    switch (site) {
    case QC_SITE_QKV:
        if ((void *)x1 != (void *)chunk_of(r, w0)) qc_convert_to_f32(r->o->act_dtype, chunk_of(r, w0), n, x1);
        qc_block_norm(c, b, QC_SITE_QKV, x1, ntok, in);
        break;
    case QC_SITE_O:
        in = r->mid + t0 * qc_site_width(c, QC_SITE_O);
        qc_block_norm(c, b, QC_SITE_QKV, x1, ntok, r->tmp);
        s = qc_subblock_forward(c, b, layer, QC_SUB_ATTEND, r->tmp, nw, seqlen, in, r->ws, e);
        break;
    case QC_SITE_GATE_UP:
        s = qc_subblock_forward(c, b, layer, QC_SUB_O, r->mid + t0 * qc_site_width(c, QC_SITE_O), nw, seqlen, in, r->ws, e);
        if (!s) qc_residual_add(x1, in, n);
        qc_block_norm(c, b, QC_SITE_GATE_UP, x1, ntok, in);
        break;
    case QC_SITE_DOWN:
        in = r->mid + t0 * qc_site_width(c, QC_SITE_DOWN);
        qc_block_norm(c, b, QC_SITE_GATE_UP, x1, ntok, r->tmp);
        s = qc_subblock_forward(c, b, layer, QC_SUB_SWIGLU, r->tmp, nw, seqlen, in, r->ws, e);
        break;
    default: QC_ASSERT(!"stage: not a site");
    }
    if (s) return s;
    char what[64];
    snprintf(what, sizeof what, "block %d, input of %s", layer, qc_site_name(site));
    return qc_stats_add(st, in, ntok, what, e);
}

/* The kept route's last stage on the chunk [w0, w0 + nw): x1 += down(mid), the block's
 * output, into x as the next block's input. */
static qc_status stage_out(runner *r, const qc_block *b, int layer, int w0, int nw, qc_err *e) {
    const qc_config *c = r->cfg;
    int seqlen = r->w->seqlen;
    size_t t0 = (size_t)w0 * seqlen, n = (size_t)nw * seqlen * c->dim;
    qc_status s = qc_subblock_forward(c, b, layer, QC_SUB_DOWN, r->mid + t0 * qc_site_width(c, QC_SITE_DOWN), nw, seqlen,
                                      r->tmp, r->ws, e);
    if (s) return s;
    float *x1 = r->x1 + t0 * c->dim;
    qc_residual_add(x1, r->tmp, n);
    if ((void *)x1 != (void *)chunk_of(r, w0)) qc_convert_from_f32(r->o->act_dtype, x1, n, chunk_of(r, w0));
    return QC_OK;
}

static qc_status output_error(const float *w, const float *q, int rows, int cols, const float *h, qc_layer_report *rep,
                              qc_err *e) {
    double energy;
    qc_status s = qc_quant_output_error_parts(w, q, rows, cols, h, &rep->abs_err, &energy, e);
    rep->rel_err = qc_quant_error_ratio(rep->abs_err, energy);
    return s;
}

qc_status qc_calib_quantize_linear(const qc_calib_opts *o, const qc_quant_spec *spec, const float *w, int rows, int cols,
                                   qc_stats *st, float *scratch, qc_qweight *res, qc_gptq_info *info, qc_err *e) {
    if (o->method != QC_METHOD_GPTQ && o->method != QC_METHOD_AWQ_GPTQ)
        return qc_quant_rtn(w, rows, cols, spec, res, e);
    /* GPTQ writes only H's diagonal (a dead input's 0 becomes 1) and, with act-order, the
     * lower triangle from the upper one, which finished statistics already mirror; so it
     * works on the statistics themselves, without an n² copy, and the diagonal is put back
     * for the site's other linears and the output error. */
    float *diag = qc_malloc((size_t)cols, sizeof(float), e, "Hessian diagonal");
    if (!diag) return QC_ERR_NOMEM;
    memcpy(scratch, w, (size_t)rows * cols * sizeof(float));
    for (int i = 0; i < cols; i++) diag[i] = st->xtx[(size_t)i * cols + i];
    qc_status s = qc_gptq_quantize(scratch, st->xtx, rows, cols, spec, &o->gptq, res, info, e);
    for (int i = 0; i < cols; i++) st->xtx[(size_t)i * cols + i] = diag[i];
    free(diag);
    return s;
}

/* Solves one linear of block b from its input statistics and replaces its weights by the
 * dequantized result. */
static qc_status solve(runner *r, qc_block *b, int layer, qc_linear lin, qc_stats *st,
                       qc_qweight *res, qc_layer_report *rep, qc_err *e) {
    const qc_calib_opts *o = r->o;
    int rows, cols;
    qc_weight_shape(r->cfg, qc_linear_weight(lin), &rows, &cols);
    size_t nw = (size_t)rows * cols;
    double t0 = qc_now();
    *rep = (qc_layer_report){ .block = layer, .linear = lin, .rows = rows, .cols = cols };
    for (int i = 0; i < cols; i++) rep->dead += st->xtx[(size_t)i * cols + i] == 0.0f;
    float *w = qc_malloc(nw, sizeof(float), e, "weights");
    if (!w) return QC_ERR_NOMEM;
    if (o->no_quant) { /* smoothing only: the linear stays as it is */
        rep->kept_f16 = true;
        free(w);
        rep->seconds = qc_now() - t0;
        return QC_OK;
    }
    if (qc_calib_keeps(o, layer, lin)) { /* no solver: the weights a file storing F16 holds */
        for (size_t i = 0; i < nw; i++) w[i] = qc_f16_to_f32(qc_f32_to_f16(b->w[lin][i]));
        rep->kept_f16 = true;
        qc_status s = output_error(b->w[lin], w, rows, cols, st->xtx, rep, e);
        if (!s) memcpy(b->w[lin], w, nw * sizeof(float));
        free(w);
        rep->seconds = qc_now() - t0;
        return s;
    }
    qc_gptq_info info = { 0 };
    qc_status s = qc_calib_quantize_linear(o, qc_calib_spec(o, layer, lin), b->w[lin], rows, cols, st, w, res, &info, e);
    rep->loss = info.loss;
    rep->damp = info.damp;
    rep->retries = info.retries;
    rep->fallback = info.fallback;
    if (s) {
        free(w);
        return qc_fail_prefix(e, s, "block %d, %s", layer, qc_weight_short_name(qc_linear_weight(lin)));
    }
    qc_qweight_dequantize(res, w);
    s = output_error(b->w[lin], w, rows, cols, st->xtx, rep, e);
    if (!s) memcpy(b->w[lin], w, nw * sizeof(float));
    free(w);
    if (s) return qc_fail_prefix(e, s, "block %d, %s", layer, qc_weight_short_name(qc_linear_weight(lin)));
    rep->seconds = qc_now() - t0;
    return QC_OK;
}

/* What GPTQ had to do to factorize a linear's Hessian, said once its row is shared. */
static void log_damping(const qc_calib_opts *o, const qc_layer_report *rep) {
    const char *name = qc_weight_short_name(qc_linear_weight(rep->linear));
    if (rep->fallback)
        qc_logf(o->log, QC_LOG_WARN,
                "block %d %s: the Hessian could not be factorized even with damping %.3g; used round-to-nearest",
                rep->block, name, rep->damp);
    else if (rep->retries)
        qc_logf(o->log, QC_LOG_INFO, "block %d %s: Hessian factorized after raising the damping to %.3g", rep->block,
                name, rep->damp);
}

/* Another rank solved linear lin into res: the same weights into b as the owner put. */
static void put_shared(runner *r, qc_block *b, qc_linear lin, const qc_qweight *res, const qc_layer_report *rep) {
    int rows, cols;
    qc_weight_shape(r->cfg, qc_linear_weight(lin), &rows, &cols);
    size_t nw = (size_t)rows * cols;
    if (r->o->no_quant) return; /* smoothing only: the linear stays as it is */
    if (rep->kept_f16)
        for (size_t i = 0; i < nw; i++) b->w[lin][i] = qc_f16_to_f32(qc_f32_to_f16(b->w[lin][i]));
    else
        qc_qweight_dequantize(res, b->w[lin]);
}

/* Site s's statistics are finished: the observer (if any) sees them with the block as it is. */
static qc_status observe(runner *r, const qc_block *b, int layer, qc_site s, qc_stats *stats, qc_err *e) {
    qc_stats_finish(stats);
    qc_observation ob = { layer, s, stats, b, r->x, r->o->act_dtype, r->w->n, r->w->seqlen, r->per_chunk, r->ws };
    return r->o->observe ? r->o->observe(r->o->observe_ctx, &ob, e) : QC_OK;
}

/* Solves each linear of site s on its statistics and puts it into b, with its log row. With
 * ranks, each linear is solved by its owner and shared; only rank 0 keeps the results (it
 * writes the outputs). */
static qc_status solve_site(runner *r, qc_block *b, int layer, qc_site s, qc_stats *stats, const qc_prestep *pre,
                            qc_quantized *out, qc_err *e) {
    const qc_dist *d = r->o->dist;
    int owner[QC_LIN_COUNT], me = qc_dist_rank(d);
    qc_share_owners(r->cfg, s, qc_dist_size(d), r->load, owner);
    qc_layer_report rep[QC_LIN_COUNT];
    qc_status st = QC_OK;
    for (int lin = 0; lin < QC_LIN_COUNT && !st; lin++) {
        if (owner[lin] != me) continue;
        char detail[64];
        snprintf(detail, sizeof detail, "block %d/%d %s", layer + 1, r->cfg->n_layers,
                 qc_weight_short_name(qc_linear_weight(lin)));
        qc_progress(r->o->log, "quantize", (int64_t)out->nreports, (int64_t)r->cfg->n_layers * QC_LIN_COUNT, detail);
        double t0 = qc_now();
        st = solve(r, b, layer, lin, stats, &out->res[(size_t)layer * QC_LIN_COUNT + lin], &rep[lin], e);
        out->solve_seconds += qc_now() - t0;
    }
    st = qc_dist_agree(d, st, e);
    for (int lin = 0; lin < QC_LIN_COUNT && !st; lin++) {
        if (owner[lin] < 0) continue;
        qc_qweight *res = &out->res[(size_t)layer * QC_LIN_COUNT + lin];
        if (!(st = qc_share_result(d, owner[lin], res, &rep[lin], e))) {
            if (owner[lin] != me) put_shared(r, b, (qc_linear)lin, res, &rep[lin]);
            if (me != 0) qc_qweight_free(res);
            qc_prestep_report(pre, (qc_linear)lin, &rep[lin]);
            out->reports[out->nreports++] = rep[lin];
            log_damping(r->o, &rep[lin]);
        }
    }
    return st;
}

/* The kept route: each site's statistics from its stage, its linears solved; then, unless
 * the next block's inputs come from elsewhere (to_x false), the block's output into x. */
static qc_status run_stages(runner *r, qc_block *b, int layer, const qc_prestep *pre, bool to_x, qc_quantized *out,
                            qc_err *e) {
    qc_status st = QC_OK;
    for (int s = 0; s < QC_SITE_COUNT && !st; s++) {
        qc_stats stats = { 0 };
        st = qc_stats_init(&stats, qc_site_width(r->cfg, s), e);
        /* each weight is multiplied in one stage, after its solve: held over the chunks (not
         * over an observer, whose candidate weights take turns in the same buffers) */
        qc_workspace_hold_weights(r->ws, true);
        for (int w0 = 0; w0 < r->w->n && !st; w0 += r->per_chunk)
            st = stage(r, b, layer, (qc_site)s, w0, r->w->n - w0 < r->per_chunk ? r->w->n - w0 : r->per_chunk, &stats, e);
        qc_workspace_hold_weights(r->ws, false);
        st = qc_share_stats(r->o->dist, &stats, st, e);
        if (!st) st = qc_dist_agree(r->o->dist, observe(r, b, layer, (qc_site)s, &stats, e), e);
        if (!st) st = solve_site(r, b, layer, (qc_site)s, &stats, pre, out, e);
        out->stats_seconds += stats.seconds;
        qc_stats_free(&stats);
    }
    qc_workspace_hold_weights(r->ws, true);
    for (int w0 = 0; w0 < r->w->n && to_x && !st; w0 += r->per_chunk)
        st = stage_out(r, b, layer, w0, r->w->n - w0 < r->per_chunk ? r->w->n - w0 : r->per_chunk, e);
    qc_workspace_hold_weights(r->ws, false);
    return st;
}

/* The recomputing route: the subsets of sites [s0, s1) in order (one site each when
 * true-sequential, all four at once otherwise), each from a pass over the block with hooks;
 * then, unless the next block's inputs come from elsewhere (to_x false), the quantized pass. */
static qc_status run_passes(runner *r, qc_block *b, int layer, const qc_prestep *pre, bool to_x, qc_quantized *out,
                            qc_err *e) {
    qc_status st = QC_OK;
    for (int s0 = 0, s1; s0 < QC_SITE_COUNT && !st; s0 = s1) {
        s1 = r->o->true_sequential ? s0 + 1 : QC_SITE_COUNT;
        qc_stats stats[QC_SITE_COUNT] = { 0 };
        collect k = { { 0 }, (qc_site)(s1 - 1) };
        for (int s = s0; s < s1 && !st; s++) {
            st = qc_stats_init(&stats[s], qc_site_width(r->cfg, s), e);
            k.stats[s] = &stats[s];
        }
        qc_hooks hooks = { on_input, &k };
        if (!st) st = pass(r, NULL, b, layer, &hooks, e);
        for (int s = s0; s < s1; s++) st = qc_share_stats(r->o->dist, &stats[s], st, e);
        for (int s = s0; s < s1 && !st; s++) st = observe(r, b, layer, (qc_site)s, &stats[s], e);
        st = qc_dist_agree(r->o->dist, st, e);
        for (int s = s0; s < s1 && !st; s++) st = solve_site(r, b, layer, (qc_site)s, &stats[s], pre, out, e);
        for (int s = s0; s < s1; s++) out->stats_seconds += stats[s].seconds, qc_stats_free(&stats[s]);
    }
    return !st && to_x ? pass(r, NULL, b, layer, NULL, e) : st;
}

/* One block: the pre-step, the sites by either route, the next block's inputs. */
static qc_status run_block(runner *r, qc_model *m, int layer, qc_quantized *out, qc_err *e) {
    qc_block b;
    qc_status st = qc_model_load_block(m, layer, &b, e), agreed = qc_dist_agree(r->o->dist, st, e);
    if (agreed) {
        if (!st) qc_block_free(&b);
        return agreed;
    }
    /* the rescaling pre-step (SmoothQuant, AWQ), and the fp32 outputs when they propagate */
    qc_prestep pre = { 0 };
    float *x_fp32 = NULL;
    const qc_calib_opts *o = r->o;
    size_t ntok = (size_t)r->w->n * r->w->seqlen;
    if (o->propagate_fp32 && !(x_fp32 = qc_malloc(ntok, (size_t)r->cfg->dim * sizeof(float), e, "fp32 activations")))
        st = QC_ERR_NOMEM;
    st = qc_dist_agree(o->dist, st, e);
    if (!st && (x_fp32 || qc_calib_rescales(o)))
        st = qc_prestep_block(r->cfg, &b, layer, (float *)(void *)r->x, r->w, r->per_chunk, o, r->ws, x_fp32, &pre, e);
    if (!st && out->scales)
        for (int t = 0; t < QC_SCALE_STAGES; t++)
            for (int s = 0; s < QC_SITE_COUNT; s++)
                out->scales[((size_t)layer * QC_SCALE_STAGES + t) * QC_SITE_COUNT + s] = pre.s[t][s], pre.s[t][s] = NULL;
    /* the next block's inputs: the pre-step's fp32 outputs, or the quantized block's */
    if (!st) st = r->x1 ? run_stages(r, &b, layer, &pre, !x_fp32, out, e) : run_passes(r, &b, layer, &pre, !x_fp32, out, e);
    if (!st && x_fp32) memcpy(r->x, x_fp32, ntok * (size_t)r->cfg->dim * sizeof(float));
    free(x_fp32);
    qc_prestep_free(&pre);
    qc_block_free(&b);
    return st;
}

/* With a scratch file: block l's results go to it and leave memory. */
static qc_status spill_block(qc_quantized *out, int l, qc_err *e) {
    for (size_t i = (size_t)l * QC_LIN_COUNT; out->spill && i < (size_t)(l + 1) * QC_LIN_COUNT; i++) {
        if (!out->res[i].codes) continue; /* kept in fp16: nothing to hold */
        qc_status st = qc_spill_put(out->spill, i, &out->res[i], e);
        if (st) return st;
    }
    return QC_OK;
}

/* The checkpoints of a run (o->checkpoint, rank 0's): with ranks, the activations entering
 * the next block are gathered on rank 0 in window order (and a restored state scattered),
 * so a checkpoint holds every window, whatever number of ranks made it or resumes it. */
typedef struct checkpoints {
    const qc_calib_checkpoint *cp; /* rank 0's; NULL on the others */
    bool on;                       /* rank 0 checkpoints: every rank takes part */
    size_t mine;                   /* of this rank's windows' activations */
    size_t bytes;                  /* of every window's activations */
    void *all;                     /* rank 0: every window's activations; NULL: this rank's x is all */
} checkpoints;

static qc_status checkpoints_open(checkpoints *k, const runner *r, size_t xbytes, qc_status st, qc_err *e) {
    const qc_dist *d = r->o->dist;
    k->cp = r->o->checkpoint;
    k->mine = xbytes;
    k->bytes = xbytes / (size_t)r->w->n * (size_t)qc_windows_total(r->w);
    uint8_t on = k->cp != NULL;
    st = qc_dist_agree(d, st, e);
    if (!st) st = qc_dist_bcast(d, 0, &on, 1, e);
    k->on = on;
    if (!st && on && qc_dist_size(d) > 1 && qc_dist_rank(d) == 0 &&
        !(k->all = qc_malloc(k->bytes, 1, e, "every window's activations (for checkpoints)")))
        st = QC_ERR_NOMEM;
    return qc_dist_agree(d, st, e);
}

/* Fills out's blocks [0, *first) and x from rank 0's checkpoint (rank 0's results only). */
static qc_status checkpoints_restore(checkpoints *k, runner *r, qc_quantized *out, int *first, qc_err *e) {
    const qc_dist *d = r->o->dist;
    qc_status st = QC_OK;
    *first = 0;
    if (k->cp) st = k->cp->restore(k->cp->ctx, out, k->all ? k->all : r->x, k->bytes, first, e);
    int32_t f = *first;
    st = qc_dist_agree(d, st, e);
    if (!st) st = qc_dist_bcast(d, 0, &f, sizeof f, e);
    *first = f;
    if (!st && f > 0 && qc_dist_size(d) > 1) st = qc_dist_scatter(d, 0, k->all, r->x, k->mine, e);
    return st;
}

/* Block `layer` finished: its results and the next block's inputs to the checkpoint. */
static qc_status checkpoints_save(checkpoints *k, runner *r, int layer, const qc_quantized *out, qc_err *e) {
    if (!k->on) return QC_OK;
    const qc_dist *d = r->o->dist;
    qc_status st = qc_dist_size(d) > 1 ? qc_dist_gather(d, 0, r->x, k->mine, k->all, e) : QC_OK;
    if (!st && k->cp) st = k->cp->save(k->cp->ctx, layer, out, k->all ? k->all : r->x, k->bytes, e);
    return qc_dist_agree(d, st, e);
}

/* What this rank's collectives cost since `before`. */
static qc_dist_traffic traffic_since(const qc_dist *d, const qc_dist_traffic *before) {
    qc_dist_traffic now = qc_dist_traffic_of(d);
    return (qc_dist_traffic){ now.seconds - before->seconds, now.bytes_sent - before->bytes_sent,
                              now.bytes_recv - before->bytes_recv, now.calls - before->calls };
}

/* With ranks: every rank's time and traffic so far, to rank 0 (summary.json, the benchmark). */
static qc_status gather_figures(const qc_dist *d, qc_quantized *out, double t0, const qc_dist_traffic *before, qc_err *e) {
    if (qc_dist_size(d) == 1) return QC_OK;
    struct qc_rank_figures mine = { qc_now() - t0, out->stats_seconds, out->solve_seconds, traffic_since(d, before) };
    out->nranks = qc_dist_size(d);
    if (qc_dist_rank(d) == 0 && !(out->ranks = qc_calloc((size_t)out->nranks, sizeof mine, e, "rank figures")))
        return qc_dist_agree(d, QC_ERR_NOMEM, e);
    qc_status st = qc_dist_agree(d, QC_OK, e);
    return st ? st : qc_dist_gather(d, 0, &mine, sizeof mine, out->ranks, e);
}

/* Every spec the run uses is valid (AWQ's searches simulate each linear's own). */
static qc_status check_specs(const qc_config *c, const qc_calib_opts *o, qc_err *e) {
    qc_status st = qc_quant_spec_check(&o->spec, e);
    if (!st && o->embed.bits > 0 && (st = qc_quant_spec_check(&o->embed, e)))
        return qc_fail_prefix(e, st, "the token embedding");
    for (int l = 0; l < c->n_layers && o->modules && !st; l++)
        for (int lin = 0; lin < QC_LIN_COUNT && !st; lin++) {
            const qc_module_quant *mq = &o->modules[(size_t)l * QC_LIN_COUNT + lin];
            const char *name = qc_weight_short_name(qc_linear_weight(lin));
            if (mq->keep_f16) continue;
            if ((st = qc_quant_spec_check(&mq->spec, e))) return qc_fail_prefix(e, st, "block %d %s", l, name);
        }
    return st;
}

qc_status qc_calibrate(qc_model *m, const qc_windows *w, const qc_calib_opts *o, qc_quantized *out,
                       qc_err *e) {
    memset(out, 0, sizeof *out);
    const qc_config *c = &m->cfg;
    qc_status st = check_specs(c, o, e);
    if (st) return st;
    if (o->act_dtype != QC_DT_F32 && o->act_dtype != QC_DT_F16 && o->act_dtype != QC_DT_BF16)
        return qc_fail(e, QC_ERR_ARG, "calibration activations as %s: F32, F16 or BF16", qc_dtype_name(o->act_dtype));
    bool scaled = qc_calib_rescales(o);
    /* the pre-step searches and propagates on fp32 inputs of all windows at once */
    if (o->act_dtype != QC_DT_F32 && (scaled || o->propagate_fp32))
        return qc_fail(e, QC_ERR_ARG, "activations held as %s are for gptq and rtn only: AWQ and SmoothQuant work "
                       "on fp32 activations", qc_dtype_name(o->act_dtype));
    double t0 = qc_now();
    qc_dist_traffic t_before = qc_dist_traffic_of(o->dist);
    size_t nlin = (size_t)c->n_layers * QC_LIN_COUNT, ntok = (size_t)w->n * w->seqlen;
    runner r = { .cfg = c, .w = w, .o = o, .per_chunk = qc_calib_chunk_windows(o, w->n, w->seqlen) };
    out->n_layers = c->n_layers;
    out->ck = m->ck;
    out->res = qc_calloc(nlin, sizeof *out->res, e, "results");
    out->reports = out->res ? qc_calloc(nlin, sizeof *out->reports, e, "reports") : NULL;
    out->fp32_linears = o->no_quant;
    if (scaled && out->reports)
        out->scales = qc_calloc(nlin / QC_LIN_COUNT * QC_SCALE_STAGES * QC_SITE_COUNT, sizeof *out->scales, e, "scales");
    if (scaled && !out->scales) {
        free(out->res), free(out->reports);
        memset(out, 0, sizeof *out);
        return QC_ERR_NOMEM;
    }
    size_t xbytes = ntok * (size_t)c->dim * qc_dtype_size(o->act_dtype);
    st = !out->reports ? QC_ERR_NOMEM : o->spill_dir ? qc_spill_open(&out->spill, o->spill_dir, nlin, e) : QC_OK;
    r.x = st ? NULL : qc_malloc(xbytes, 1, e, "calibration activations");
    r.tmp = r.x ? qc_malloc((size_t)r.per_chunk * w->seqlen, (size_t)c->dim * sizeof(float), e, "activations") : NULL;
    r.ws = r.tmp ? qc_workspace_new(c, r.per_chunk * w->seqlen, w->seqlen, e) : NULL;
    if (r.ws && o->true_sequential && !o->recompute) { /* the kept stages */
        int mid = qc_site_width(c, QC_SITE_O) > c->hidden_dim ? qc_site_width(c, QC_SITE_O) : c->hidden_dim;
        r.x1 = o->act_dtype == QC_DT_F32 && !o->observe ? (float *)(void *)r.x
                                                        : qc_malloc(ntok, (size_t)c->dim * sizeof(float), e, "kept block activations");
        r.mid = r.x1 ? qc_malloc(ntok, (size_t)mid * sizeof(float), e, "kept block activations") : NULL;
        if (!r.mid) st = QC_ERR_NOMEM;
    }
    int first = 0; /* blocks before it were finished by an interrupted run */
    if (!st && !r.ws) st = QC_ERR_NOMEM;
    checkpoints k = { 0 };
    st = checkpoints_open(&k, &r, xbytes, st, e);
    if (!st) st = checkpoints_restore(&k, &r, out, &first, e);
    for (int l = 0; l < first && !st; l++) st = spill_block(out, l, e);
    if (!st && first == 0) st = pass(&r, m, NULL, 0, NULL, e); /* the embedding */
    st = qc_dist_agree(o->dist, st, e);
    for (int l = first; l < c->n_layers && !st; l++) {
        st = qc_dist_agree(o->dist, run_block(&r, m, l, out, e), e);
        /* the block's results go to the checkpoint before the scratch file takes them */
        if (!st) st = checkpoints_save(&k, &r, l, out, e);
        if (!st) st = qc_dist_agree(o->dist, spill_block(out, l, e), e);
    }
    free(k.all);
    if (!st && o->classifier.bits > 0) st = qc_calib_classifier(m, w, r.x, o, out, e);
    if (!st && o->embed.bits > 0) st = qc_calib_embedding(m, w, o, &out->embed, e);
    st = qc_dist_agree(o->dist, st, e);
    if (!st) st = gather_figures(o->dist, out, t0, &t_before, e);
    if (!st && out->spill) st = qc_spill_map(out->spill, out->res, e);
    if (!st) qc_progress(o->log, "quantize", (int64_t)nlin, (int64_t)nlin, NULL);
    if ((void *)r.x1 != (void *)r.x) free(r.x1);
    free(r.mid);
    free(r.x);
    free(r.tmp);
    qc_workspace_free(r.ws);
    out->seconds = qc_now() - t0;
    out->traffic = traffic_since(o->dist, &t_before);
    if (st) qc_quantized_free(out);
    return st;
}

bool qc_calib_rescales(const qc_calib_opts *o) {
    return o->smooth_alpha > 0.0f || o->method == QC_METHOD_AWQ || o->method == QC_METHOD_AWQ_GPTQ;
}

const qc_quant_spec *qc_calib_spec(const qc_calib_opts *o, int layer, qc_linear lin) {
    return o->modules ? &o->modules[(size_t)layer * QC_LIN_COUNT + lin].spec : &o->spec;
}

bool qc_calib_keeps(const qc_calib_opts *o, int layer, qc_linear lin) {
    return o->keep_f16[lin] || (o->modules && o->modules[(size_t)layer * QC_LIN_COUNT + lin].keep_f16);
}

int qc_calib_chunk_windows(const qc_calib_opts *o, int nwin, int seqlen) {
    int batch = o->batch_tokens > 0 ? o->batch_tokens : 2048;
    int per = batch / seqlen < 1 ? 1 : batch / seqlen;
    return per > nwin ? nwin : per;
}

void qc_quantized_free(qc_quantized *q) {
    if (!q) return;
    if (q->res && !qc_spill_mapped(q->spill)) /* else the arrays are the mapping's */
        for (size_t i = 0; i < (size_t)q->n_layers * QC_LIN_COUNT; i++) qc_qweight_free(&q->res[i]);
    qc_spill_close(q->spill);
    qc_qweight_free(&q->embed);
    qc_qweight_free(&q->classifier);
    free(q->res);
    free(q->reports);
    free(q->ranks);
    if (q->scales)
        for (size_t i = 0; i < (size_t)q->n_layers * QC_SCALE_STAGES * QC_SITE_COUNT; i++) free(q->scales[i]);
    free(q->scales);
    memset(q, 0, sizeof *q);
}

/* ---- the quantized model as a weight source ---- */

static const qc_qweight *quantized_weight(void *ctx, qc_weight w, int layer);

static qc_status read_quantized(void *ctx, qc_weight w, int layer, float *out, qc_err *e) {
    const qc_quantized *q = ctx;
    const qc_qweight *qw = quantized_weight(ctx, w, layer);
    if (qw) {
        qc_qweight_dequantize(qw, out);
        return QC_OK;
    }
    qc_status st = qc_checkpoint_read(q->ck, w, layer, out, e);
    int rows, cols;
    const qc_config *cfg = qc_checkpoint_config(q->ck);
    qc_weight_shape(cfg, w, &rows, &cols);
    for (int t = 0; !st && q->scales && !qc_weight_is_global(w) && t < QC_SCALE_STAGES; t++) /* as rescaled */
        qc_weight_scale(cfg, w, (const float *const *)q->scales + ((size_t)layer * QC_SCALE_STAGES + t) * QC_SITE_COUNT, out);
    for (int lin = 0; !st && !q->fp32_linears && lin < QC_LIN_COUNT; lin++) /* a kept linear: as solved, fp16-rounded */
        if (qc_linear_weight(lin) == w)
            for (size_t i = 0; i < (size_t)rows * cols; i++) out[i] = qc_f16_to_f32(qc_f32_to_f16(out[i]));
    return st;
}

static const qc_qweight *quantized_weight(void *ctx, qc_weight w, int layer) {
    const qc_quantized *q = ctx;
    if (w == QC_W_EMBED) return q->embed.codes ? &q->embed : NULL;
    if (w == QC_W_CLASSIFIER) return q->classifier.codes ? &q->classifier : NULL;
    for (int lin = 0; lin < QC_LIN_COUNT; lin++) {
        const qc_qweight *r = &q->res[(size_t)layer * QC_LIN_COUNT + lin];
        if (qc_linear_weight(lin) != w) continue;
        if (!r->codes) return NULL; /* kept as fp16 */
        qc_spill_touch(q->spill, r);
        return r;
    }
    return NULL;
}

qc_weight_source qc_quantized_source(const qc_quantized *q) {
    return (qc_weight_source){ qc_checkpoint_config(q->ck), read_quantized, quantized_weight, (void *)q };
}
