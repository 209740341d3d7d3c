/* run.c — a quantize job run, in order: the model opened (its FFN padded when the format's
 * groups must tile its rows), the tokenizer found, everything the format's writer would refuse
 * checked before calibrating, the calibration windows drawn, each --eval text checked, the
 * run's description and fingerprint made, the memory plan checked against the budget, OUT.work
 * held (and checkpointed into), the measuring or first pass of --target-bpw / --observe, the
 * calibration, the folder written under a temporary name, the bits per weight counted, the
 * evaluations (input, written file, --verify's in-memory linears, --observe's first pass),
 * summary.json, and the rename into place. */
#include "job/internal.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* The resume folder's hooks, then the caller's checkpointed callback. */
static qc_status ckpt_restore(void *ctx, qc_quantized *out, void *x, size_t nbytes, int *first, qc_err *e) {
    const qc_job *j = ctx;
    return j->inner->restore(j->inner->ctx, out, x, nbytes, first, e);
}

static qc_status ckpt_save(void *ctx, int layer, const qc_quantized *out, const void *x, size_t nbytes, qc_err *e) {
    const qc_job *j = ctx;
    qc_status st = j->inner->save(j->inner->ctx, layer, out, x, nbytes, e);
    if (!st && j->hooks->checkpointed) j->hooks->checkpointed(j->hooks->ctx, layer);
    return st;
}

static void make_plan(qc_job *j, const qc_model *m, const qc_windows *w) {
    qc_mem_plan_make(m->ck, w->n, w->seqlen, &j->o, j->s.target_bpw > 0 ? qc_job_mixed_candidates(j, NULL) : 0,
                     qc_get_threads(), &j->plan);
    qc_mem_plan_count_text(&j->plan, j->text_read, j->text_bound);
}

/* The memory plan, logged; when the budget does not hold the block activations kept between
 * true-sequential sites, they are recomputed instead (o.recompute); a plan beyond the budget
 * even then is refused before anything is computed. */
static qc_status check_plan(qc_job *j, const qc_model *m, const qc_windows *w, qc_err *e) {
    uint64_t limit = j->s.memory_limit;
    make_plan(j, m, w);
    if (limit && (uint64_t)j->plan.peak > limit && j->plan.intermediates && !j->plan.recomputed) {
        j->o.recompute = true;
        make_plan(j, m, w);
    }
    char text[1024];
    qc_mem_plan_describe(&j->plan, &j->o, text, sizeof text);
    qc_logf(j->log, QC_LOG_INFO, "%s", text);
    if (!limit) return QC_OK; /* nothing to check against */
    if ((uint64_t)j->plan.peak <= limit) return QC_OK;
    return qc_fail(e, QC_ERR_NOMEM,
                   "the memory plan needs %.0f MB but %s allows %.0f MB; %s. Fewer --nsamples or a shorter --seqlen, "
                   "--act-dtype f16, or a larger --max-memory",
                   (double)j->plan.peak / (1 << 20), j->s.memory_limit_from ? j->s.memory_limit_from : "the limit",
                   (double)limit / (1 << 20), text);
}

/* The model opened for the format: its FFN padded with zeros so the format's groups tile every
 * row, or with the format's optional padding declined, the linears that cannot be blocked kept. */
static qc_status open_model(qc_job *j, qc_model **m, qc_err *e) {
    qc_status st = qc_model_open(m, j->s.model, e);
    if (st || !j->fmt->pad) return st;
    int before = (*m)->cfg.hidden_dim, multiple = j->fmt->pad(&j->o.spec);
    if (j->fmt->pad_optional && j->s.gguf_no_pad) {
        for (int lin = 0; lin < QC_LIN_COUNT; lin++) {
            int nrows, cols;
            qc_weight_shape(&(*m)->cfg, qc_linear_weight(lin), &nrows, &cols);
            j->o.keep_f16[lin] = cols % multiple != 0;
            if (j->o.keep_f16[lin])
                qc_logf(j->log, QC_LOG_WARN, "%s rows of %d are not whole %d-blocks: kept as F16 (--gguf-no-pad)",
                        qc_weight_short_name(qc_linear_weight(lin)), cols, multiple);
        }
    } else if (!(st = qc_model_pad_ffn(*m, multiple, e)) && (*m)->cfg.hidden_dim != before) {
        qc_logf(j->log, QC_LOG_INFO, "FFN width %d padded with zeros to %d (an exact change) so groups of %d tile every row",
                before, (*m)->cfg.hidden_dim, multiple);
    }
    return st;
}

/* The tokenizer: needed to read text or to write a file carrying the vocabulary; else
 * (--calib-tokens alone) taken when one is found, for the folder to carry. */
static qc_status find_tokenizer(qc_job *j, const qc_model *m, qc_tokenizer *tok, bool *have, qc_err *e) {
    const qc_job_settings *s = &j->s;
    *have = s->ncalib || s->nevals || s->tokenizer || j->fmt->carries_vocab;
    if (*have) return qc_checkpoint_require_tokenizer(s->tokenizer, m->ck, tok, e);
    qc_status st = qc_checkpoint_find_tokenizer(NULL, m->ck, tok, have, e);
    if (!st && !*have) qc_logf(j->log, QC_LOG_WARN, "%s: the output folder will carry no vocabulary", e->msg);
    return st;
}

/* The calibration windows: given (.npy, checked against the vocabulary) or drawn from the texts
 * within the text bound the memory budget leaves. */
static qc_status draw_windows(qc_job *j, const qc_model *m, const qc_tokenizer *tok, qc_windows *w, qc_err *e) {
    const qc_job_settings *s = &j->s;
    int sl = s->seqlen ? (int)s->seqlen : qc_config_default_seqlen(&m->cfg);
    j->text_bound = qc_mem_plan_text_bound(s->memory_limit, qc_get_threads());
    if (!s->calib_tokens)
        return qc_windows_draw_within(tok, s->calib, s->ncalib, (int)s->nsamples, sl, (uint64_t)s->seed, j->text_bound,
                                      &j->text_read, w, e);
    qc_status st = qc_windows_load_npy(s->calib_tokens, w, e);
    return st ? st : qc_windows_check_vocab(w, m->cfg.vocab_size, s->calib_tokens, e);
}

/* --observe's first pass, and its worst linears given 8 bits. */
static qc_status observe_pass(qc_job *j, qc_model *m, const qc_windows *w, qc_quantized *q1, qc_err *e) {
    qc_quant_spec up;
    qc_status st = qc_calibrate(m, w, &j->o, q1, e);
    if (!st) st = qc_job_observe_spec(j, &up, e);
    if (!st) j->observed = qc_observe_upgrade(q1, (int)j->s.observe, &up, qc_job_fused_groups(j), j->mods);
    if (!st)
        qc_logf(j->log, QC_LOG_INFO, "--observe: %d linears of the largest output error requantized at 8 bits%s",
                j->observed, qc_job_fused_groups(j) ? ", each with the linears vLLM fuses it with" : "");
    return st;
}

/* The written folder (d->tmp) opened with the linears of q in place of the written ones. */
static qc_status open_with(const qc_outdir *d, const qc_quantized *q, qc_weight_source *src, qc_model **m, qc_err *e) {
    *src = qc_quantized_source(q);
    qc_status st = qc_model_open(m, d->tmp, e);
    if (!st) qc_model_set_linears(*m, src);
    return st;
}

/* Each --eval text on the input model and the written one (and --verify's, --observe's). */
static qc_status evaluate(qc_job *j, qc_model *m, const qc_tokenizer *tok, const qc_outdir *d, const qc_quantized *q,
                          const qc_quantized *q1, int sl, qc_err *e) {
    const qc_job_settings *s = &j->s;
    qc_model *qm = NULL, *mm = NULL, *m1 = NULL;
    qc_weight_source qsrc = { 0 }, qsrc1 = { 0 };
    qc_status st = s->nevals ? qc_model_open(&qm, d->tmp, e) : QC_OK; /* the model as written */
    if (!st && s->verify) st = open_with(d, q, &qsrc, &mm, e); /* the solver's linears, from memory */
    if (!st && s->observe && s->nevals) st = open_with(d, q1, &qsrc1, &m1, e); /* the first pass's */
    for (int i = 0; i < s->nevals && !st; i++) {
        qc_job_eval *r = &j->evals[i];
        r->text = s->evals[i];
        st = qc_job_eval_text(m, tok, r->text, sl, 0, &r->fp32, j->log, e);
        if (!st) st = qc_job_eval_text(qm, tok, r->text, sl, j->act_bits, &r->quant, j->log, e);
        if (!st && mm) st = qc_job_eval_text(mm, tok, r->text, sl, j->act_bits, &r->memory, j->log, e);
        if (!st && m1) st = qc_job_eval_text(m1, tok, r->text, sl, j->act_bits, &r->first, j->log, e);
        if (!st && mm && r->memory.nll != r->quant.nll)
            st = qc_fail(e, QC_ERR_NUMERIC, "--verify: on %s the written model's mean NLL %.17g differs from the in-memory "
                         "model's %.17g", r->text, r->quant.nll, r->memory.nll);
    }
    qc_model_free(qm);
    qc_model_free(mm);
    qc_model_free(m1);
    return st;
}

/* What print and the caller read of a finished run. */
static void summarize(qc_job *j, const qc_quantized *q) {
    qc_job_summary *s = &j->summary;
    double sum = 0;
    int fb = 0;
    for (int i = 0; i < q->nreports; i++) sum += q->reports[i].rel_err, fb += q->reports[i].fallback;
    *s = (qc_job_summary){ .json = j->json, .format = j->fmt, .opts = &j->o, .n_layers = q->n_layers,
                           .modules = q->nreports, .fallbacks = fb, .mean_rel_err = q->nreports ? sum / q->nreports : 0,
                           .seconds = q->seconds, .target_bpw = j->s.target_bpw, .mixed_bpw = j->mixed.bpw,
                           .observe = (int)j->s.observe, .observed = j->observed, .file_bpw = j->file_bpw,
                           .evals = j->evals, .nevals = j->s.nevals };
}

qc_status qc_job_run(qc_job *j, const qc_job_hooks *h, qc_err *e) {
    static const qc_job_hooks none = { 0 };
    const qc_job_settings *s = &j->s;
    qc_calib_opts *o = &j->o;
    j->hooks = h ? h : &none;
    j->log = o->log = j->hooks->log;
    const qc_dist *dist = o->dist = j->hooks->dist;
    bool root = qc_dist_rank(dist) == 0; /* writes the outputs */
    j->usage = false;
    j->desc.threads = qc_get_threads();
    j->desc.compute = qc_get_compute();
    j->desc.matmul_isa = qc_matmul_isa();
    qc_logf(j->log, QC_LOG_INFO, "output format %s: %s", j->fmt->name, j->chosen.reason);
    qc_model *m = NULL;
    qc_quantized q = { 0 }, q1 = { 0 }; /* q1: --observe's first pass */
    qc_tokenizer tok = { 0 };
    qc_windows w = { 0 };
    qc_outdir d = { 0 };
    bool have_tok = false, usage = false; /* what the recipe or format cannot hold is the settings' fault, found before calibrating */
    qc_status st = QC_OK;
    if (!(j->evals = qc_calloc((size_t)s->nevals + 1, sizeof *j->evals, e, "evaluations"))) return QC_ERR_NOMEM;
    st = open_model(j, &m, e);
    if (!st) st = find_tokenizer(j, m, &tok, &have_tok, e);
    if (!st) usage = (st = qc_job_resolve_modules(j, m, e)) == QC_ERR_ARG;
    if (!st) {
        qc_gguf_export_opts go = { QC_GGUF_F16, j->gguf_embed, j->gguf_output, have_tok ? &tok : NULL, s->model, 0 };
        qc_format_run fr = { j->fmt->format, &m->cfg, s->model, m->ck, o, &go };
        usage = (st = qc_format_check_run(&fr, e)) != QC_OK;
    }
    if (!st && have_tok && (!j->fmt->carries_vocab || tok.hf)) /* the tokenizer the folder will carry */
        usage = (st = qc_tokenizer_check_write(&tok, qc_job_tokenizer_json(j, m->ck), e)) != QC_OK;
    qc_quant_spec cands[12];
    if (!st && s->target_bpw > 0) /* the cheapest candidates against the budget, before measuring them */
        usage = (st = qc_mixed_check_budget(&m->cfg, cands, qc_job_mixed_candidates(j, cands), s->target_bpw,
                                            qc_job_fused_groups(j), j->mods, e)) != QC_OK;
    if (!st) st = draw_windows(j, m, &tok, &w, e);
    if (!st)
        qc_logf(j->log, QC_LOG_INFO, "calibrating %s on %d windows of %d tokens; %s w%d, groupsize %d%s", s->model, w.n,
                w.seqlen, qc_method_name(o->method), o->spec.bits, o->spec.groupsize > 0 ? o->spec.groupsize : -1,
                o->spec.sym ? ", symmetric" : "");
    int sl_eval = s->eval_seqlen ? (int)s->eval_seqlen : w.seqlen;
    for (int i = 0; i < s->nevals && !st; i++) /* each --eval text fills a window: checked now, evaluated at the end */
        st = qc_job_eval_windows(&tok, s->evals[i], sl_eval, &usage, e);
    j->desc.model = m, j->desc.windows = &w;
    j->json = st ? NULL : qc_run_desc_json(&j->desc);
    char *fingerprint = j->json ? qc_run_desc_fingerprint(j->json) : NULL;
    if (!st && !fingerprint) st = qc_fail(e, QC_ERR_NOMEM, "out of memory");
    /* ranks: every one opened the same inputs with the same options, then takes its share */
    st = qc_dist_agree(dist, st, e);
    if (!st) st = qc_dist_check_same(dist, fingerprint, "this rank's run (settings and inputs)", e);
    if (!st) usage = (st = qc_dist_agree(dist, qc_windows_take_share(&w, qc_dist_rank(dist), qc_dist_size(dist), e), e)) != QC_OK;
    j->windows_mine = w.n;
    if (!st && qc_dist_size(dist) > 1)
        qc_logf(j->log, QC_LOG_INFO, "%d ranks, each calibrating %d or %d of the %d windows", qc_dist_size(dist),
                qc_windows_total(&w) / qc_dist_size(dist), (qc_windows_total(&w) + qc_dist_size(dist) - 1) / qc_dist_size(dist),
                qc_windows_total(&w));
    /* results wait in a scratch file (unlinked at once) beside the output, not in memory */
    char *spill_dir = qc_path_dirname(s->out);
    if (!st && !spill_dir) st = qc_fail(e, QC_ERR_NOMEM, "out of memory");
    o->spill_dir = root ? spill_dir : NULL; /* the other ranks keep no results */
    /* a plan beyond the budget is refused before OUT.work is made or discarded */
    if (!st) usage = (st = check_plan(j, m, &w, e)) != QC_OK; /* each rank's own */
    st = qc_dist_agree(dist, st, e);
    qc_resume *rs = NULL;
    bool two_pass = s->target_bpw > 0 || s->observe; /* checkpoints cover single passes */
    if (!st && root && s->restart) st = qc_resume_discard(s->out, e);
    /* every run holds OUT.work (the lock on OUT); single passes of gptq and rtn checkpoint in it */
    if (!st && root && !(st = qc_resume_open(&rs, s->out, m, o, fingerprint, s->resume, e)) && !two_pass &&
        !qc_calib_rescales(o)) {
        j->inner = qc_resume_checkpoint(rs);
        j->ckpt = (qc_calib_checkpoint){ ckpt_restore, ckpt_save, j };
        o->checkpoint = &j->ckpt;
    }
    st = qc_dist_agree(dist, st, e);
    free(fingerprint);
    if (!st && s->target_bpw > 0) st = qc_job_choose_mixed(j, m, &w, e);
    if (!st && s->observe) st = observe_pass(j, m, &w, &q1, e);
    int split = !st && j->mods && j->fmt->fused ? qc_job_split_sites(j, &m->cfg) : 0;
    if (split)
        qc_logf(j->log, QC_LOG_WARN, "%s gives %d group%s of q, k, v or gate, up of one block different settings: "
                "GPTQModel loads the file, vLLM (which runs each group as one layer) does not",
                s->per_linear ? "--per-linear" : "the recipe", split, split == 1 ? "" : "s");
    if (!st) st = qc_calibrate(m, &w, o, &q, e);
    if (!root) goto done; /* rank 0 writes */
    if (!st) st = qc_outdir_open(&d, s->out, s->force, e);
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j->json, "model"));
    double t_write = qc_now();
    if (!st) st = qc_job_write_outputs(j, &d, m, &q, name, have_tok ? &tok : NULL, e);
    j->write_seconds = qc_now() - t_write;
    if (!st && j->fmt->bpw) st = j->fmt->bpw(&d, &m->cfg, j->mods, &j->file_bpw, &j->file_bpw_index, e);
    if (!st) st = evaluate(j, m, &tok, &d, &q, &q1, sl_eval, e);
    if (!st) {
        qc_job_summary_json(j, j->json, &q);
        st = qc_job_write_json(&d, "summary.json", j->json, e);
    }
    if (!st) st = qc_outdir_commit(&d, e);
    else qc_outdir_abort(&d);
done:
    st = qc_dist_agree(dist, st, e); /* the other ranks wait for rank 0's outputs, and learn how they went */
    qc_resume_close(rs, !st, e);
    o->checkpoint = NULL;
    if (!st) summarize(j, &q);
    j->usage = st && usage;
    qc_quantized_free(&q);
    qc_quantized_free(&q1);
    qc_windows_free(&w);
    qc_tokenizer_free(&tok);
    qc_model_free(m);
    free(spill_dir);
    o->spill_dir = NULL;
    return st;
}

bool qc_job_usage(const qc_job *j) { return j->usage; }

const qc_job_summary *qc_job_summary_of(const qc_job *j) { return &j->summary; }

void qc_job_free(qc_job *j) {
    if (!j) return;
    cJSON_Delete(j->json);
    free(j->evals);
    free(j->mods);
    cJSON_Delete(j->gguf_fallbacks);
    free(j->mixed_csv);
    free(j->recipe_text);
    qc_recipe_free(&j->recipe);
    free(j);
}
