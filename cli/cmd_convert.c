/* cmd_convert.c — `qcalib convert`: a checkpoint rewritten in full precision as a Hugging
 * Face folder, a GGUF or a llama2.c .bin, atomically: the options and usage errors; the
 * formats' rules and writers are job/'s (qc_job_convert). */
#include "cli/cli.h"
#include "job/job.h"

static const char *model_path, *out_path, *to = "hf", *dtype_name = "f32", *tok_path;
static long shard_mb, threads, pad_to;
static bool force, quiet;

static const cli_opt opts[] = {
    { "model", OPT_STR, &model_path, "PATH", "input: llama2.c .bin or Hugging Face folder (required)", 0, 0 },
    { "out", OPT_STR, &out_path, "PATH", "output folder (hf) or file (llama2c) (required)", 0, 0 },
    { "to", OPT_STR, &to, "FORMAT", "hf (default), gguf or llama2c", 0, 0 },
    { "dtype", OPT_STR, &dtype_name, "TYPE", "hf: f32 (default), f16 or bf16; gguf: f32 or f16", 0, 0 },
    { "tokenizer", OPT_STR, &tok_path, "FILE", "hf, gguf: the vocabulary to write (default: the model's own, or beside it)", 0, 0 },
    { "shard-size", OPT_INT, &shard_mb, "MB", "hf: split into shards of at most MB megabytes, with an index", 1, 1 << 24 },
    { "pad-to", OPT_INT, &pad_to, "N", "widen with zeros so every matrix's input width is a multiple of N (a multiple of 32; 256 for K-quants): the same function", 1, 1 << 17 },
    { "force", OPT_FLAG, &force, NULL, "replace an existing output", 0, 0 },
    { "threads", OPT_INT, &threads, "N", "threads (default: OMP_NUM_THREADS if set, else every core)", 0, 4096 },
    { "quiet", OPT_FLAG, &quiet, NULL, "no progress display", 0, 0 },
    { 0 },
};

static const cli_cmd cmd = {
    "convert", "--model PATH --out PATH [--to hf|gguf|llama2c] [--dtype f32|f16|bf16] [--pad-to N]",
    "Rewrites a checkpoint in full precision. hf writes config.json and model.safetensors (or\n"
    "shards with model.safetensors.index.json) with Q/K rows in Hugging Face's rotate-half\n"
    "layout, and the model's tokenizer as tokenizer.json and tokenizer_config.json; gguf\n"
    "writes one .gguf file for llama.cpp (tensors F32 or F16, norms F32, the vocabulary\n"
    "embedded); llama2c writes llama2.c's legacy fp32 .bin. Any format qcalib reads,\n"
    "quantized ones included, can be the input. The output appears only when complete.\n"
    "--pad-to N appends zero channels to the residual stream and the FFN and whole zero\n"
    "heads (head_dim and the GQA ratio kept) until every matrix's input width is a multiple\n"
    "of N, rescaling each RMSNorm's weight by sqrt(d/d') and eps by d/d': the padded model\n"
    "computes the same logits (within fp32 rounding), and its rows tile llama.cpp's K-quant\n"
    "blocks of 256.",
    opts,
    "examples:\n  qcalib convert --model stories260K.bin --out stories260K-hf --dtype f16\n"
    "  qcalib convert --model tinystories-656K --to gguf --dtype f16 --pad-to 256 --out ts656k-pad.gguf",
};

int cmd_convert(int argc, char **argv) {
    int rc = cli_parse(&cmd, argc, argv, 2);
    if (rc) return rc < 0 ? 0 : rc;
    if (!model_path) return cli_usage_error(&cmd, "--model is required");
    if (!out_path) return cli_usage_error(&cmd, "--out is required");
    qc_convert_settings s = { model_path, out_path, to, dtype_name, tok_path, shard_mb, force, pad_to };
    qc_convert_target t;
    qc_err e = { "" };
    if (qc_job_convert_plan(&s, &t, &e)) return cli_usage_error(&cmd, "%s", e.msg);
    const char *inputs[] = { model_path, tok_path };
    if (t.row->convert_folder && (rc = cli_check_out(&cmd, out_path, force, inputs, 2))) return rc;
    if (!t.row->convert_folder && qc_job_convert_check_file(&s, &t, inputs, 2, &e)) return cli_usage_error(&cmd, "%s", e.msg);
    cli_threads(threads);
    qc_log log = cli_log(quiet);
    if (qc_job_convert(&s, &t, &log, &e)) return cli_fail(&e);
    cli_log_done();
    if (!quiet) fprintf(stderr, "wrote %s\n", out_path);
    return 0;
}
