/* outputs.c — what a job writes into its output folder besides calibrating: the model files
 * (the format row's writer), the tokenizer as the folder's readers take it, the quant logs,
 * recipe.json, mixed_precision.csv, and summary.json's results after the run's description. */
#include "job/internal.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* A text file in the folder being built, ending with a newline. */
static qc_status write_text(const qc_outdir *d, const char *name, const char *text, qc_err *e) {
    char *path = qc_outdir_file(d, name);
    qc_outfile f;
    qc_status st = path ? qc_out_open(&f, path, e) : qc_fail(e, QC_ERR_NOMEM, "out of memory");
    if (!st) st = qc_out_printf(&f, e, "%s%s", text, *text && text[strlen(text) - 1] == '\n' ? "" : "\n");
    if (!st) st = qc_out_commit(&f, e);
    free(path);
    return st;
}

qc_status qc_job_write_json(const qc_outdir *d, const char *name, cJSON *j, qc_err *e) {
    char *text = cJSON_Print(j);
    qc_status st = text ? write_text(d, name, text, e) : qc_fail(e, QC_ERR_NOMEM, "out of memory");
    free(text);
    return st;
}

qc_status qc_job_write_outputs(qc_job *j, const qc_outdir *d, qc_model *m, const qc_quantized *q, const char *name,
                               const qc_tokenizer *tok, qc_err *e) {
    qc_weight_source src = qc_quantized_source(q);
    qc_format_write w = { j, &src, d, m->ck, tok, name, j->log };
    qc_status st = j->fmt->write(&w, e);
    /* a file carrying its vocabulary (GGUF) is read back by qcalib only in llama2.c's layout
     * (scores, byte tokens at 3..258): a tokenizer.json (normalizer, BPE merges) also comes
     * beside it; Hugging Face-style folders get tokenizer.json */
    if (!st && tok && (!j->fmt->carries_vocab || tok->hf))
        st = qc_tokenizer_write_into(tok, d, qc_job_tokenizer_json(j, m->ck), e);
    char *csv = qc_outdir_file(d, "quant_log.csv"), *jl = qc_outdir_file(d, "quant_log.jsonl");
    if (!st) st = qc_quantized_write_log(q, &j->o, csv, jl, e);
    free(csv);
    free(jl);
    if (!st) st = write_text(d, "recipe.json", j->recipe_text, e);
    if (!st && j->mixed_csv) st = write_text(d, "mixed_precision.csv", j->mixed_csv, e);
    return st;
}

void qc_job_summary_json(qc_job *j, cJSON *s, const qc_quantized *q) {
    const qc_mem_plan *plan = &j->plan;
    double sum = 0, max = 0;
    int fallbacks = 0, retried = 0;
    for (int i = 0; i < q->nreports; i++) {
        sum += q->reports[i].rel_err;
        max = q->reports[i].rel_err > max ? q->reports[i].rel_err : max;
        fallbacks += q->reports[i].fallback;
        retried += q->reports[i].retries > 0;
    }
    cJSON_AddNumberToObject(s, "modules", q->nreports);
    cJSON_AddNumberToObject(s, "mean_rel_err", q->nreports ? sum / q->nreports : 0);
    cJSON_AddNumberToObject(s, "max_rel_err", max);
    cJSON_AddNumberToObject(s, "damping_raised", retried);
    cJSON_AddNumberToObject(s, "fallbacks", fallbacks);
    if (j->gguf_fallbacks) /* tensors given llama.cpp's fallback type (a K-quant mix) */
        cJSON_AddItemToObject(s, "gguf_fallbacks", cJSON_Duplicate(j->gguf_fallbacks, true));
    cJSON_AddNumberToObject(s, "seconds", q->seconds);
    double solve = q->solve_seconds;
    /* calibration's parts (the forward passes and the rest of the runner, statistics, solves), then
     * writing; every timing key ends in "seconds" */
    cJSON_AddNumberToObject(s, "forward_seconds", q->seconds - q->stats_seconds - solve - q->traffic.seconds);
    cJSON_AddNumberToObject(s, "statistics_seconds", q->stats_seconds);
    cJSON_AddNumberToObject(s, "solve_seconds", solve);
    cJSON_AddNumberToObject(s, "write_seconds", j->write_seconds);
    const qc_dist *d = j->o.dist;
    if (qc_dist_size(d) > 1) { /* rank 0's view of a distributed run (docs/distributed.md) */
        cJSON *dj = cJSON_AddObjectToObject(s, "distributed");
        cJSON_AddNumberToObject(dj, "ranks", qc_dist_size(d));
        cJSON_AddNumberToObject(dj, "rank0_windows", j->windows_mine);
        cJSON_AddNumberToObject(dj, "communication_seconds", q->traffic.seconds);
        cJSON_AddNumberToObject(dj, "bytes_sent", (double)q->traffic.bytes_sent);
        cJSON_AddNumberToObject(dj, "bytes_received", (double)q->traffic.bytes_recv);
        cJSON_AddNumberToObject(dj, "collectives", (double)q->traffic.calls);
        cJSON *pr = cJSON_AddArrayToObject(dj, "per_rank");
        for (int r = 0; r < q->nranks && q->ranks; r++) { /* calibration only: rank 0 writes afterwards */
            const struct qc_rank_figures *f = &q->ranks[r];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "seconds", f->seconds);
            cJSON_AddNumberToObject(o, "statistics_seconds", f->stats_seconds);
            cJSON_AddNumberToObject(o, "solve_seconds", f->solve_seconds);
            cJSON_AddNumberToObject(o, "communication_seconds", f->traffic.seconds);
            cJSON_AddNumberToObject(o, "bytes_sent", (double)f->traffic.bytes_sent);
            cJSON_AddNumberToObject(o, "bytes_received", (double)f->traffic.bytes_recv);
            cJSON_AddItemToArray(pr, o);
        }
    }
    /* how true-sequential stages got their inputs (the same bits either way) */
    cJSON_AddStringToObject(s, "stage_inputs", !plan->intermediates ? "none (all sites at once)"
                                                : plan->recomputed   ? "recomputed"
                                                                     : "kept");
    if (j->file_bpw > 0) {
        cJSON_AddNumberToObject(s, "file_bits_per_weight", j->file_bpw);
        if (j->fmt->bpw_index) cJSON_AddNumberToObject(s, "file_bits_per_weight_with_g_idx", j->file_bpw_index);
    }
    if (j->s.target_bpw > 0) {
        cJSON *mx = cJSON_AddObjectToObject(s, "mixed_precision");
        cJSON_AddNumberToObject(mx, "target_bpw", j->s.target_bpw);
        cJSON_AddNumberToObject(mx, "estimated_bpw", j->mixed.bpw);
        cJSON_AddNumberToObject(mx, "estimated_kl", j->mixed.est_err);
    }
    if (j->s.observe) cJSON_AddNumberToObject(s, "observe_upgraded", j->observed);
    cJSON *mp = cJSON_AddObjectToObject(s, "memory_plan_mb");
    const struct { const char *name; size_t bytes; } parts[] = {
        { "model_file", plan->model_file }, { "activations", plan->activations }, { "workspace", plan->workspace },
        { "intermediates", plan->recomputed ? 0 : plan->intermediates },
        { "block_weights", plan->block_weights }, { "statistics", plan->statistics },
        { "largest_hessian", plan->largest_hessian }, { "solver", plan->solver },
        { "results_calibrating", plan->results_calibrating }, { "results_exporting", plan->results_exporting },
        { "exporter", plan->exporter }, { "runtime", plan->runtime }, { "calibration", plan->calibration },
        { "export", plan->export_phase }, { "peak", plan->peak },
    };
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
        cJSON_AddNumberToObject(mp, parts[i].name, (double)parts[i].bytes / (1 << 20));
    if (plan->ranks) cJSON_AddNumberToObject(mp, "ranks", (double)plan->ranks / (1 << 20)); /* distributed runs only */
    cJSON *ev = cJSON_AddArrayToObject(s, "eval");
    for (int i = 0; i < j->s.nevals; i++) {
        const qc_job_eval *r = &j->evals[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "text", r->text);
        cJSON_AddNumberToObject(o, "seqlen", r->fp32.seqlen);
        cJSON_AddNumberToObject(o, "windows", r->fp32.windows);
        cJSON_AddNumberToObject(o, "fp32_ppl", r->fp32.ppl);
        cJSON_AddNumberToObject(o, "quant_ppl", r->quant.ppl);
        if (j->s.verify) cJSON_AddNumberToObject(o, "memory_ppl", r->memory.ppl);
        if (j->s.observe) cJSON_AddNumberToObject(o, "first_pass_ppl", r->first.ppl);
        cJSON_AddItemToArray(ev, o);
    }
}
