/* cmd_quantize.c — `qcalib quantize` (also `qcalib --method ...`): the options parsed into a
 * job's settings (job/), usage errors, the terminal log, and the report printed at the end.
 * The run itself — formats, calibration, the output folder, evaluation — is the job's. */
#include "cli/cli.h"
#include "job/job.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static qc_job_settings S; /* the options' destinations (qc_job_settings_init first) */
static cli_list calib, evals;
static const char *max_memory, *compute_name = "f32";
static bool dump_recipe, json, quiet;
static long threads;

static const cli_opt opts[] = {
    { "model", OPT_STR, &S.model, "PATH", "model to quantize: llama2.c .bin or Hugging Face folder (required)", 0, 0 },
    { "quantize", OPT_STR, &S.recipe, "RECIPE", "a JSON recipe, inline ('{...}') or a file: method, linear:int4 / int8 / a8w4dq, embedding, per-module overrides, skip list (see below); flags given beside it win", 0, 0 },
    { "dump-recipe", OPT_FLAG, &dump_recipe, NULL, "print the effective recipe (the --quantize recipe, the flags and the defaults) as JSON and exit; needs only --model", 0, 0 },
    { "calib", OPT_LIST, &calib, "FILE", "calibration text: plain, .jsonl or .json.gz; repeat to mix sources", 0, 0 },
    { "calib-tokens", OPT_STR, &S.calib_tokens, "FILE", "calibration windows as a NumPy int32/int64 array (nsamples, seqlen), used as they are", 0, 0 },
    { "out", OPT_STR, &S.out, "DIR", "output folder (required; must not exist unless --force)", 0, 0 },
    { "method", OPT_STR, &S.method, "NAME", "gptq (default), rtn (round-to-nearest, the baseline), awq, awq+gptq (AWQ's scales and clipping, then GPTQ) or smoothquant (smoothing, then round-to-nearest with --wbits, else an fp32 checkpoint)", 0, 0 },
    { "alpha", OPT_FLOAT, &S.alpha, "A", "smoothquant: migration strength α (default 0.5)", 0, 1 },
    { "smooth", OPT_FLOAT, &S.smooth, "A", "SmoothQuant smoothing with α = A before --method gptq, rtn, awq or awq+gptq", 1e-6, 1 },
    { "awq-duo-scaling", OPT_FLAG, &S.awq_duo, NULL, "awq: AutoAWQ's scales that also use the weights' magnitudes", 0, 0 },
    { "awq-clip", OPT_FLAG, &S.awq_clip, NULL, "awq: search each group's clipping range (the default; not for q, k)", 0, 0 },
    { "no-awq-clip", OPT_FLAG, &S.no_awq_clip, NULL, "awq: no clipping search", 0, 0 },
    { "propagate", OPT_STR, &S.propagate, "P", "the next block's inputs: fp32 (from the unquantized, rescaled block; default for awq) or quantized (default otherwise)", 0, 0 },
    { "format", OPT_STR, &S.format, "F", "output: gptq, gguf, awq, llama2c (int8), fake (dequantized); default: gguf when a --gguf-* option is given, else gptq when it holds every setting given, else fake", 0, 0 },
    { "wbits", OPT_INT, &S.wbits, "N", "bits per weight, 2..8 (default 4; gguf: 4 or 8; llama2c: 8)", 2, 8 },
    { "groupsize", OPT_INT, &S.groupsize, "N", "columns per quantization group; -1 or 0: one group per row (default 128; gguf: 32; llama2c: 64)", -1, 1 << 20 },
    { "sym", OPT_FLAG, &S.sym, NULL, "symmetric quantization (default asymmetric, as the GPTQ reference)", 0, 0 },
    { "mse", OPT_FLAG, &S.mse, NULL, "search each group's clipping range for the least error (norm 2.4)", 0, 0 },
    { "percdamp", OPT_FLOAT, &S.percdamp, "F", "GPTQ damping, relative to mean(diag H) (default 0.01)", 0, 1e6 },
    { "damp-retries", OPT_INT, &S.damp_retries, "N", "GPTQ: when the Hessian will not factorize, raise the damping x10 up to N times, then use round-to-nearest (default 4)", 0, 12 },
    { "blocksize", OPT_INT, &S.blocksize, "N", "GPTQ columns per lazy-update block (default 128)", 1, 1 << 20 },
    { "act-order", OPT_FLAG, &S.act_order, NULL, "GPTQ: quantize columns by decreasing Hessian diagonal", 0, 0 },
    { "static-groups", OPT_FLAG, &S.static_groups, NULL, "GPTQ: group parameters from the unmodified weights", 0, 0 },
    { "true-sequential", OPT_FLAG, &S.true_sequential, NULL, "quantize {q,k,v}, {o}, {gate,up}, {down} in turn (the default)", 0, 0 },
    { "no-true-sequential", OPT_FLAG, &S.no_true_sequential, NULL, "calibrate all linears of a block on fp32 block inputs at once", 0, 0 },
    { "checkpoint-format", OPT_STR, &S.checkpoint_format, "V", "gptq: v1 (qzeros hold zero - 1, what most loaders read; default) or v2", 0, 0 },
    { "gguf-type", OPT_STR, &S.gguf_type, "T", "gguf: block type of the linears, q4_0, q4_1 or q8_0 (default: q8_0 for --wbits 8, q4_1 for a recipe's sym false, else q4_0), a K-quant q3_k, q4_k, q5_k (every tensor), or llama.cpp's mixes q2_k, q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k (--method rtn or gptq; with gptq the embedding and output are calibrated too); implies --format gguf", 0, 0 },
    { "gguf-embed-type", OPT_STR, &S.gguf_embed_type, "T", "gguf: token embedding type, q4_0 q4_1 q8_0 q2_k..q6_k f16 f32 (default: --gguf-type, or the mix's)", 0, 0 },
    { "gguf-output-type", OPT_STR, &S.gguf_output_type, "T", "gguf: output (classifier) type (default q8_0; a K-quant mix: q6_k, or q8_0 when the width is not whole 256-blocks)", 0, 0 },
    { "gguf-no-pad", OPT_FLAG, &S.gguf_no_pad, NULL, "gguf: do not pad the FFN to a multiple of 32; linears that cannot be blocked stay F16", 0, 0 },
    { "embed-bits", OPT_INT, &S.embed_bits, "N", "quantize the token embedding too: 4 or 8 bits, symmetric (formats gguf, llama2c, fake)", 4, 8 },
    { "embed-groupsize", OPT_INT, &S.embed_groupsize, "N", "columns per group of the embedding, 0: one group per row (default 0; gguf: 32; llama2c: --groupsize)", 0, 1 << 20 },
    { "act-quant", OPT_STR, &S.act_quant, "aN", "the runtime quantizes activations per token to N bits (a8w4dq: a8): --eval measures the quantized model so", 0, 0 },
    { "target-bpw", OPT_FLOAT, &S.target_bpw, "B", "mixed precision: measure every linear at 3/4/8 bits in groups of 32/128 (what --format stores; a GGUF K-quant --gguf-type: Q3_K..Q6_K), then give each the setting that minimizes the summed KL divergence of the model's predictions within B bits per weight", 1, 16 },
    { "observe", OPT_INT, &S.observe, "K", "quantize, then quantize again with the K linears of largest output error at 8 bits (--format gptq: each with the linears vLLM fuses it with; a K-quant --gguf-type: as Q8_0)", 1, 1 << 20 },
    { "per-linear", OPT_FLAG, &S.per_linear, NULL, "--format gptq: let --target-bpw and --observe set q, k, v (gate, up) of a block apart; GPTQModel loads such a file, vLLM (one fused layer per group) does not", 0, 0 },
    { "nsamples", OPT_INT, &S.nsamples, "N", "calibration windows (default 128)", 1, 1 << 20 },
    { "seqlen", OPT_INT, &S.seqlen, "N", "tokens per calibration window (default: the model's context, at most 2048)", 2, 1 << 20 },
    { "seed", OPT_INT, &S.seed, "N", "seed of the window sampler, as Python's random.seed (default 0)", 0, 2147483647 },
    { "tokenizer", OPT_STR, &S.tokenizer, "FILE", "tokenizer.json or llama2.c tokenizer (default: tokenizer.json, tokenizer.bin or tok<vocab>.bin beside the model)", 0, 0 },
    { "eval", OPT_LIST, &evals, "FILE", "after quantizing, print fp32 and quantized perplexity on this text; repeatable", 0, 0 },
    { "eval-seqlen", OPT_INT, &S.eval_seqlen, "N", "window length for --eval (default: --seqlen)", 2, 1 << 20 },
    { "verify", OPT_FLAG, &S.verify, NULL, "with --eval: also evaluate the solver's linears from memory (the file's other tensors as written); fail unless the file gives the same perplexity", 0, 0 },
    { "json", OPT_FLAG, &json, NULL, "print the summary as JSON (as written to DIR/summary.json)", 0, 0 },
    { "force", OPT_FLAG, &S.force, NULL, "replace an existing output folder", 0, 0 },
    { "resume", OPT_FLAG, &S.resume, NULL, "continue an interrupted run after its last finished block (checkpointed in DIR.work; same options and inputs)", 0, 0 },
    { "restart", OPT_FLAG, &S.restart, NULL, "discard the checkpoints of an interrupted run in DIR.work and start afresh", 0, 0 },
    { "max-memory", OPT_STR, &max_memory, "SIZE", "refuse to start when the memory plan needs more than SIZE (e.g. 8G, 512M; default: the kernel's MemAvailable)", 0, 0 },
    { "act-dtype", OPT_STR, &S.act_dtype, "T", "calibration activations between blocks: f32 (default), f16 or bf16 (half the memory, rounded once per block)", 0, 0 },
    { "threads", OPT_INT, &threads, "N", "threads (default: OMP_NUM_THREADS if set, else every core; under mpirun, shared by a machine's ranks)", 0, 4096 },
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
    "           of 32 first (exact) so every linear is blocks; K-quants (rtn, gptq): q3_k,\n"
    "           q4_k, q5_k for every tensor, or llama.cpp's mixes (q4_k_m, ...) with its per-tensor\n"
    "           types and its fallbacks for rows that are not whole 256-blocks (reported; refused,\n"
    "           naming the tensor, where the fallback is a type qcalib does not write)\n"
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
    "several processes or machines: mpirun -np N qcalib ... calibrates on N ranks, each pushing\n"
    "its share of the windows; the ranks sum each site's statistics, each linear is solved by one\n"
    "rank and shared, rank 0 writes DIR and prints. Every node needs the same qcalib, model and\n"
    "texts at the same paths (compared at start); --threads defaults to a machine's cores divided\n"
    "by its ranks. See docs/distributed.md.\n\n"
    "example:\n"
    "  qcalib --method gptq --wbits 4 --groupsize 32 --model stories260K.bin \\\n"
    "         --calib tinystories_calib.txt --out q4 --eval tinystories_eval.txt",
};

/* --out against --force and every input of the run (model, texts, tokenizer, recipe file). */
static int check_out(void) {
    const char *in[2 * CLI_LIST_MAX + 4] = { S.model, S.calib_tokens, S.tokenizer, S.recipe };
    int n = 4;
    for (int i = 0; i < calib.n; i++) in[n++] = calib.v[i];
    for (int i = 0; i < evals.n; i++) in[n++] = evals.v[i];
    return cli_check_out(&cmd, S.out, S.force, in, n);
}

/* What the command line alone decides: the required options, --max-memory (else the kernel's
 * MemAvailable), --compute, --out. 0, or a usage error (printed). */
static int check_command_line(void) {
    if (!S.model) return cli_usage_error(&cmd, "--model is required");
    if (!S.out && !dump_recipe) return cli_usage_error(&cmd, "--out is required");
    if (!calib.n && !S.calib_tokens && !dump_recipe)
        return cli_usage_error(&cmd, "give calibration text with --calib FILE (or --calib-tokens FILE.npy)");
    if (calib.n && S.calib_tokens) return cli_usage_error(&cmd, "--calib and --calib-tokens exclude each other");
    S.calib = calib.v, S.ncalib = calib.n, S.evals = evals.v, S.nevals = evals.n;
    S.memory_limit_from = "--max-memory";
    if (max_memory && !cli_parse_size(max_memory, &S.memory_limit))
        return cli_usage_error(&cmd, "--max-memory '%s': expected a size such as 8G, 512M or 1.5GiB", max_memory);
    if (!max_memory) {
        S.memory_limit_from = "MemAvailable (--max-memory not given)";
        if (!cli_mem_available(&S.memory_limit)) S.memory_limit = 0;
    }
    int rc = cli_compute(&cmd, compute_name);
    if (!rc && S.out) rc = check_out();
    return rc;
}

static void print_report(const qc_job_summary *r) {
    const qc_calib_opts *o = r->opts;
    const char *method = qc_method_name(o->method);
    char tag[64];
    if (o->no_quant) snprintf(tag, sizeof tag, "smoothquant a%.2g", o->smooth_alpha);
    else if (o->spec.groupsize > 0) snprintf(tag, sizeof tag, "%s w%dg%d", method, o->spec.bits, o->spec.groupsize);
    else snprintf(tag, sizeof tag, "%s w%d per-row", method, o->spec.bits);
    if (r->target_bpw > 0) snprintf(tag, sizeof tag, "%s %gbpw", method, r->target_bpw);
    if (r->observe) snprintf(tag + strlen(tag), sizeof tag - strlen(tag), " +obs%d", r->observed);
    if (o->no_quant) printf("smoothed %d blocks (α %g), weights kept fp32, in %.1f s\n", r->n_layers, o->smooth_alpha, r->seconds);
    else printf("quantized %d linear layers (%s%s) in %.1f s: mean relative output error %.4g, %d fallback%s\n",
                r->modules, tag, o->spec.sym ? " sym" : "", r->seconds, r->mean_rel_err, r->fallbacks,
                r->fallbacks == 1 ? "" : "s");
    if (r->target_bpw > 0) printf("mixed precision: estimated %.4f bits per weight for a target of %g\n", r->mixed_bpw, r->target_bpw);
    if (r->file_bpw > 0) printf("the file's linears: %.4f bits per weight%s\n", r->file_bpw, r->format->bpw_note);
    printf("wrote %s%s\n", S.out, qc_str_ends_with(S.out, "/") ? "" : "/");
    if (!r->nevals) return;
    printf("\n%-40s %7s %12s %12s%s %9s\n", "perplexity", "seqlen", "fp32", tag, r->observe ? "   first pass" : "", "change");
    for (int i = 0; i < r->nevals; i++) {
        const qc_job_eval *v = &r->evals[i];
        printf("%-40s %7d %12.4f %12.4f", v->text, v->fp32.seqlen, v->fp32.ppl, v->quant.ppl);
        if (r->observe) printf(" %12.4f", v->first.ppl);
        printf(" %+8.2f%%\n", 100 * (v->quant.ppl - v->fp32.ppl) / v->fp32.ppl);
    }
}

static int quantize(qc_dist *dist, int argc, char **argv, int first) {
    qc_job_settings_init(&S);
    int rc = cli_parse(&cmd, argc, argv, first);
    if (rc) return rc < 0 ? 0 : rc;
    qc_err e = { "" };
    qc_job *j = NULL;
    if (qc_job_open(&S, &j, &e)) return cli_fail(&e);
    qc_status st = QC_OK;
    if ((rc = check_command_line())) goto done;
    if (qc_job_plan(j, &e)) {
        rc = cli_usage_error(&cmd, "%s", e.msg);
        goto done;
    }
    if (dump_recipe) { /* the effective recipe, its rules checked against the model */
        if (!(st = qc_job_check_recipe(j, &e))) printf("%s\n", qc_job_recipe(j));
        rc = st == QC_ERR_ARG ? cli_usage_error(&cmd, "%s", e.msg) : st ? cli_fail(&e) : 0;
        goto done;
    }
    cli_ranks_threads(dist, threads);
    qc_log log = cli_log(quiet || json);
    cli_log_compute(&log);
    qc_job_hooks hooks = { &log, NULL, NULL, dist };
    if ((st = qc_job_run(j, &hooks, &e))) {
        rc = qc_job_usage(j) ? cli_usage_error(&cmd, "%s", e.msg) : cli_ranks_fail(dist, &e);
        goto done;
    }
    if (qc_dist_rank(dist) > 0) goto done; /* rank 0 reports */
    cli_log_done();
    const qc_job_summary *r = qc_job_summary_of(j);
    if (json) {
        char *s = cJSON_Print(r->json);
        printf("%s\n", s);
        free(s);
    } else {
        print_report(r);
    }
done:
    qc_job_free(j);
    return rc;
}

int cmd_quantize(int argc, char **argv, int first) {
    qc_dist *dist = NULL;
    int rc = cli_ranks_open(&dist);
    if (!rc) rc = quantize(dist, argc, argv, first);
    cli_ranks_close(dist);
    return rc;
}
