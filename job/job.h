/* job.h — one quantize run as a library call, between calib/eval and cli/:
 *
 *   qc_job_settings ──qc_job_open──▶ qc_job (the recipe read) ──qc_job_plan──▶ (the checked
 *   options, the recipe under the flags, the output format's row) ──qc_job_run──▶ the output
 *   folder (model files, tokenizer, logs, recipe.json, summary.json) and qc_job_summary;
 *   qc_job_free.
 *
 * qc_job_plan checks the settings against each other and the output format (QC_ERR_ARG: the
 * settings are at fault, a usage error); qc_job_run opens the model, checks everything the
 * format's writer would refuse before calibrating (qc_job_usage says when a failure is the
 * settings'), plans memory, calibrates (one or two passes), writes the folder under a
 * temporary name and renames it, evaluates and verifies. It reports through the hooks' log
 * (progress, messages) and checkpoint callback; it never prints.
 *
 * The table of output formats (formats.c) holds one row per format: what its linears can
 * be, its defaults, whether it holds a quantized embedding or biases, its padding rule, what
 * its writer refuses, its writer and reader, how its file's bits per weight are counted, and
 * for convert's targets the full-precision writer (qc_job_convert). Everything that depends
 * on the format reads its row. */
#ifndef QC_JOB_H
#define QC_JOB_H

#include "calib/calib.h"
#include "eval/eval.h"

/* ---- the output formats ---- */

typedef enum qc_out_format { QC_FMT_FAKE, QC_FMT_GPTQ, QC_FMT_AWQ, QC_FMT_GGUF, QC_FMT_LLAMA2C, QC_FMT_HF, QC_FMT_COUNT } qc_out_format;

struct qc_job;
struct qc_run_desc;
struct cJSON;
struct qc_format_run;
struct qc_format_write;
struct qc_convert_write;

/* A bit width in a row's `bits` set. */
#define QC_BITS(b) (1u << (b))

/* One row of the table (formats.c). */
typedef struct qc_format_row {
    qc_out_format format;
    const char *name;         /* --format's spelling */
    const char *label;        /* in messages: "GPTQ", "GGUF", ... */
    /* what its linears can be */
    bool quantized;           /* holds quantized linears (hf: full precision, convert's) */
    unsigned bits;            /* the bit widths it holds (QC_BITS) */
    const char *bits_text;    /* ... in words: "2, 3, 4 or 8" */
    int groupsize;            /* the one group size it stores (gguf: 32); 0: any */
    bool f16_scales;          /* scales stored as fp16 (the solver rounds to them) */
    bool per_linear;          /* different settings per linear (recipe overrides, mixed precision) */
    bool keeps_f16;           /* unquantized linears beside quantized ones (a recipe's skip list) */
    bool fused;               /* its runtimes fuse a block's q, k, v and gate, up (vLLM): per-linear
                                 choices keep them alike unless --per-linear */
    /* defaults, when no setting is given */
    int default_bits, default_groupsize;
    /* the embedding and biases */
    bool embed;               /* a quantized token embedding (--embed-bits) */
    bool bias;                /* quantized biases (no format: biases stay float) */
    /* the solver settings the format implies from the settings given (QC_ERR_ARG: one it
     * cannot hold), a linear's own settings (recipes, mixed precision) and the embedding's */
    qc_status (*spec)(struct qc_job *j, qc_quant_spec *s, qc_err *e);
    qc_status (*module_spec)(const struct qc_job *j, int bits, int groupsize, bool sym, qc_quant_spec *s, qc_err *e);
    qc_status (*embed_spec)(struct qc_job *j, const qc_quant_spec *lin, qc_quant_spec *es, qc_err *e);
    /* padding: the multiple the FFN width is padded to with zeros before calibrating, so that
     * every group is one of the file's blocks; 0: none */
    int (*pad)(const qc_quant_spec *s);
    bool pad_optional;        /* --gguf-no-pad: linears whose rows are not whole blocks stay F16 instead */
    /* what its writer would refuse, asked before calibrating (qc_format_check_run): the model
     * as a whole, each quantized linear (name, shape, spec), at least one quantized linear; and
     * which weights it stores as F16 as read (kept: an unquantized linear), range-checked */
    qc_status (*check_model)(const struct qc_format_run *r, qc_err *e);
    qc_status (*check_linear)(const char *name, int rows, int cols, const qc_quant_spec *s, qc_err *e);
    bool needs_quantized;
    bool (*stored_f16)(const struct qc_format_run *r, qc_weight w, bool kept);
    /* its own settings in the run's description (summary.json, the fingerprint); NULL: none */
    void (*describe)(const struct qc_run_desc *d, struct cJSON *s);
    /* writer and reader */
    qc_status (*write)(const struct qc_format_write *w, qc_err *e);
    const char *reader;       /* what reads it back (io/'s qc_checkpoint_open): the layout it recognises */
    bool carries_vocab;       /* the file holds the vocabulary (a tokenizer is needed to write it) */
    int tokenizer_json;       /* the folder's tokenizer: 1 tokenizer.json, 0 tokenizer.bin, -1 as the input's */
    /* bits per weight of the written linears; NULL: not counted */
    qc_status (*bpw)(const qc_outdir *d, const qc_config *c, const qc_module_quant *mods, double *bpw,
                     double *bpw_index, qc_err *e);
    const char *bpw_note;     /* said beside the figure: " (g_idx apart)" */
    bool bpw_index;           /* the file also stores a column index (g_idx), counted apart */
    /* full precision (convert): the writer, the element types it stores (QC_BITS of qc_dtype),
     * whether it writes a folder (else one file, and with shards), and the name
     * qc_checkpoint_format gives a file of this format; convert NULL: not a convert target */
    qc_status (*convert)(const struct qc_convert_write *w, qc_err *e);
    unsigned convert_dtypes;
    bool convert_folder;
    const char *reads_as;
} qc_format_row;

/* The row of format f. */
const qc_format_row *qc_format_row_of(qc_out_format f);
/* Whether row f's linears can be `bits` wide. */
bool qc_format_holds_bits(const qc_format_row *f, int bits);
const char *qc_out_format_name(qc_out_format f); /* "gptq", ... */
/* The format spelled `name` among those a quantize run writes (hf is convert's); false: none. */
bool qc_out_format_parse(const char *name, qc_out_format *f);


/* A setting as the user gave it: its value (0 or 1 for a flag) and where it came from, for
 * messages ("--wbits", "--sym", "the recipe's sym"); from NULL: not given. */
typedef struct qc_given {
    int value;
    const char *from;
} qc_given;

/* What a quantize run was asked for, as given (nothing defaulted). */
typedef struct qc_format_ask {
    const char *format;       /* --format's value; NULL: not given */
    const char *gguf_type;    /* --gguf-type's value; NULL: not given */
    const char *gguf_option;  /* a --gguf-* option given, by name ("--gguf-output-type"); NULL: none */
    qc_given bits, groupsize, sym; /* the linears' (groupsize <= 0: one group per row) */
    qc_given embed_bits;      /* the token embedding is quantized */
    double percdamp;          /* GPTQ's damping, which a GPTQ config records ... */
    const char *percdamp_from; /* ... given as this ("--percdamp"); NULL: not given */
    const qc_recipe *recipe;  /* its rules' bits count too; may be NULL */
    bool no_quant;            /* no weight is quantized (smoothquant without --wbits) */
} qc_format_ask;

typedef struct qc_format_choice {
    qc_out_format format;
    qc_gguf_type gguf_type;   /* format gguf: the linears' block type (q4_0, q4_1, q8_0; a mix's default) */
    const qc_gguf_mix *gguf_mix; /* format gguf with a K-quant --gguf-type: its mix (per-tensor types); NULL: none */
    char reason[512];         /* why this format: for the console and summary.json */
} qc_format_choice;

/* The format to write and why (format_choose.c states the rule: --format, else gguf only when a
 * --gguf-* option is given, else gptq when it holds every setting given, else fake). A
 * setting given that the format cannot hold, or an unknown name, is QC_ERR_ARG with a
 * message naming both options. */
qc_status qc_format_choose(const qc_format_ask *a, qc_format_choice *c, qc_err *e);

/* A run as its format's writer will receive it, for qc_format_check_run. */
typedef struct qc_format_run {
    qc_out_format format;
    const qc_config *cfg;             /* the model's, after any FFN padding */
    const char *model;                /* its path, for messages */
    const qc_checkpoint *ck;          /* its weights (those stored in F16 as read are range-checked) */
    const qc_calib_opts *opts;        /* the linears' specs (spec, modules), which are kept, no_quant */
    const qc_gguf_export_opts *gguf;  /* format gguf: the embedding and output types, the tokenizer */
} qc_format_run;

/* Whether the format can hold this run on this model, everything the writer checks that does
 * not depend on the solved weights (format_check.c): GGUF's config, types and vocabulary
 * (qc_gguf_check_export) and 32-wide blocks of every quantized linear; llama2.c int8's config
 * and group size (qc_llama2c_q8_check); AWQ's packing of every linear (qc_awq_check_shape);
 * GPTQ's at least one quantized linear; the weights the writer stores in F16 as they are read,
 * against fp16's range. For a caller to refuse before calibrating; the message starts with
 * "--format NAME". */
qc_status qc_format_check_run(const qc_format_run *r, qc_err *e);

/* ---- the description of a quantize run (rundesc.c) ---- */

/* Everything a quantize run's result depends on: the checked options and the settings
 * beside them, the effective recipe, and the inputs. Made once; the effective recipe
 * (recipe.json), summary.json's settings and inputs, and the resume fingerprint are derived
 * from it (rundesc.c), never written out by hand again. */
typedef struct qc_run_desc {
    const qc_calib_opts *opts;  /* the checked options */
    double percdamp;            /* GPTQ's damping as given (opts holds it as a float) */
    qc_out_format format;
    const char *format_reason;  /* qc_format_choice's */
    int checkpoint_format;      /* gptq: 1 (qzeros hold zero - 1) or 2 */
    qc_gguf_type gguf_linear, gguf_embed, gguf_output; /* gguf: the block types */
    const qc_gguf_mix *gguf_mix; /* gguf: the K-quant mix, or NULL */
    bool gguf_no_pad;           /* gguf: FFN rows that are not whole blocks stay F16, unpadded */
    int act_bits;               /* the runtime quantizes activations to this many bits; 0: not */
    double target_bpw;          /* mixed precision's budget; 0: none */
    int observe;                /* --observe's count; 0: none */
    bool per_linear;
    int threads;
    qc_compute compute;         /* the products' operand type (--compute) */
    const char *matmul_isa;     /* the instruction set oneDNN runs them on (qc_matmul_isa) */
    const char *recipe_text;    /* the effective recipe as JSON (qc_recipe_dump of qc_run_desc_recipe's) */
    /* the inputs (from qc_run_desc_recipe on, only qc_run_desc_json reads them) */
    const qc_model *model;      /* its files (qc_checkpoint_file), configuration, format */
    const char *const *calib;   /* the calibration texts as given (ncalib), or ... */
    int ncalib;
    const char *calib_tokens;   /* ... the windows as given (.npy) */
    const qc_windows *windows;  /* what was drawn from them, with the sources' content hashes */
    uint64_t seed;
} qc_run_desc;

/* The effective recipe: r's rules as given, every other field from d's settings (what
 * recipe.json holds and --quantize reads back). Needs no input. */
void qc_run_desc_recipe(const qc_run_desc *d, qc_recipe *r);
struct cJSON;
/* d as a JSON object, summary.json's first fields: the settings, the effective recipe, and
 * "inputs": the model's configuration, its files and the calibration sources by real path
 * with their content hashes, the windows' hash. NULL: out of memory. */
struct cJSON *qc_run_desc_json(const qc_run_desc *d);
/* The resume fingerprint: every field of qc_run_desc_json's object, one "key: value" line
 * each (nested keys joined by '.'), so a difference names the setting or input. NULL: out
 * of memory. */
char *qc_run_desc_fingerprint(const struct cJSON *desc);


/* ---- convert: a checkpoint in full precision, in another format (convert.c) ---- */

typedef struct qc_convert_settings {
    const char *model, *out;   /* required */
    const char *to;            /* a full-precision row's name: hf, gguf, llama2c */
    const char *dtype;         /* f32, f16, bf16 */
    const char *tokenizer;     /* NULL: the model's own, or beside it */
    long shard_mb;             /* folders: shards of at most this many MB; 0: one file */
    bool force;
    long pad_to;               /* > 0: widen the model with zeros so every matrix's input width is a
                                  multiple of it (qc_pad_init); 0: as it is */
} qc_convert_settings;

typedef struct qc_convert_target {
    const qc_format_row *row;
    qc_dtype dtype;
} qc_convert_target;

/* What the settings ask for, checked against the row (QC_ERR_ARG: a usage error). */
qc_status qc_job_convert_plan(const qc_convert_settings *s, qc_convert_target *t, qc_err *e);
/* For a row that writes one file: nothing at s->out, or with --force a regular file that is
 * no input (inputs, ninputs; NULL entries skipped) and that qcalib reads as a model of the
 * row's format, so --force never replaces an unrelated file (QC_ERR_ARG otherwise). */
qc_status qc_job_convert_check_file(const qc_convert_settings *s, const qc_convert_target *t, const char *const *inputs,
                                    int ninputs, qc_err *e);
/* Writes the model of s->model at s->out, atomically (a folder with the model's tokenizer
 * when it has one, or one file). */
qc_status qc_job_convert(const qc_convert_settings *s, const qc_convert_target *t, const qc_log *log, qc_err *e);

/* ---- the job ---- */

#define QC_JOB_UNSET (-1000) /* a long setting not given */

/* A quantize run's settings as given (the command line's options, or a test's): strings
 * NULL, longs QC_JOB_UNSET, doubles NAN and flags false where nothing was given, except
 * where a default is written beside the field (qc_job_settings_init). A recipe (recipe) fills
 * what the flags leave unset; the flags win. */
typedef struct qc_job_settings {
    const char *model, *out;                 /* required */
    const char *recipe;                      /* JSON, inline ('{...}') or a file; NULL: none */
    const char *const *calib;                /* calibration texts (ncalib), or ... */
    int ncalib;
    const char *calib_tokens;                /* ... windows as given (.npy) */
    const char *method;                      /* NULL: the recipe's, else gptq */
    double alpha;                            /* smoothquant's α; NAN: 0.5 */
    double smooth;                           /* SmoothQuant's α before another method; 0: none */
    bool awq_duo, awq_clip, no_awq_clip;
    const char *propagate;                   /* "fp32" or "quantized"; NULL: the method's */
    const char *format;                      /* NULL: the rule (format_choose.c) */
    long wbits, groupsize;
    bool sym, mse;
    double percdamp;                         /* NAN: the recipe's, else 0.01 */
    long damp_retries;                       /* default 4 */
    long blocksize;                          /* QC_JOB_UNSET: the recipe's, else 128 */
    bool act_order, static_groups, true_sequential, no_true_sequential;
    const char *checkpoint_format;           /* default "v1" */
    const char *gguf_type, *gguf_embed_type, *gguf_output_type; /* output NULL: q8_0 */
    bool gguf_no_pad;
    long embed_bits;                         /* 0: not given */
    long embed_groupsize;
    const char *act_quant;                   /* "aN" */
    double target_bpw;                       /* 0: none */
    long observe;                            /* 0: none */
    bool per_linear;
    long nsamples;                           /* default 128 */
    long seqlen;                             /* 0: the model's context, at most 2048 */
    long seed;
    const char *act_dtype;                   /* default "f32" */
    const char *tokenizer;                   /* NULL: found beside the model */
    const char *const *evals;                /* texts to evaluate after quantizing (nevals) */
    int nevals;
    long eval_seqlen;                        /* 0: the calibration seqlen */
    bool verify, force, resume, restart;
    uint64_t memory_limit;                   /* bytes the memory plan may take; 0: none known */
    const char *memory_limit_from;           /* how it was given, for messages ("--max-memory") */
} qc_job_settings;

/* Everything unset, and the defaults written in qc_job_settings. */
void qc_job_settings_init(qc_job_settings *s);

typedef struct qc_job qc_job;

/* What a job reports to, besides its return code. */
typedef struct qc_job_hooks {
    const qc_log *log;   /* progress and messages (NULL: none) */
    /* Optional: after each block's checkpoint is saved in OUT.work (single-pass gptq and rtn
     * runs); layer counts from 0. */
    void (*checkpointed)(void *ctx, int layer);
    void *ctx;
    /* The ranks of a distributed run (NULL: one process). Every rank runs the job: each
     * calibrates its share of the windows, rank 0 alone keeps OUT.work and writes OUT. */
    const qc_dist *dist;
} qc_job_hooks;

/* A job for the settings s, which qc_job_plan reads (s and the strings it points to must
 * outlive the job): the recipe (s->recipe) read. A recipe that cannot be read or parsed fails
 * here (its file's fault, not a usage error). */
qc_status qc_job_open(const qc_job_settings *s, qc_job **j, qc_err *e);
/* The settings (qc_job_open's) with the recipe laid under the flags, checked against each
 * other and the output format: the format chosen (and why), the solver settings it implies, the run's description. The inputs are not opened
 * yet. QC_ERR_ARG: the settings are at fault (a usage error). */
qc_status qc_job_plan(qc_job *j, qc_err *e);
/* The effective recipe as JSON (what recipe.json will hold). */
const char *qc_job_recipe(const qc_job *j);
/* The recipe's rules against the model (a rule matching no linear, a setting the format cannot
 * store: QC_ERR_ARG), without running anything: what --dump-recipe checks. */
qc_status qc_job_check_recipe(qc_job *j, qc_err *e);
/* Runs the job: the output folder appears only on success. */
qc_status qc_job_run(qc_job *j, const qc_job_hooks *h, qc_err *e);
/* Whether the last failure of qc_job_run was found before calibrating and is the settings'
 * (a usage error: the format or memory budget cannot hold the run, an --eval text too short). */
bool qc_job_usage(const qc_job *j);
void qc_job_free(qc_job *j); /* NULL: no-op */

/* One --eval text's perplexities. */
typedef struct qc_job_eval {
    const char *text;
    qc_eval_result fp32, quant;  /* the input model; the written one */
    qc_eval_result memory;       /* --verify: the solver's linears from memory */
    qc_eval_result first;        /* --observe: the written file with the first pass's linears */
} qc_job_eval;

/* What a finished run produced (valid until qc_job_free). */
typedef struct qc_job_summary {
    const struct cJSON *json;        /* summary.json's object */
    const qc_format_row *format;
    const qc_calib_opts *opts;       /* the solver settings */
    int n_layers, modules, fallbacks;
    double mean_rel_err, seconds;    /* over the quantized linears; calibrating */
    double target_bpw, mixed_bpw;    /* --target-bpw's budget and the choice's estimate; 0: none */
    int observe, observed;           /* --observe: asked, linears given 8 bits */
    double file_bpw;                 /* the written linears' bits per weight; 0: not counted */
    const qc_job_eval *evals;
    int nevals;
} qc_job_summary;

const qc_job_summary *qc_job_summary_of(const qc_job *j);

/* "w4g128", or "w8" for one group per row, "q4_k" for a GGUF K-quant: a spec for logs. */
void qc_spec_name(const qc_quant_spec *s, char *buf, size_t size);

#endif
