/* modules.c — per-linear settings of a job: the recipe's rules checked against the model and
 * the format, a GGUF K-quant mix's per-tensor types under them, the candidate settings of --target-bpw the format can store, the measuring pass
 * and the choice (with its table, mixed_precision.csv), and whether the choices keep the
 * linears a runtime fuses alike. */
#include "job/internal.h"

#include <stdio.h>
#include <stdlib.h>

qc_status qc_job_resolve_modules(qc_job *j, const qc_model *m, qc_err *e) {
    if (!j->recipe.nrules && !(j->s.target_bpw > 0) && !j->s.observe && !j->gguf_mix) return QC_OK;
    size_t n = (size_t)m->cfg.n_layers * QC_LIN_COUNT;
    free(j->mods);
    if (!(j->mods = qc_calloc(n, sizeof *j->mods, e, "module settings"))) return QC_ERR_NOMEM;
    qc_status st = qc_recipe_modules(&j->recipe, &m->cfg, &j->o.spec, qc_job_module_spec, j, j->mods, e);
    for (size_t i = 0; i < n && !st; i++)
        if (j->mods[i].keep_f16 && !j->fmt->keeps_f16)
            st = qc_fail(e, QC_ERR_ARG, "--format %s cannot hold unquantized linears: the recipe's skip list needs --format "
                         "gptq, gguf or fake", j->fmt->name);
    if (!st) st = qc_job_gguf_mix(j, &m->cfg, e);
    j->o.modules = j->mods;
    return st;
}

/* 3, 4, 8 bits × groups of 32, 128 (the run's symmetry, else the other one: GGUF's 8-bit
 * blocks are symmetric only); with a GGUF K-quant mix, Q3_K, Q4_K, Q5_K and Q6_K. */
int qc_job_mixed_candidates(const qc_job *j, qc_quant_spec *c) {
    static const int bits[] = { 3, 4, 8 }, gs[] = { 32, 128 }, kbits[] = { 3, 4, 5, 6 };
    int n = 0;
    if (j->gguf_mix) {
        for (int b = 0; b < 4; b++) {
            qc_err ignored;
            qc_quant_spec s;
            if (!j->fmt->module_spec(j, kbits[b], 0, false, &s, &ignored)) {
                if (c) c[n] = s;
                n++;
            }
        }
        return n;
    }
    for (int b = 0; b < 3; b++)
        for (int g = 0; g < 2; g++)
            for (int flip = 0; flip < 2; flip++) {
                qc_err ignored;
                qc_quant_spec s;
                if (!j->fmt->module_spec(j, bits[b], gs[g], flip ? !j->base_spec.sym : j->base_spec.sym, &s, &ignored)) {
                    if (c) c[n] = s;
                    n++;
                    break;
                }
            }
    return n;
}

bool qc_job_fused_groups(const qc_job *j) { return j->fmt->fused && !j->s.per_linear; }

/* The sites (q, k, v; gate, up) of all blocks whose linears do not share one setting. */
int qc_job_split_sites(const qc_job *j, const qc_config *c) {
    int n = 0;
    for (int l = 0; l < c->n_layers; l++)
        for (int s = 0; s < QC_SITE_COUNT; s++) {
            const qc_module_quant *first = NULL;
            bool split = false;
            for (int lin = 0; lin < QC_LIN_COUNT; lin++) {
                const qc_module_quant *mq = &j->mods[(size_t)l * QC_LIN_COUNT + lin];
                if ((int)qc_linear_site(lin) != s) continue;
                if (!first) first = mq;
                else split |= mq->keep_f16 != first->keep_f16 || (!mq->keep_f16 && !qc_quant_spec_same(&mq->spec, &first->spec));
            }
            n += split;
        }
    return n;
}

void qc_spec_name(const qc_quant_spec *s, char *buf, size_t size) {
    if (s->kquant) snprintf(buf, size, "q%d_k", s->bits);
    else if (s->groupsize > 0) snprintf(buf, size, "w%dg%d", s->bits, s->groupsize);
    else snprintf(buf, size, "w%d", s->bits);
}

char *qc_job_mixed_table(const qc_config *c, const qc_module_quant *mods, const qc_quant_spec *cands, int nc,
                         const double *err) {
    char *text = NULL, name[128], sn[32];
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return NULL;
    fprintf(f, "block,module,name,rows,cols,chosen");
    for (int j = 0; j < nc; j++) qc_spec_name(&cands[j], sn, sizeof sn), fprintf(f, ",%s_kl,%s_bits", sn, sn);
    fprintf(f, "\n");
    for (int l = 0; l < c->n_layers; l++)
        for (int lin = 0; lin < QC_LIN_COUNT; lin++) {
            const qc_module_quant *mq = &mods[(size_t)l * QC_LIN_COUNT + lin];
            int rows, cols;
            qc_weight short_w = qc_linear_weight(lin);
            qc_weight_shape(c, short_w, &rows, &cols);
            qc_weight_hf_name(short_w, l, name, sizeof name);
            if (mq->keep_f16) snprintf(sn, sizeof sn, "f16");
            else qc_spec_name(&mq->spec, sn, sizeof sn);
            fprintf(f, "%d,%s,%s,%d,%d,%s", l, qc_weight_short_name(short_w), name, rows, cols, sn);
            for (int j = 0; j < nc; j++)
                fprintf(f, ",%.9g,%.0f", err[((size_t)l * QC_LIN_COUNT + lin) * nc + j],
                        qc_spec_storage_bits(&cands[j], rows, cols));
            fprintf(f, "\n");
        }
    return fclose(f) == 0 ? text : (free(text), NULL);
}

qc_status qc_job_choose_mixed(qc_job *j, qc_model *m, const qc_windows *w, qc_err *e) {
    qc_quant_spec cands[12];
    int nc = qc_job_mixed_candidates(j, cands);
    if (!nc) return qc_fail(e, QC_ERR_ARG, "--target-bpw: the output format stores none of the candidate settings");
    double *err = qc_malloc((size_t)m->cfg.n_layers * QC_LIN_COUNT * nc, sizeof(double), e, "measured errors");
    if (!err) return QC_ERR_NOMEM;
    qc_logf(j->log, QC_LOG_INFO, "mixed precision: measuring every linear at %d candidate settings", nc);
    qc_status st = qc_mixed_measure(m, w, &j->o, cands, nc, err, e);
    if (!st)
        st = qc_mixed_choose(&m->cfg, cands, nc, err, j->s.target_bpw, qc_job_fused_groups(j), j->mods, &j->mixed, e);
    if (!st && !(j->mixed_csv = qc_job_mixed_table(&m->cfg, j->mods, cands, nc, err)))
        st = qc_fail(e, QC_ERR_NOMEM, "out of memory");
    for (int c = 0; c < nc && !st; c++) {
        int count = 0;
        for (size_t i = 0; i < (size_t)m->cfg.n_layers * QC_LIN_COUNT; i++)
            count += !j->mods[i].keep_f16 && qc_quant_spec_same(&j->mods[i].spec, &cands[c]);
        char sn[32];
        qc_spec_name(&cands[c], sn, sizeof sn);
        if (count) qc_logf(j->log, QC_LOG_INFO, "mixed precision: %d linears at %s", count, sn);
    }
    if (!st)
        qc_logf(j->log, QC_LOG_INFO, "mixed precision: estimated %.4f bits per weight (target %g), summed KL divergence "
                "%.6g nats per token", j->mixed.bpw, j->s.target_bpw, j->mixed.est_err);
    free(err);
    return st;
}
