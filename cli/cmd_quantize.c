/* cmd_quantize.c — `qcalib quantize` (also `qcalib --method ...`): calibrate a model on
 * text, quantize every linear layer with GPTQ or round-to-nearest, write the quantized
 * model with its logs into an output folder, and optionally evaluate it against fp32. */
#include "calib/calib.h"
#include "cli/cli.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *model_path, *out_path, *method_name = "gptq", *tok_path, *tokens_path, *format_name;
static const char *propagate;
static double alpha = 0.5, smooth_alpha;
static bool awq_duo, awq_clip, no_awq_clip;
static const char *ckpt_format = "v1", *gguf_type, *gguf_embed, *gguf_output = "q8_0";
static const char *max_memory, *act_dtype = "f32";
static const char *recipe_arg, *act_quant;
static bool dump_recipe, per_linear;
static double target_bpw;
static long embed_bits, observe_k;
static cli_list calib, evals;
#define UNSET (-1000) /* wbits, groupsize: not given on the command line */
static long wbits = UNSET, groupsize = UNSET, embed_groupsize = UNSET, blocksize = 128, damp_retries = 4, nsamples = 128, seqlen, seed,
            eval_seqlen, threads;
static double percdamp = 0.01;
static bool sym, mse, act_order, static_groups, no_true_seq, true_seq, json, quiet, force, gguf_no_pad, verify, resume, restart;

static const char *compute_name = "f32";

static const cli_opt opts[] = {
    { "model", OPT_STR, &model_path, "PATH", "model to quantize: llama2.c .bin or Hugging Face folder (required)", 0, 0 },
    { "quantize", OPT_STR, &recipe_arg, "RECIPE", "a JSON recipe, inline ('{...}') or a file: method, linear:int4 / int8 / a8w4dq, embedding, per-module overrides, skip list (see below); flags given beside it win", 0, 0 },
    { "dump-recipe", OPT_FLAG, &dump_recipe, NULL, "print the effective recipe (the --quantize recipe, the flags and the defaults) as JSON and exit; needs only --model", 0, 0 },
    { "calib", OPT_LIST, &calib, "FILE", "calibration text: plain, .jsonl or .json.gz; repeat to mix sources", 0, 0 },
    { "calib-tokens", OPT_STR, &tokens_path, "FILE", "calibration windows as a NumPy int32/int64 array (nsamples, seqlen), used as they are", 0, 0 },
    { "out", OPT_STR, &out_path, "DIR", "output folder (required; must not exist unless --force)", 0, 0 },
    { "method", OPT_STR, &method_name, "NAME", "gptq (default), rtn (round-to-nearest, the baseline), awq, awq+gptq (AWQ's scales and clipping, then GPTQ) or smoothquant (smoothing, then round-to-nearest with --wbits, else an fp32 checkpoint)", 0, 0 },
    { "alpha", OPT_FLOAT, &alpha, "A", "smoothquant: migration strength α (default 0.5)", 0, 1 },
    { "smooth", OPT_FLOAT, &smooth_alpha, "A", "SmoothQuant smoothing with α = A before --method gptq, rtn, awq or awq+gptq", 1e-6, 1 },
    { "awq-duo-scaling", OPT_FLAG, &awq_duo, NULL, "awq: AutoAWQ's scales that also use the weights' magnitudes", 0, 0 },
    { "awq-clip", OPT_FLAG, &awq_clip, NULL, "awq: search each group's clipping range (the default; not for q, k)", 0, 0 },
    { "no-awq-clip", OPT_FLAG, &no_awq_clip, NULL, "awq: no clipping search", 0, 0 },
    { "propagate", OPT_STR, &propagate, "P", "the next block's inputs: fp32 (from the unquantized, rescaled block; default for awq) or quantized (default otherwise)", 0, 0 },
    { "format", OPT_STR, &format_name, "F", "output: gptq, gguf, awq, llama2c (int8), fake (dequantized); default: gguf when a --gguf-* option is given, else gptq when it holds every setting given, else fake", 0, 0 },
    { "wbits", OPT_INT, &wbits, "N", "bits per weight, 2..8 (default 4; gguf: 4 or 8; llama2c: 8)", 2, 8 },
    { "groupsize", OPT_INT, &groupsize, "N", "columns per quantization group; -1 or 0: one group per row (default 128; gguf: 32; llama2c: 64)", -1, 1 << 20 },
    { "sym", OPT_FLAG, &sym, NULL, "symmetric quantization (default asymmetric, as the GPTQ reference)", 0, 0 },
    { "mse", OPT_FLAG, &mse, NULL, "search each group's clipping range for the least error (norm 2.4)", 0, 0 },
    { "percdamp", OPT_FLOAT, &percdamp, "F", "GPTQ damping, relative to mean(diag H) (default 0.01)", 0, 1e6 },
    { "damp-retries", OPT_INT, &damp_retries, "N", "GPTQ: when the Hessian will not factorize, raise the damping x10 up to N times, then use round-to-nearest (default 4)", 0, 12 },
    { "blocksize", OPT_INT, &blocksize, "N", "GPTQ columns per lazy-update block (default 128)", 1, 1 << 20 },
    { "act-order", OPT_FLAG, &act_order, NULL, "GPTQ: quantize columns by decreasing Hessian diagonal", 0, 0 },
    { "static-groups", OPT_FLAG, &static_groups, NULL, "GPTQ: group parameters from the unmodified weights", 0, 0 },
    { "true-sequential", OPT_FLAG, &true_seq, NULL, "quantize {q,k,v}, {o}, {gate,up}, {down} in turn (the default)", 0, 0 },
    { "no-true-sequential", OPT_FLAG, &no_true_seq, NULL, "calibrate all linears of a block on fp32 block inputs at once", 0, 0 },
    { "checkpoint-format", OPT_STR, &ckpt_format, "V", "gptq: v1 (qzeros hold zero - 1, what most loaders read; default) or v2", 0, 0 },
    { "gguf-type", OPT_STR, &gguf_type, "T", "gguf: block type of the linears, q4_0, q4_1 or q8_0 (default: q8_0 for --wbits 8, q4_1 for a recipe's sym false, else q4_0); implies --format gguf", 0, 0 },
    { "gguf-embed-type", OPT_STR, &gguf_embed, "T", "gguf: token embedding type, q4_0 q4_1 q8_0 f16 f32 (default: --gguf-type)", 0, 0 },
    { "gguf-output-type", OPT_STR, &gguf_output, "T", "gguf: output (classifier) type (default q8_0)", 0, 0 },
    { "gguf-no-pad", OPT_FLAG, &gguf_no_pad, NULL, "gguf: do not pad the FFN to a multiple of 32; linears that cannot be blocked stay F16", 0, 0 },
    { "embed-bits", OPT_INT, &embed_bits, "N", "quantize the token embedding too: 4 or 8 bits, symmetric (formats gguf, llama2c, fake)", 4, 8 },
    { "embed-groupsize", OPT_INT, &embed_groupsize, "N", "columns per group of the embedding, 0: one group per row (default 0; gguf: 32; llama2c: --groupsize)", 0, 1 << 20 },
    { "act-quant", OPT_STR, &act_quant, "aN", "the runtime quantizes activations per token to N bits (a8w4dq: a8): --eval measures the quantized model so", 0, 0 },
    { "target-bpw", OPT_FLOAT, &target_bpw, "B", "mixed precision: measure every linear at 3/4/8 bits in groups of 32/128 (what --format stores), then give each the setting that minimizes the summed KL divergence of the model's predictions within B bits per weight", 1, 16 },
    { "observe", OPT_INT, &observe_k, "K", "quantize, then quantize again with the K linears of largest output error at 8 bits (--format gptq: each with the linears vLLM fuses it with)", 1, 1 << 20 },
    { "per-linear", OPT_FLAG, &per_linear, NULL, "--format gptq: let --target-bpw and --observe set q, k, v (gate, up) of a block apart; GPTQModel loads such a file, vLLM (one fused layer per group) does not", 0, 0 },
    { "nsamples", OPT_INT, &nsamples, "N", "calibration windows (default 128)", 1, 1 << 20 },
    { "seqlen", OPT_INT, &seqlen, "N", "tokens per calibration window (default: the model's context, at most 2048)", 2, 1 << 20 },
    { "seed", OPT_INT, &seed, "N", "seed of the window sampler, as Python's random.seed (default 0)", 0, 2147483647 },
    { "tokenizer", OPT_STR, &tok_path, "FILE", "tokenizer.json or llama2.c tokenizer (default: tokenizer.json, tokenizer.bin or tok<vocab>.bin beside the model)", 0, 0 },
    { "eval", OPT_LIST, &evals, "FILE", "after quantizing, print fp32 and quantized perplexity on this text; repeatable", 0, 0 },
    { "eval-seqlen", OPT_INT, &eval_seqlen, "N", "window length for --eval (default: --seqlen)", 2, 1 << 20 },
    { "verify", OPT_FLAG, &verify, NULL, "with --eval: also evaluate the solver's linears from memory (the file's other tensors as written); fail unless the file gives the same perplexity", 0, 0 },
    { "json", OPT_FLAG, &json, NULL, "print the summary as JSON (as written to DIR/summary.json)", 0, 0 },
    { "force", OPT_FLAG, &force, NULL, "replace an existing output folder", 0, 0 },
    { "resume", OPT_FLAG, &resume, NULL, "continue an interrupted run after its last finished block (checkpointed in DIR.work; same options and inputs)", 0, 0 },
    { "restart", OPT_FLAG, &restart, NULL, "discard the checkpoints of an interrupted run in DIR.work and start afresh", 0, 0 },
    { "max-memory", OPT_STR, &max_memory, "SIZE", "refuse to start when the memory plan needs more than SIZE (e.g. 8G, 512M; default: the kernel's MemAvailable)", 0, 0 },
    { "act-dtype", OPT_STR, &act_dtype, "T", "calibration activations between blocks: f32 (default), f16 or bf16 (half the memory, rounded once per block)", 0, 0 },
    { "threads", OPT_INT, &threads, "N", "threads (default: every core)", 0, 4096 },
    { "compute", OPT_STR, &compute_name, "T", CLI_COMPUTE_HELP " (default f32)", 0, 0 },
    { "quiet", OPT_FLAG, &quiet, NULL, "no progress display", 0, 0 },
    { 0 },
};

static const cli_cmd cmd = {
    "quantize", "--model PATH --calib TEXT --out DIR [--method gptq|rtn|awq|awq+gptq|smoothquant] [--wbits 4] [--groupsize 128] [options]",
    "Calibrates the model on --nsamples random windows of --seqlen tokens from the --calib texts\n"
    "(drawn as the GPTQ reference's data loaders draw them, with Python's random and --seed),\n"
    "block by block: each block runs in fp32 with hooks recording every linear layer's input\n"
    "statistics, its linears are quantized, and the quantized block produces the next block's\n"
    "inputs. `qcalib --method ...` is the same command.\n\n"
    "awq first rescales each block (AWQ's scales searched on a grid of 20 exponents per group of\n"
    "linears sharing an input, folded into the RMSNorm or linear that produces it; then the\n"
    "clipping search) and quantizes with AWQ-style parameters; awq+gptq runs GPTQ on the rescaled\n"
    "block instead. smoothquant folds SmoothQuant's scales (--alpha) into the norms and q/k/v,\n"
    "gate/up columns; --smooth A does the same before any other method. Evaluate W8A8 with\n"
    "`qcalib eval --act-quant a8`.",
    opts,
    "DIR receives the quantized model in --format (without it: gguf when a --gguf-* option is given,\n"
    "else gptq when GPTQ holds every setting given, else fake; printed with the reason, which\n"
    "summary.json records as format_reason):\n"
    "  gptq     config.json (with quantization_config), model.safetensors (qweight, qzeros, scales,\n"
    "           g_idx per linear), quantize_config.json: for transformers, vLLM, AutoGPTQ, GPTQModel\n"
    "  awq      AutoAWQ's GEMM layout (4-bit, no act-order)\n"
    "  gguf     model.gguf for llama.cpp: --gguf-type q4_0 (4-bit symmetric groups of 32),\n"
    "           q4_1 (asymmetric, fp16 d and m) or q8_0; the FFN is padded with zeros to a multiple\n"
    "           of 32 first (exact) so every linear is blocks\n"
    "  llama2c  model.bin, llama2.c's int8 \"version 2\" for runq.c (8-bit symmetric groups)\n"
    "  fake     the dequantized weights in the input's own format\n"
    "plus the tokenizer (tokenizer.bin, or tokenizer.json and tokenizer_config.json), quant_log.csv\n"
    "and quant_log.jsonl (one row per linear: error, damping, fallback, time) and summary.json. Scales are rounded to what the file\n"
    "stores before the solver uses them, so `qcalib eval --model DIR` sees exactly the weights\n"
    "the solver compensated for. The folder appears only when complete. Same command, same bytes\n"
    "(except measured times). Each finished block is checkpointed in DIR.work (removed at the end):\n"
    "after a crash or a kill, the same command with --resume continues after the last one.\n\n"
    "memory: the plan (residual stream, one block's weights, statistics, the largest solve, the\n"
    "writer's buffers) is printed first and checked against --max-memory; true-sequential, the\n"
    "block's activations are kept between sites (each linear's input computed once), or, when\n"
    "the budget does not hold them, recomputed from the block's input (the same result); the\n"
    "model is read one block at a time from the mapped file and quantized results go to a\n"
    "scratch file (unlinked) beside DIR as they are solved, so memory does not grow with the\n"
    "model's depth.\n\n"
    "recipes (--quantize; DIR/recipe.json holds the effective one, which --quantize reads back):\n"
    "  {\"method\": \"gptq\", \"linear:int4\": {\"groupsize\": 128}}      = --method gptq --wbits 4 --groupsize 128\n"
    "  {\"linear:int8\": {\"groupsize\": 0}}                         = --wbits 8 --groupsize 0 --sym\n"
    "  {\"linear:a8w4dq\": {\"groupsize\": 32}}                      = --wbits 4 --groupsize 32 --sym --act-quant a8\n"
    "  {\"embedding\": {\"bitwidth\": 8, \"groupsize\": 0}}            = --embed-bits 8 --embed-groupsize 0\n"
    "  {\"gptq\": {\"percdamp\": 0.1, \"act_order\": true}, \"target_bpw\": 4.5, \"observe\": 4}\n"
    "  {\"model.layers.*.mlp.down_proj\": {\"bits\": 8, \"groupsize\": 32}, \"skip\": [\"model.layers.0.*\"]}\n"
    "  linear:intN takes groupsize (default: the run's) and sym (int8: symmetric, as torchchat's);\n"
    "  a key holding '.' or '*' is a glob over module names ('*' spans dots); a later override wins\n"
    "  where two match; a skipped linear stays fp16 (gptq, gguf, fake). Unknown keys are refused.\n\n"
    "mixed precision: --target-bpw B runs a measuring pass first (each linear solved at every\n"
    "candidate on that pass's statistics; the KL divergence it causes in the model's predictions\n"
    "on 4096 calibration tokens), then the run with the chosen settings: the quant log shows each\n"
    "linear's bits and group size, DIR/mixed_precision.csv the measured divergences and sizes,\n"
    "summary.json the estimated and the written file's bits per weight.\n\n"
    "example:\n"
    "  qcalib --method gptq --wbits 4 --groupsize 32 --model stories260K.bin \\\n"
    "         --calib tinystories_calib.txt --out q4 --eval tinystories_eval.txt",
};

static qc_out_format format;
static double write_seconds; /* writing the output format's files */
static qc_format_choice chosen; /* format, and why (qc_format_choose) */
static uint64_t budget; /* --max-memory in bytes; 0: MemAvailable */
static qc_mem_plan plan;
static size_t text_read, text_bound; /* the largest calibration source's text; the bound on one */
static qc_gguf_type gguf_linear, gguf_embed_t, gguf_output_t;

static qc_recipe recipe;       /* --quantize's recipe; then the effective one (effective_recipe) */
static char *recipe_text;      /* the effective recipe as JSON (recipe.json, summary, --dump-recipe) */
static qc_quant_spec base_spec; /* the run's spec, for module_spec */
static int act_bits;
static qc_module_quant *mods;     /* per linear; NULL: o.spec for all */
static qc_mixed_result mixed;     /* --target-bpw's choice */
static char *mixed_csv;           /* its table (DIR/mixed_precision.csv) */
static int observed;              /* --observe: linears given 8 bits */
static double file_bpw, file_bpw_gidx; /* the written linears' bits per weight; 0: not measured */

/* --quantize's JSON: inline when it starts with '{', else a file. */
static qc_status load_recipe(qc_err *e) {
    qc_recipe_init(&recipe);
    if (!recipe_arg) return QC_OK;
    const char *p = recipe_arg;
    while (*p == ' ' || *p == '\n' || *p == '\t') p++;
    if (*p == '{') return qc_recipe_parse(recipe_arg, strlen(recipe_arg), "--quantize", &recipe, e);
    char *buf = NULL;
    size_t len;
    qc_status st = qc_read_file(recipe_arg, (size_t)1 << 20, &buf, &len, e);
    if (!st) st = qc_recipe_parse(buf, len, recipe_arg, &recipe, e);
    free(buf);
    return st;
}

/* The recipe's settings become the options' values, except where a flag was given: the flags
 * are a shorthand for a recipe, and laid over one they win. */
static void apply_recipe(const qc_recipe *r) {
#define FROM(field, var) if (r->field != QC_RECIPE_UNSET && !cli_given(&var)) var = r->field
    FROM(bits, wbits);
    FROM(groupsize, groupsize);
    FROM(sym, sym);
    FROM(mse, mse);
    FROM(act_order, act_order);
    FROM(static_groups, static_groups);
    FROM(blocksize, blocksize);
    FROM(embed_bits, embed_bits);
    FROM(embed_groupsize, embed_groupsize);
    FROM(observe, observe_k);
#undef FROM
    static char act[16];
    if (r->act_bits > 0 && !cli_given(&act_quant)) snprintf(act, sizeof act, "a%d", r->act_bits), act_quant = act;
    if (r->has_method && !cli_given(&method_name)) method_name = qc_method_name(r->method);
    if (!isnan(r->percdamp) && !cli_given(&percdamp)) percdamp = r->percdamp;
    if (!isnan(r->target_bpw) && !cli_given(&target_bpw)) target_bpw = r->target_bpw;
    if (r->true_sequential != QC_RECIPE_UNSET && !cli_given(&true_seq) && !cli_given(&no_true_seq))
        no_true_seq = !r->true_sequential;
}

/* The run's description: the checked options and the settings beside them (the inputs are
 * added once read); the effective recipe, summary.json and the resume fingerprint come from it. */
static void describe_run(const qc_calib_opts *o, qc_run_desc *d) {
    *d = (qc_run_desc){ .opts = o, .percdamp = percdamp, .format = format, .format_reason = chosen.reason,
                        .checkpoint_format = strcmp(ckpt_format, "v2") == 0 ? 2 : 1, .gguf_linear = gguf_linear,
                        .gguf_embed = gguf_embed_t, .gguf_output = gguf_output_t, .gguf_no_pad = gguf_no_pad,
                        .act_bits = act_bits, .target_bpw = target_bpw, .observe = (int)observe_k,
                        .per_linear = per_linear, .calib = calib.v, .ncalib = calib.n, .calib_tokens = tokens_path,
                        .seed = (uint64_t)seed };
}

/* The solver settings whose results GGUF stores as block type t (q4_0, q4_1 or q8_0). */
static qc_quant_spec gguf_block_spec(qc_gguf_type t) {
    return (qc_quant_spec){ .bits = t == QC_GGUF_Q8_0 ? 8 : 4, .groupsize = 32, .sym = t != QC_GGUF_Q4_1, .mse = mse,
                            .f16_scales = true, .store_min = t == QC_GGUF_Q4_1, .signed_scale = t == QC_GGUF_Q4_0 };
}

/* A module's spec for (bits, groupsize, sym) in the output format (qc_recipe_spec_fn). */
static qc_status module_spec(void *ctx, int bits, int gs, bool msym, qc_quant_spec *out, qc_err *e) {
    qc_quant_spec s = base_spec;
    s.bits = bits, s.groupsize = gs > 0 ? gs : 0, s.sym = msym;
    if (format == QC_FMT_GGUF) {
        if (gs != 32 || (bits != 4 && bits != 8) || (bits == 8 && !msym))
            return qc_fail(e, QC_ERR_ARG, "--format gguf stores blocks of 32 as q4_0 (4-bit symmetric), q4_1 (4-bit) or "
                           "q8_0 (8-bit symmetric): %d bits in groups of %d%s cannot be stored", bits, gs,
                           msym ? " symmetric" : "");
        s = gguf_block_spec(bits == 8 ? QC_GGUF_Q8_0 : msym ? QC_GGUF_Q4_0 : QC_GGUF_Q4_1);
    } else if (format == QC_FMT_GPTQ) {
        if (!qc_gptq_format_holds_bits(bits))
            return qc_fail(e, QC_ERR_ARG, "--format gptq stores 2, 3, 4 or 8 bits, not %d", bits);
    } else if (format != QC_FMT_FAKE) {
        return qc_fail(e, QC_ERR_ARG, "--format %s holds one setting for every linear; per-module settings need --format "
                       "gptq, gguf or fake", format == QC_FMT_AWQ ? "awq" : "llama2c");
    }
    *out = s;
    return QC_OK;
}

/* The token embedding's spec as the format stores it (--embed-bits; bits 0: none). */
static int embed_spec(const qc_quant_spec *lin, qc_quant_spec *es) {
    *es = (qc_quant_spec){ 0 };
    if (!embed_bits) {
        if (embed_groupsize != UNSET) return cli_usage_error(&cmd, "--embed-groupsize needs --embed-bits");
        return 0;
    }
    int gs = embed_groupsize == UNSET ? 0 : (int)embed_groupsize;
    switch (format) {
    case QC_FMT_GPTQ: case QC_FMT_AWQ:
        return cli_usage_error(&cmd, "--embed-bits: %s checkpoints keep the token embedding in fp16 (transformers and vLLM "
                               "load it so); --format gguf, llama2c or fake can hold a quantized one", format == QC_FMT_GPTQ ? "GPTQ" : "AWQ");
    case QC_FMT_GGUF:
        if (embed_bits != 4 && embed_bits != 8) return cli_usage_error(&cmd, "--format gguf: --embed-bits 4 (q4_0) or 8 (q8_0)");
        if (embed_groupsize != UNSET && gs != 32) return cli_usage_error(&cmd, "--format gguf: the embedding is in blocks of 32 (--embed-groupsize 32)");
        if (gguf_embed) return cli_usage_error(&cmd, "--embed-bits and --gguf-embed-type both set the embedding's type; give one");
        gguf_embed_t = embed_bits == 4 ? QC_GGUF_Q4_0 : QC_GGUF_Q8_0;
        *es = (qc_quant_spec){ .bits = (int)embed_bits, .groupsize = 32, .sym = true, .f16_scales = true,
                               .signed_scale = embed_bits == 4 };
        return 0;
    case QC_FMT_LLAMA2C:
        if (embed_bits != 8) return cli_usage_error(&cmd, "--format llama2c is 8-bit: --embed-bits 8");
        if (embed_groupsize != UNSET && gs != lin->groupsize)
            return cli_usage_error(&cmd, "--format llama2c has one group size: --embed-groupsize must be --groupsize (%d)", lin->groupsize);
        *es = (qc_quant_spec){ .bits = 8, .groupsize = lin->groupsize, .sym = true };
        return 0;
    case QC_FMT_FAKE:
        *es = (qc_quant_spec){ .bits = (int)embed_bits, .groupsize = gs, .sym = true };
        return 0;
    }
    return 0;
}

/* fp32 and quantized perplexity of one --eval text. */
typedef struct eval_row {
    const char *text;
    qc_eval_result fp32, quant, memory; /* memory: the in-memory model (--verify) */
    qc_eval_result first; /* --observe: the written file with the first pass's linears */
} eval_row;

static qc_status eval_text(qc_model *m, const qc_tokenizer *t, const char *text, int sl, int abits, qc_eval_result *r,
                           const qc_log *log, qc_err *e) {
    int32_t *ids = NULL;
    size_t n, docs, bytes;
    qc_windows w = { 0 };
    qc_status st = qc_tokenizer_encode_file(t, text, &ids, &n, &docs, &bytes, e);
    if (!st && (st = qc_windows_sequential(ids, n, sl, &w, e))) qc_fail_prefix(e, st, "%s", text);
    qc_eval_opts o = { 0, NULL, NULL, log, abits };
    if (!st) st = qc_eval_perplexity(m, &w, &o, r, e);
    qc_windows_free(&w);
    free(ids);
    return st;
}

/* Whether text (an --eval file) tokenizes and fills at least one window of sl tokens; a text
 * too short for --eval-seqlen is a usage error (*usage set). */
static qc_status eval_windows(const qc_tokenizer *t, const char *text, int sl, bool *usage, qc_err *e) {
    int32_t *ids = NULL;
    size_t n, docs, bytes;
    qc_windows w = { 0 };
    qc_status st = qc_tokenizer_encode_file(t, text, &ids, &n, &docs, &bytes, e);
    if (!st && (st = qc_windows_sequential(ids, n, sl, &w, e))) {
        qc_fail_prefix(e, st, "--eval %s (--eval-seqlen %d)", text, sl);
        *usage = true;
    }
    qc_windows_free(&w);
    free(ids);
    return st;
}

/* summary.json: the run's description (qc_run_desc_json's object s), then what it produced. */
static void summary_json(cJSON *s, const qc_quantized *q, const eval_row *rows, int nrows) {
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
    cJSON_AddNumberToObject(s, "seconds", q->seconds);
    double solve = 0;
    for (int i = 0; i < q->nreports; i++) solve += q->reports[i].seconds;
    /* calibration's parts (the forward passes and the rest of the runner, statistics, solves), then
     * writing; every timing key ends in "seconds" */
    cJSON_AddNumberToObject(s, "forward_seconds", q->seconds - q->stats_seconds - solve);
    cJSON_AddNumberToObject(s, "statistics_seconds", q->stats_seconds);
    cJSON_AddNumberToObject(s, "solve_seconds", solve);
    cJSON_AddNumberToObject(s, "write_seconds", write_seconds);
    /* how true-sequential stages got their inputs (the same bits either way) */
    cJSON_AddStringToObject(s, "stage_inputs", !plan.intermediates ? "none (all sites at once)"
                                                : plan.recomputed   ? "recomputed"
                                                                    : "kept");
    if (file_bpw > 0) {
        cJSON_AddNumberToObject(s, "file_bits_per_weight", file_bpw);
        if (format == QC_FMT_GPTQ) cJSON_AddNumberToObject(s, "file_bits_per_weight_with_g_idx", file_bpw_gidx);
    }
    if (target_bpw > 0) {
        cJSON *mx = cJSON_AddObjectToObject(s, "mixed_precision");
        cJSON_AddNumberToObject(mx, "target_bpw", target_bpw);
        cJSON_AddNumberToObject(mx, "estimated_bpw", mixed.bpw);
        cJSON_AddNumberToObject(mx, "estimated_kl", mixed.est_err);
    }
    if (observe_k) cJSON_AddNumberToObject(s, "observe_upgraded", observed);
    cJSON *mp = cJSON_AddObjectToObject(s, "memory_plan_mb");
    const struct { const char *name; size_t bytes; } parts[] = {
        { "model_file", plan.model_file }, { "activations", plan.activations }, { "workspace", plan.workspace },
        { "intermediates", plan.recomputed ? 0 : plan.intermediates },
        { "block_weights", plan.block_weights }, { "statistics", plan.statistics },
        { "largest_hessian", plan.largest_hessian }, { "solver", plan.solver },
        { "results_calibrating", plan.results_calibrating }, { "results_exporting", plan.results_exporting },
        { "exporter", plan.exporter }, { "runtime", plan.runtime }, { "calibration", plan.calibration },
        { "export", plan.export_phase }, { "peak", plan.peak },
    };
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
        cJSON_AddNumberToObject(mp, parts[i].name, (double)parts[i].bytes / (1 << 20));
    cJSON *ev = cJSON_AddArrayToObject(s, "eval");
    for (int i = 0; i < nrows; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "text", rows[i].text);
        cJSON_AddNumberToObject(r, "seqlen", rows[i].fp32.seqlen);
        cJSON_AddNumberToObject(r, "windows", rows[i].fp32.windows);
        cJSON_AddNumberToObject(r, "fp32_ppl", rows[i].fp32.ppl);
        cJSON_AddNumberToObject(r, "quant_ppl", rows[i].quant.ppl);
        if (verify) cJSON_AddNumberToObject(r, "memory_ppl", rows[i].memory.ppl);
        if (observe_k) cJSON_AddNumberToObject(r, "first_pass_ppl", rows[i].first.ppl);
        cJSON_AddItemToArray(ev, r);
    }
}

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

static qc_status write_json(const qc_outdir *d, const char *name, cJSON *j, qc_err *e) {
    char *text = cJSON_Print(j);
    qc_status st = text ? write_text(d, name, text, e) : qc_fail(e, QC_ERR_NOMEM, "out of memory");
    free(text);
    return st;
}

/* Whether the output folder's tokenizer is a tokenizer.json (Hugging Face-style folders), else tokenizer.bin. */
static bool tokenizer_hf(const qc_model *m) {
    return format != QC_FMT_LLAMA2C && !(format == QC_FMT_FAKE && strcmp(qc_checkpoint_format(m->ck), "llama2.c") == 0);
}

/* The model files, the tokenizer and the logs, into the folder being built; name: the
 * model's, as the run's description names it (its real path). */
static qc_status write_outputs(const qc_outdir *d, qc_model *m, const qc_quantized *q, const qc_calib_opts *o,
                               const char *name, const qc_tokenizer *tok, const qc_log *log, qc_err *e) {
    qc_weight_source src = qc_quantized_source(q);
    bool llama2c_in = strcmp(qc_checkpoint_format(m->ck), "llama2.c") == 0;
    char *bin = qc_outdir_file(d, format == QC_FMT_GGUF ? "model.gguf" : "model.bin");
    qc_status st = bin ? QC_OK : qc_fail(e, QC_ERR_NOMEM, "out of memory");
    if (st) return st;
    switch (format) {
    case QC_FMT_GPTQ: {
        qc_gptq_export_opts go = { strcmp(ckpt_format, "v2") == 0 ? 2 : 1, o->gptq.percdamp, o->gptq.act_order,
                                   o->gptq.static_groups, o->true_sequential };
        st = qc_export_gptq_into(&src, d, &go, log, e);
        break;
    }
    case QC_FMT_AWQ: st = qc_export_awq_into(&src, d, log, e); break;
    case QC_FMT_GGUF: {
        qc_gguf_export_opts go = { QC_GGUF_F16, gguf_embed_t, gguf_output_t, tok, name };
        st = qc_export_gguf(&src, bin, &go, log, e);
        break;
    }
    case QC_FMT_LLAMA2C: st = qc_export_llama2c_q8(&src, bin, o->spec.groupsize, log, e); break;
    case QC_FMT_FAKE:
        if (llama2c_in) {
            st = qc_export_llama2c(&src, bin, log, e);
        } else {
            qc_hf_export_opts ho = { QC_DT_F32, 0 }; /* F32 keeps the dequantized weights exact */
            st = qc_export_hf_into(&src, d, &ho, log, e);
        }
        break;
    }
    free(bin);
    /* GGUF carries its vocabulary, but qcalib reads it back only in llama2.c's layout (scores, byte tokens at
     * 3..258): a tokenizer.json (normalizer, BPE merges) also comes beside a GGUF; Hugging Face-style folders get
     * tokenizer.json */
    if (!st && tok && (format != QC_FMT_GGUF || tok->hf))
        st = qc_tokenizer_write_into(tok, d, tokenizer_hf(m), e);
    char *csv = qc_outdir_file(d, "quant_log.csv"), *jl = qc_outdir_file(d, "quant_log.jsonl");
    if (!st) st = qc_quantized_write_log(q, o, csv, jl, e);
    free(csv);
    free(jl);
    if (!st) st = write_text(d, "recipe.json", recipe_text, e);
    if (!st && mixed_csv) st = write_text(d, "mixed_precision.csv", mixed_csv, e);
    return st;
}

/* The solver settings a format implies; explicit options that contradict it are refused. */
static int format_spec(qc_quant_spec *sp) {
    bool given_bits = wbits != UNSET, given_gs = groupsize != UNSET;
    if (format == QC_FMT_GGUF) { /* the block type: qc_format_choose's, which checked it against the options */
        gguf_linear = chosen.gguf_type, gguf_embed_t = gguf_linear;
        if (gguf_embed && !qc_gguf_type_parse(gguf_embed, &gguf_embed_t))
            return cli_usage_error(&cmd, "--gguf-embed-type '%s': expected q4_0, q4_1, q8_0, f16 or f32", gguf_embed);
        if (!qc_gguf_type_parse(gguf_output, &gguf_output_t))
            return cli_usage_error(&cmd, "--gguf-output-type '%s': expected q4_0, q4_1, q8_0, f16 or f32", gguf_output);
        *sp = gguf_block_spec(gguf_linear);
        if (act_order && !static_groups)
            return cli_usage_error(&cmd, "--format gguf stores contiguous 32-wide blocks: --act-order needs --static-groups");
        return 0;
    }
    if (format == QC_FMT_LLAMA2C) {
        if (given_bits && wbits != 8) return cli_usage_error(&cmd, "--format llama2c is 8-bit: --wbits %ld contradicts it", wbits);
        if (given_gs && groupsize < 1) return cli_usage_error(&cmd, "--format llama2c needs groups: --groupsize N > 0");
        if (act_order && !static_groups)
            return cli_usage_error(&cmd, "--format llama2c stores contiguous groups: --act-order needs --static-groups");
        *sp = (qc_quant_spec){ .bits = 8, .groupsize = given_gs ? (int)groupsize : 64, .sym = true, .mse = mse };
        return 0;
    }
    int gs = !given_gs ? 128 : groupsize > 0 ? (int)groupsize : 0;
    *sp = (qc_quant_spec){ .bits = given_bits ? (int)wbits : 4, .groupsize = gs, .sym = sym, .mse = mse,
                           .f16_scales = format != QC_FMT_FAKE,
                           .zero_from_one = format == QC_FMT_GPTQ && strcmp(ckpt_format, "v1") == 0 };
    if (format == QC_FMT_AWQ) {
        if (sp->bits != 4) return cli_usage_error(&cmd, "--format awq is 4-bit only (AutoAWQ's GEMM layout)");
        if (act_order) return cli_usage_error(&cmd, "--format awq has no g_idx: --act-order results cannot be stored");
    }
    if (format == QC_FMT_GPTQ && !qc_gptq_format_holds_bits(sp->bits))
        return cli_usage_error(&cmd, "--format gptq stores 2, 3, 4 or 8 bits; --wbits %d needs --format fake", sp->bits);
    return 0;
}


/* The output format (qc_format_choose), from the options and the recipe as given. */
static int choose_format(bool no_quant) {
    bool rsym = recipe.sym != QC_RECIPE_UNSET && !cli_given(&sym);
    qc_format_ask a = {
        .format = format_name, .gguf_type = gguf_type, .recipe = &recipe, .no_quant = no_quant,
        .gguf_option = gguf_type ? "--gguf-type" : gguf_embed ? "--gguf-embed-type" : cli_given(&gguf_output)
                       ? "--gguf-output-type" : gguf_no_pad ? "--gguf-no-pad" : NULL,
        .bits = { (int)wbits, wbits == UNSET ? NULL : cli_given(&wbits) ? "--wbits" : "the recipe's bits" },
        .groupsize = { (int)groupsize, groupsize == UNSET ? NULL : cli_given(&groupsize) ? "--groupsize" : "the recipe's groupsize" },
        .sym = { sym, cli_given(&sym) ? "--sym" : rsym ? "the recipe's sym" : NULL },
        .embed_bits = { (int)embed_bits, !embed_bits ? NULL : cli_given(&embed_bits) ? "--embed-bits" : "the recipe's embedding bitwidth" },
        .percdamp = percdamp, .percdamp_from = cli_given(&percdamp) ? "--percdamp" : isnan(recipe.percdamp) ? NULL : "the recipe's percdamp",
    };
    qc_err e = { "" };
    if (qc_format_choose(&a, &chosen, &e)) return cli_usage_error(&cmd, "%s", e.msg);
    format = chosen.format;
    return 0;
}

static int mixed_candidates(qc_quant_spec *c);

/* --out against --force and every input of the run (model, texts, tokenizer, recipe file). */
static int check_out(void) {
    const char *in[2 * CLI_LIST_MAX + 4] = { model_path, tokens_path, tok_path, recipe_arg };
    int n = 4;
    for (int i = 0; i < calib.n; i++) in[n++] = calib.v[i];
    for (int i = 0; i < evals.n; i++) in[n++] = evals.v[i];
    return cli_check_out(&cmd, out_path, force, in, n);
}

static int check_options(qc_calib_opts *o) {
    if (!model_path) return cli_usage_error(&cmd, "--model is required");
    if (!out_path && !dump_recipe) return cli_usage_error(&cmd, "--out is required");
    if (!calib.n && !tokens_path && !dump_recipe) return cli_usage_error(&cmd, "give calibration text with --calib FILE (or --calib-tokens FILE.npy)");
    if (calib.n && tokens_path) return cli_usage_error(&cmd, "--calib and --calib-tokens exclude each other");
    if (!qc_method_parse(method_name, &o->method))
        return cli_usage_error(&cmd, "--method '%s': expected gptq, rtn, awq, awq+gptq or smoothquant", method_name);
    const qc_method_info *mi = qc_method_info_of(o->method);
    bool gptq = mi->gptq, awq = mi->awq;
    if (!gptq && (act_order || static_groups))
        return cli_usage_error(&cmd, "--act-order and --static-groups are GPTQ options; --method %s has no column order", method_name);
    if (!awq && (awq_duo || awq_clip || no_awq_clip))
        return cli_usage_error(&cmd, "--awq-duo-scaling, --awq-clip and --no-awq-clip are options of --method awq and awq+gptq");
    if (awq_clip && no_awq_clip) return cli_usage_error(&cmd, "--awq-clip and --no-awq-clip exclude each other");
    if (awq && mse) return cli_usage_error(&cmd, "--mse is GPTQ's clip search; AWQ has its own (--awq-clip, the default)");
    if (mi->smooth && smooth_alpha > 0)
        return cli_usage_error(&cmd, "--method smoothquant takes its α from --alpha; --smooth is the pre-step of the other methods");
    if (!mi->smooth && alpha != 0.5)
        return cli_usage_error(&cmd, "--alpha is --method smoothquant's; smooth before %s with --smooth A", method_name);
    o->smooth_alpha = mi->smooth ? (float)alpha : (float)smooth_alpha;
    if (mi->smooth && !(o->smooth_alpha > 0))
        return cli_usage_error(&cmd, "--alpha must be above 0 for --method smoothquant");
    o->no_quant = mi->smooth && wbits == UNSET;
    if (resume && qc_calib_rescales(o))
        return cli_usage_error(&cmd, "--resume covers --method gptq and rtn; AWQ and SmoothQuant runs are not checkpointed yet (their per-block scales would be lost)");
    o->awq = (qc_awq_opts){ .duo_scaling = awq_duo, .clip = !no_awq_clip };
    if (propagate && strcmp(propagate, "fp32") != 0 && strcmp(propagate, "quantized") != 0)
        return cli_usage_error(&cmd, "--propagate '%s': expected fp32 or quantized", propagate);
    o->propagate_fp32 = propagate ? strcmp(propagate, "fp32") == 0 : o->method == QC_METHOD_AWQ;
    if (true_seq && no_true_seq) return cli_usage_error(&cmd, "--true-sequential and --no-true-sequential exclude each other");
    if (strcmp(ckpt_format, "v1") != 0 && strcmp(ckpt_format, "v2") != 0)
        return cli_usage_error(&cmd, "--checkpoint-format '%s': expected v1 or v2", ckpt_format);
    int rc = choose_format(o->no_quant);
    if (rc) return rc;
    if (o->no_quant && format != QC_FMT_FAKE)
        return cli_usage_error(&cmd, "--method smoothquant without --wbits writes fp32 weights: --format fake (the default), or give --wbits to quantize");
    if (verify && !evals.n) return cli_usage_error(&cmd, "--verify compares perplexities: give --eval FILE");
    if (strcmp(act_dtype, "f32") == 0) o->act_dtype = QC_DT_F32;
    else if (strcmp(act_dtype, "f16") == 0) o->act_dtype = QC_DT_F16;
    else if (strcmp(act_dtype, "bf16") == 0) o->act_dtype = QC_DT_BF16;
    else return cli_usage_error(&cmd, "--act-dtype '%s': expected f32, f16 or bf16", act_dtype);
    if (o->act_dtype != QC_DT_F32 && (qc_calib_rescales(o) || o->propagate_fp32))
        return cli_usage_error(&cmd, "--act-dtype %s is for gptq and rtn: AWQ and SmoothQuant search on fp32 activations", act_dtype);
    if (max_memory && !cli_parse_size(max_memory, &budget))
        return cli_usage_error(&cmd, "--max-memory '%s': expected a size such as 8G, 512M or 1.5GiB", max_memory);
    if ((rc = cli_compute(&cmd, compute_name))) return rc;
    if (out_path && (rc = check_out())) return rc;
    qc_err e = { "" };
    for (int i = 0; i < evals.n; i++) /* read after calibrating: checked now */
        if (qc_path_check_readable(evals.v[i], &e)) return cli_usage_error(&cmd, "--eval %s", e.msg);
    if ((rc = format_spec(&o->spec))) return rc;
    /* AWQ quantizes with its own parameters where the format has zero points to hold them */
    o->spec.awq_range = awq && !o->spec.sym && !o->spec.store_min;
    o->gptq = qc_gptq_defaults();
    o->gptq.percdamp = (float)percdamp;
    o->gptq.blocksize = (int)blocksize;
    o->gptq.max_retries = (int)damp_retries;
    o->gptq.act_order = act_order;
    o->gptq.static_groups = static_groups;
    o->true_sequential = !no_true_seq;
    if (act_quant && !qc_recipe_act_bits(act_quant, &act_bits))
        return cli_usage_error(&cmd, "--act-quant '%s': expected aN, N bits from 2 to 16 (a8: 8-bit activations)", act_quant);
    if ((rc = embed_spec(&o->spec, &o->embed))) return rc;
    if (resume && restart) return cli_usage_error(&cmd, "--resume and --restart exclude each other");
    if ((target_bpw > 0 || observe_k) && resume)
        return cli_usage_error(&cmd, "--resume covers single-pass runs; --target-bpw and --observe quantize twice");
    if ((target_bpw > 0 || observe_k) && (o->no_quant || awq))
        return cli_usage_error(&cmd, "--target-bpw and --observe choose bits per linear: for --method gptq and rtn");
    if (target_bpw > 0 && observe_k) return cli_usage_error(&cmd, "--target-bpw and --observe are two ways of choosing; give one");
    if (per_linear && (format != QC_FMT_GPTQ || !(target_bpw > 0 || observe_k)))
        return cli_usage_error(&cmd, "--per-linear is for --format gptq with --target-bpw or --observe (other formats "
                               "choose per linear already)");
    base_spec = o->spec;
    qc_quant_spec up;
    if (observe_k && (module_spec(NULL, 8, o->spec.groupsize, o->spec.sym, &up, &e) || up.bits != 8 ||
                      up.groupsize != o->spec.groupsize))
        return cli_usage_error(&cmd, "--observe requantizes linears at 8 bits in groups of %d, which --format %s cannot "
                               "store beside the others", o->spec.groupsize, qc_out_format_name(format));
    if (target_bpw > 0 && !mixed_candidates(NULL))
        return cli_usage_error(&cmd, "--target-bpw: --format %s stores none of the candidate settings (3, 4, 8 bits "
                               "in groups of 32, 128); --format gptq, gguf or fake", qc_out_format_name(format));
    return 0;
}

/* ---- per-linear settings: recipe rules, --target-bpw, --observe ---- */

/* The recipe's rules (and a base for the choices to come) as o->modules. */
static qc_status resolve_modules(const qc_model *m, qc_calib_opts *o, qc_err *e) {
    if (!recipe.nrules && !(target_bpw > 0) && !observe_k) return QC_OK;
    size_t n = (size_t)m->cfg.n_layers * QC_LIN_COUNT;
    if (!(mods = qc_calloc(n, sizeof *mods, e, "module settings"))) return QC_ERR_NOMEM;
    qc_status st = qc_recipe_modules(&recipe, &m->cfg, &o->spec, module_spec, NULL, mods, e);
    for (size_t i = 0; i < n && !st; i++)
        if (mods[i].keep_f16 && (format == QC_FMT_AWQ || format == QC_FMT_LLAMA2C))
            st = qc_fail(e, QC_ERR_ARG, "--format %s cannot hold unquantized linears: the recipe's skip list needs --format "
                         "gptq, gguf or fake", format == QC_FMT_AWQ ? "awq" : "llama2c");
    o->modules = mods;
    return st;
}

/* The candidates the format can store, into c (NULL: only counted): 3, 4, 8 bits × groups of
 * 32, 128 (the run's symmetry, else the other one: GGUF's 8-bit blocks are symmetric only). */
static int mixed_candidates(qc_quant_spec *c) {
    static const int bits[] = { 3, 4, 8 }, gs[] = { 32, 128 };
    int n = 0;
    for (int b = 0; b < 3; b++)
        for (int g = 0; g < 2; g++)
            for (int flip = 0; flip < 2; flip++) {
                qc_err ignored;
                qc_quant_spec s;
                if (!module_spec(NULL, bits[b], gs[g], flip ? !base_spec.sym : base_spec.sym, &s, &ignored)) {
                    if (c) c[n] = s;
                    n++;
                    break;
                }
            }
    return n;
}

/* The sites (q, k, v; gate, up) of all blocks whose linears do not share one setting. */
static int split_sites(const qc_config *c) {
    int n = 0;
    for (int l = 0; l < c->n_layers; l++)
        for (int s = 0; s < QC_SITE_COUNT; s++) {
            const qc_module_quant *first = NULL;
            bool split = false;
            for (int lin = 0; lin < QC_LIN_COUNT; lin++) {
                const qc_module_quant *mq = &mods[(size_t)l * QC_LIN_COUNT + lin];
                if ((int)qc_linear_site(lin) != s) continue;
                if (!first) first = mq;
                else split |= mq->keep_f16 != first->keep_f16 || (!mq->keep_f16 && !qc_quant_spec_same(&mq->spec, &first->spec));
            }
            n += split;
        }
    return n;
}

/* Whether the choices keep vLLM's fused groups (a block's q, k, v; gate, up) alike. */
static bool fused_groups(void) { return format == QC_FMT_GPTQ && !per_linear; }

/* --target-bpw: the measuring pass, then the choice, written into mods. */
static qc_status choose_mixed(qc_model *m, const qc_windows *w, const qc_calib_opts *o, const qc_log *log, qc_err *e) {
    qc_quant_spec cands[12];
    int nc = mixed_candidates(cands);
    if (!nc) return qc_fail(e, QC_ERR_ARG, "--target-bpw: the output format stores none of the candidate settings");
    double *err = qc_malloc((size_t)m->cfg.n_layers * QC_LIN_COUNT * nc, sizeof(double), e, "measured errors");
    if (!err) return QC_ERR_NOMEM;
    qc_logf(log, QC_LOG_INFO, "mixed precision: measuring every linear at %d candidate settings", nc);
    qc_status st = qc_mixed_measure(m, w, o, cands, nc, err, e);
    if (!st) st = qc_mixed_choose(&m->cfg, cands, nc, err, target_bpw, fused_groups(), mods, &mixed, e);
    if (!st && !(mixed_csv = cli_mixed_table(&m->cfg, mods, cands, nc, err))) st = qc_fail(e, QC_ERR_NOMEM, "out of memory");
    for (int j = 0; j < nc && !st; j++) {
        int count = 0;
        for (size_t i = 0; i < (size_t)m->cfg.n_layers * QC_LIN_COUNT; i++)
            count += !mods[i].keep_f16 && qc_quant_spec_same(&mods[i].spec, &cands[j]);
        char sn[32];
        cli_spec_name(&cands[j], sn, sizeof sn);
        if (count) qc_logf(log, QC_LOG_INFO, "mixed precision: %d linears at %s", count, sn);
    }
    if (!st)
        qc_logf(log, QC_LOG_INFO, "mixed precision: estimated %.4f bits per weight (target %g), summed KL divergence %.6g nats per token",
                mixed.bpw, target_bpw, mixed.est_err);
    free(err);
    return st;
}

/* --dump-recipe: the effective recipe, its rules checked against the model. */
static int print_recipe(qc_calib_opts *o) {
    qc_err e = { "" };
    qc_model *m = NULL;
    qc_status st = qc_model_open(&m, model_path, &e);
    if (!st) st = resolve_modules(m, o, &e);
    if (!st) printf("%s\n", recipe_text);
    free(mods);
    free(recipe_text);
    qc_model_free(m);
    qc_recipe_free(&recipe);
    return st == QC_ERR_ARG ? cli_usage_error(&cmd, "%s", e.msg) : st ? cli_fail(&e) : 0;
}

/* The memory budget: --max-memory, else MemAvailable, else 0 (no /proc/meminfo: none known). */
static uint64_t memory_limit(const char **source) {
    uint64_t limit = budget;
    *source = "--max-memory";
    if (!limit) {
        *source = "MemAvailable (--max-memory not given)";
        if (!cli_mem_available(&limit)) limit = 0;
    }
    return limit;
}

static void make_plan(const qc_model *m, const qc_windows *w, const qc_calib_opts *o) {
    qc_mem_plan_make(m->ck, w->n, w->seqlen, o, target_bpw > 0 ? mixed_candidates(NULL) : 0, qc_get_threads(), &plan);
    qc_mem_plan_count_text(&plan, text_read, text_bound);
}

/* The memory plan, printed; when the budget does not hold the block activations kept between
 * true-sequential sites, they are recomputed instead (o->recompute); a plan beyond the budget
 * even then is refused before anything is computed. */
static qc_status check_plan(const qc_model *m, const qc_windows *w, qc_calib_opts *o, const qc_log *log, qc_err *e) {
    const char *source;
    uint64_t limit = memory_limit(&source);
    make_plan(m, w, o);
    if (limit && (uint64_t)plan.peak > limit && plan.intermediates && !plan.recomputed) {
        o->recompute = true;
        make_plan(m, w, o);
    }
    char text[1024];
    qc_mem_plan_describe(&plan, o, text, sizeof text);
    qc_logf(log, QC_LOG_INFO, "%s", text);
    if (!limit) return QC_OK; /* nothing to check against */
    if ((uint64_t)plan.peak <= limit) return QC_OK;
    return qc_fail(e, QC_ERR_NOMEM,
                   "the memory plan needs %.0f MB but %s allows %.0f MB; %s. Fewer --nsamples or a shorter --seqlen, "
                   "--act-dtype f16, or a larger --max-memory",
                   (double)plan.peak / (1 << 20), source, (double)limit / (1 << 20), text);
}

static void print_report(const qc_quantized *q, const qc_calib_opts *o, const eval_row *rows, int nrows) {
    double sum = 0;
    int fb = 0;
    for (int i = 0; i < q->nreports; i++) sum += q->reports[i].rel_err, fb += q->reports[i].fallback;
    char tag[64];
    if (o->no_quant) snprintf(tag, sizeof tag, "smoothquant a%.2g", o->smooth_alpha);
    else if (o->spec.groupsize > 0) snprintf(tag, sizeof tag, "%s w%dg%d", qc_method_name(o->method), o->spec.bits, o->spec.groupsize);
    else snprintf(tag, sizeof tag, "%s w%d per-row", qc_method_name(o->method), o->spec.bits);
    if (target_bpw > 0) snprintf(tag, sizeof tag, "%s %gbpw", qc_method_name(o->method), target_bpw);
    if (observe_k) snprintf(tag + strlen(tag), sizeof tag - strlen(tag), " +obs%d", observed);
    if (o->no_quant) printf("smoothed %d blocks (α %g), weights kept fp32, in %.1f s\n", q->n_layers, o->smooth_alpha, q->seconds);
    else printf("quantized %d linear layers (%s%s) in %.1f s: mean relative output error %.4g, %d fallback%s\n",
           q->nreports, tag, o->spec.sym ? " sym" : "", q->seconds, q->nreports ? sum / q->nreports : 0, fb,
           fb == 1 ? "" : "s");
    if (target_bpw > 0) printf("mixed precision: estimated %.4f bits per weight for a target of %g\n", mixed.bpw, target_bpw);
    if (file_bpw > 0)
        printf("the file's linears: %.4f bits per weight%s\n", file_bpw, format == QC_FMT_GPTQ ? " (g_idx apart)" : "");
    printf("wrote %s%s\n", out_path, qc_str_ends_with(out_path, "/") ? "" : "/");
    if (!nrows) return;
    printf("\n%-40s %7s %12s %12s%s %9s\n", "perplexity", "seqlen", "fp32", tag, observe_k ? "   first pass" : "", "change");
    for (int i = 0; i < nrows; i++) {
        printf("%-40s %7d %12.4f %12.4f", rows[i].text, rows[i].fp32.seqlen, rows[i].fp32.ppl, rows[i].quant.ppl);
        if (observe_k) printf(" %12.4f", rows[i].first.ppl);
        printf(" %+8.2f%%\n", 100 * (rows[i].quant.ppl - rows[i].fp32.ppl) / rows[i].fp32.ppl);
    }
}

int cmd_quantize(int argc, char **argv, int first) {
    int rc = cli_parse(&cmd, argc, argv, first);
    if (rc) return rc < 0 ? 0 : rc;
    qc_calib_opts o = { 0 };
    qc_err e = { "" };
    if (load_recipe(&e)) return cli_fail(&e);
    apply_recipe(&recipe);
    if ((rc = check_options(&o))) return rc;
    qc_run_desc desc;
    describe_run(&o, &desc);
    qc_run_desc_recipe(&desc, &recipe);
    if (!(recipe_text = qc_recipe_dump(&recipe))) return qc_fail(&e, QC_ERR_NOMEM, "out of memory"), cli_fail(&e);
    if (dump_recipe) return print_recipe(&o);
    desc.recipe_text = recipe_text;
    cli_threads(threads);
    desc.threads = qc_get_threads();
    desc.compute = qc_get_compute();
    desc.matmul_isa = qc_matmul_isa();
    qc_log log = cli_log(quiet || json);
    o.log = &log;
    cli_log_compute(&log);
    qc_logf(&log, QC_LOG_INFO, "output format %s: %s", qc_out_format_name(format), chosen.reason);
    qc_model *m = NULL, *qm = NULL, *mm = NULL, *m1 = NULL;
    qc_quantized q1 = { 0 }; /* --observe: the first pass */
    qc_tokenizer tok = { 0 };
    qc_windows w = { 0 };
    qc_quantized q = { 0 };
    qc_outdir d = { 0 };
    eval_row rows[CLI_LIST_MAX] = { 0 };
    cJSON *summary = NULL;
    qc_status st = qc_model_open(&m, model_path, &e);
    bool need_tok = calib.n || evals.n || tok_path || format == QC_FMT_GGUF, have_tok = need_tok;
    if (!st && need_tok) {
        st = cli_tokenizer(tok_path, m->ck, &tok, &e);
    } else if (!st) { /* --calib-tokens alone: the output still carries the vocabulary beside the model */
        st = qc_checkpoint_find_tokenizer(NULL, m->ck, &tok, &have_tok, &e);
        if (!st && !have_tok) qc_logf(&log, QC_LOG_WARN, "%s: the output folder will carry no vocabulary", e.msg);
    }
    if (!st && (format == QC_FMT_GGUF || format == QC_FMT_LLAMA2C || format == QC_FMT_AWQ)) { /* groups must tile rows */
        int g = o.spec.groupsize > 0 ? o.spec.groupsize : 1;
        int before = m->cfg.hidden_dim, multiple = format == QC_FMT_GGUF ? 32 : format == QC_FMT_AWQ && g % 8 ? g * 8 : g;
        if (format == QC_FMT_GGUF && gguf_no_pad) {
            for (int lin = 0; lin < QC_LIN_COUNT; lin++) {
                int nrows, cols;
                qc_weight_shape(&m->cfg, qc_linear_weight(lin), &nrows, &cols);
                o.keep_f16[lin] = cols % 32 != 0;
                if (o.keep_f16[lin])
                    qc_logf(&log, QC_LOG_WARN, "%s rows of %d are not whole 32-blocks: kept as F16 (--gguf-no-pad)",
                            qc_weight_short_name(qc_linear_weight(lin)), cols);
            }
        } else if (!(st = qc_model_pad_ffn(m, multiple, &e)) && m->cfg.hidden_dim != before) {
            qc_logf(&log, QC_LOG_INFO, "FFN width %d padded with zeros to %d (an exact change) so groups of %d tile every row",
                    before, m->cfg.hidden_dim, multiple);
        }
    }
    bool usage = false; /* what the recipe or format cannot hold is a usage error, found before calibrating */
    if (!st) usage = (st = resolve_modules(m, &o, &e)) == QC_ERR_ARG;
    if (!st) {
        qc_gguf_export_opts go = { QC_GGUF_F16, gguf_embed_t, gguf_output_t, have_tok ? &tok : NULL, model_path };
        qc_format_run fr = { format, &m->cfg, model_path, m->ck, &o, &go };
        usage = (st = qc_format_check_run(&fr, &e)) != QC_OK;
    }
    if (!st && have_tok && (format != QC_FMT_GGUF || tok.hf)) /* the tokenizer the folder will carry */
        usage = (st = qc_tokenizer_check_write(&tok, tokenizer_hf(m), &e)) != QC_OK;
    qc_quant_spec cands[12];
    if (!st && target_bpw > 0) /* the cheapest candidates against the budget, before measuring them */
        usage = (st = qc_mixed_check_budget(&m->cfg, cands, mixed_candidates(cands), target_bpw, fused_groups(), mods,
                                            &e)) != QC_OK;
    if (!st) {
        int sl = seqlen ? (int)seqlen : qc_config_default_seqlen(&m->cfg);
        const char *source;
        text_bound = qc_mem_plan_text_bound(memory_limit(&source), qc_get_threads());
        st = tokens_path ? qc_windows_load_npy(tokens_path, &w, &e)
                         : qc_windows_draw_within(&tok, calib.v, calib.n, (int)nsamples, sl, (uint64_t)seed, text_bound,
                                                 &text_read, &w, &e);
        if (!st && tokens_path) st = qc_windows_check_vocab(&w, m->cfg.vocab_size, tokens_path, &e);
    }
    if (!st)
        qc_logf(&log, QC_LOG_INFO, "calibrating %s on %d windows of %d tokens; %s w%d, groupsize %d%s", model_path,
                w.n, w.seqlen, qc_method_name(o.method), o.spec.bits, o.spec.groupsize > 0 ? o.spec.groupsize : -1,
                o.spec.sym ? ", symmetric" : "");
    int sl_eval = eval_seqlen ? (int)eval_seqlen : w.seqlen;
    for (int i = 0; i < evals.n && !st; i++) /* each --eval text fills a window: checked now, evaluated at the end */
        st = eval_windows(&tok, evals.v[i], sl_eval, &usage, &e);
    desc.model = m, desc.windows = &w;
    summary = st ? NULL : qc_run_desc_json(&desc);
    char *fingerprint = summary ? qc_run_desc_fingerprint(summary) : NULL;
    if (!st && !fingerprint) st = qc_fail(&e, QC_ERR_NOMEM, "out of memory");
    /* results wait in a scratch file (unlinked at once) beside the output, not in memory */
    char *spill_dir = qc_path_dirname(out_path);
    if (!st && !spill_dir) st = qc_fail(&e, QC_ERR_NOMEM, "out of memory");
    o.spill_dir = spill_dir;
    /* a plan beyond the budget is refused before DIR.work is made or discarded */
    if (!st) usage = (st = check_plan(m, &w, &o, &log, &e)) != QC_OK;
    qc_resume *rs = NULL;
    bool two_pass = target_bpw > 0 || observe_k; /* checkpoints cover single passes */
    if (!st && restart) st = qc_resume_discard(out_path, &e);
    /* every run holds DIR.work (the lock on DIR); single passes of gptq and rtn checkpoint in it */
    if (!st && !(st = qc_resume_open(&rs, out_path, m, &o, fingerprint, resume, &e)) && !two_pass && !qc_calib_rescales(&o))
        o.checkpoint = qc_resume_checkpoint(rs);
    free(fingerprint);
    if (!st && target_bpw > 0) st = choose_mixed(m, &w, &o, &log, &e);
    if (!st && observe_k) { /* the first pass, and its worst linears at 8 bits */
        qc_quant_spec up;
        st = qc_calibrate(m, &w, &o, &q1, &e);
        if (!st) st = module_spec(NULL, 8, o.spec.groupsize, o.spec.sym, &up, &e);
        if (!st && (up.bits != 8 || up.groupsize != o.spec.groupsize))
            st = qc_fail(&e, QC_ERR_ARG, "--observe: the output format cannot store 8-bit linears beside the others");
        if (!st) observed = qc_observe_upgrade(&q1, (int)observe_k, &up, fused_groups(), mods);
        if (!st)
            qc_logf(&log, QC_LOG_INFO, "--observe: %d linears of the largest output error requantized at 8 bits%s",
                    observed, fused_groups() ? ", each with the linears vLLM fuses it with" : "");
    }
    int split = !st && mods && format == QC_FMT_GPTQ ? split_sites(&m->cfg) : 0;
    if (split)
        qc_logf(&log, QC_LOG_WARN, "%s gives %d group%s of q, k, v or gate, up of one block different settings: "
                "GPTQModel loads the file, vLLM (which runs each group as one layer) does not",
                per_linear ? "--per-linear" : "the recipe", split, split == 1 ? "" : "s");
    if (!st) st = qc_calibrate(m, &w, &o, &q, &e);
    if (!st) st = qc_outdir_open(&d, out_path, force, &e);
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(summary, "model"));
    double t_write = qc_now();
    if (!st) st = write_outputs(&d, m, &q, &o, name, have_tok ? &tok : NULL, &log, &e);
    write_seconds = qc_now() - t_write;
    if (!st && (format == QC_FMT_GPTQ || format == QC_FMT_GGUF))
        st = cli_file_bpw(&d, format == QC_FMT_GPTQ, &m->cfg, mods, &file_bpw, &file_bpw_gidx, &e);
    qc_weight_source qsrc = { 0 };
    if (!st && evals.n) st = qc_model_open(&qm, d.tmp, &e); /* the model as written */
    if (!st && verify) { /* the written file with its linears replaced by the solver's, from memory */
        qsrc = qc_quantized_source(&q);
        st = qc_model_open(&mm, d.tmp, &e);
        if (!st) qc_model_set_linears(mm, &qsrc);
    }
    qc_weight_source qsrc1 = { 0 };
    if (!st && observe_k && evals.n) { /* the same file with the first pass's linears */
        qsrc1 = qc_quantized_source(&q1);
        st = qc_model_open(&m1, d.tmp, &e);
        if (!st) qc_model_set_linears(m1, &qsrc1);
    }
    for (int i = 0; i < evals.n && !st; i++) {
        rows[i].text = evals.v[i];
        st = eval_text(m, &tok, evals.v[i], sl_eval, 0, &rows[i].fp32, &log, &e);
        if (!st) st = eval_text(qm, &tok, evals.v[i], sl_eval, act_bits, &rows[i].quant, &log, &e);
        if (!st && verify) st = eval_text(mm, &tok, evals.v[i], sl_eval, act_bits, &rows[i].memory, &log, &e);
        if (!st && m1) st = eval_text(m1, &tok, evals.v[i], sl_eval, act_bits, &rows[i].first, &log, &e);
        if (!st && verify && rows[i].memory.nll != rows[i].quant.nll)
            st = qc_fail(&e, QC_ERR_NUMERIC, "--verify: on %s the written model's mean NLL %.17g differs from the in-memory model's %.17g",
                         evals.v[i], rows[i].quant.nll, rows[i].memory.nll);
    }
    if (!st) {
        summary_json(summary, &q, rows, evals.n);
        st = write_json(&d, "summary.json", summary, &e);
    }
    if (!st) st = qc_outdir_commit(&d, &e);
    else qc_outdir_abort(&d);
    qc_resume_close(rs, !st, &e);
    if (!st) {
        cli_log_done();
        if (json) {
            char *s = cJSON_Print(summary);
            printf("%s\n", s);
            free(s);
        } else {
            print_report(&q, &o, rows, evals.n);
        }
    }
    cJSON_Delete(summary);
    qc_model_free(qm);
    qc_model_free(mm);
    qc_model_free(m1);
    qc_quantized_free(&q);
    qc_quantized_free(&q1);
    free(mods);
    free(mixed_csv);
    free(recipe_text);
    qc_recipe_free(&recipe);
    qc_windows_free(&w);
    qc_tokenizer_free(&tok);
    qc_model_free(m);
    free(spill_dir);
    return st ? usage ? cli_usage_error(&cmd, "%s", e.msg) : cli_fail(&e) : 0;
}
