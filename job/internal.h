/* internal.h — internal to job/: the job's state, shared by its files (settings.c checks the
 * settings into it, formats.c's rows read it, run.c runs it, outputs.c writes what it made). */
#ifndef QC_JOB_INTERNAL_H
#define QC_JOB_INTERNAL_H

#include "job/job.h"

struct qc_job {
    const qc_job_settings *from; /* the caller's settings, read by qc_job_plan */
    qc_job_settings given;   /* as given */
    qc_job_settings s;       /* with the recipe's settings where the flags left them unset, and the defaults */
    qc_recipe recipe;        /* the recipe read; then the effective one (qc_run_desc_recipe) */
    char *recipe_text;       /* the effective recipe as JSON */
    qc_calib_opts o;         /* the solver settings */
    const qc_format_row *fmt;
    qc_format_choice chosen; /* the format, and why */
    qc_gguf_type gguf_linear, gguf_embed, gguf_output;
    const qc_gguf_mix *gguf_mix; /* a K-quant --gguf-type, its mix; NULL: none */
    struct cJSON *gguf_fallbacks; /* with a mix: [{"tensor", "type", "fallback"}] of the tensors whose
                                     rows are not whole blocks of their type (summary.json) */
    qc_quant_spec base_spec; /* o.spec, what module settings start from */
    int act_bits;
    char act_text[16];       /* the recipe's act_bits as "aN" */
    qc_run_desc desc;
    /* while running */
    const qc_log *log;
    const qc_job_hooks *hooks;
    qc_calib_checkpoint ckpt;         /* the resume folder's hooks, wrapped to call hooks->checkpointed */
    const qc_calib_checkpoint *inner; /* ... the wrapped ones */
    qc_module_quant *mods;   /* per linear; NULL: o.spec for all */
    qc_mixed_result mixed;   /* --target-bpw's choice */
    char *mixed_csv;         /* its table (mixed_precision.csv) */
    int observed;            /* --observe: linears given 8 bits */
    qc_mem_plan plan;
    size_t text_read, text_bound;
    double file_bpw, file_bpw_index, write_seconds;
    int windows_mine; /* the calibration windows this rank pushed (all of them without ranks) */
    bool usage;              /* the failure is the settings' */
    qc_job_eval *evals;
    struct cJSON *json;      /* summary.json */
    qc_job_summary summary;
};

/* ---- formats.c ---- */

/* The spec a linear gets for (bits, groupsize, sym) in the job's format (qc_recipe_spec_fn). */
qc_status qc_job_module_spec(void *job, int bits, int groupsize, bool sym, qc_quant_spec *out, qc_err *e);
/* The spec --observe gives its upgraded linears: 8 bits in the run's groups (a K-quant mix:
 * Q8_0); an argument error when the format cannot store it beside the others. */
qc_status qc_job_observe_spec(const qc_job *j, qc_quant_spec *up, qc_err *e);
/* A K-quant mix (j->gguf_mix) laid over the module settings on the open model's config c: each
 * linear the recipe did not pin gets the mix's type, each tensor whose rows are not whole
 * blocks of its type llama.cpp's fallback (logged, and listed in j->gguf_fallbacks) or an error
 * naming it; the embedding and output types unless given. No mix: nothing. */
qc_status qc_job_gguf_mix(qc_job *j, const qc_config *c, qc_err *e);
/* Whether the folder's tokenizer is a tokenizer.json (else tokenizer.bin), for input ck. */
bool qc_job_tokenizer_json(const qc_job *j, const qc_checkpoint *ck);

/* What a row's writer is handed. */
typedef struct qc_format_write {
    const qc_job *job;
    const qc_weight_source *src;
    const qc_outdir *d;
    const qc_checkpoint *ck;     /* the input model */
    const qc_tokenizer *tok;     /* NULL: none */
    const char *model_name;      /* the model as the run's description names it */
    const qc_log *log;
} qc_format_write;

/* What a row's full-precision writer is handed (convert.c). */
typedef struct qc_convert_write {
    const qc_convert_settings *s;
    const qc_convert_target *t;
    const qc_checkpoint *ck;
    const qc_weight_source *src;
    const qc_log *log;
} qc_convert_write;

/* ---- modules.c: per-linear settings ---- */

qc_status qc_job_resolve_modules(qc_job *j, const qc_model *m, qc_err *e);
/* The candidates of --target-bpw the format can store, into c (NULL: only counted; at most 12). */
int qc_job_mixed_candidates(const qc_job *j, qc_quant_spec *c);
/* Whether the choices keep vLLM's fused groups alike. */
bool qc_job_fused_groups(const qc_job *j);
int qc_job_split_sites(const qc_job *j, const qc_config *c);
qc_status qc_job_choose_mixed(qc_job *j, qc_model *m, const qc_windows *w, qc_err *e);
/* mixed_precision.csv's text; NULL: out of memory. */
char *qc_job_mixed_table(const qc_config *c, const qc_module_quant *mods, const qc_quant_spec *cands, int nc,
                         const double *err);

/* ---- outputs.c ---- */

/* The model files, the tokenizer, the logs and recipe into the folder being built. */
qc_status qc_job_write_outputs(qc_job *j, const qc_outdir *d, qc_model *m, const qc_quantized *q, const char *name,
                               const qc_tokenizer *tok, qc_err *e);
/* summary.json's results after the run's description. */
void qc_job_summary_json(qc_job *j, struct cJSON *s, const qc_quantized *q);
qc_status qc_job_write_json(const qc_outdir *d, const char *name, struct cJSON *json, qc_err *e);

/* ---- evaluate.c ---- */

/* Perplexity of text (a file) on m in windows of sl tokens (abits: activations quantized). */
qc_status qc_job_eval_text(qc_model *m, const qc_tokenizer *t, const char *text, int sl, int abits, qc_eval_result *r,
                           const qc_log *log, qc_err *e);
/* Whether text fills at least one window of sl tokens (else a usage error, *usage set). */
qc_status qc_job_eval_windows(const qc_tokenizer *t, const char *text, int sl, bool *usage, qc_err *e);

#endif
