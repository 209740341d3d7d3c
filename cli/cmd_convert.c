/* cmd_convert.c — `qcalib convert`: a checkpoint rewritten in full precision as a Hugging
 * Face folder or a llama2.c .bin, atomically. */
#include "cli/cli.h"

#include <string.h>

static const char *model_path, *out_path, *to = "hf", *dtype_name = "f32", *tok_path;
static long shard_mb, threads;
static bool force, quiet;

static const cli_opt opts[] = {
    { "model", OPT_STR, &model_path, "PATH", "input: llama2.c .bin or Hugging Face folder (required)", 0, 0 },
    { "out", OPT_STR, &out_path, "PATH", "output folder (hf) or file (llama2c) (required)", 0, 0 },
    { "to", OPT_STR, &to, "FORMAT", "hf (default), gguf or llama2c", 0, 0 },
    { "dtype", OPT_STR, &dtype_name, "TYPE", "hf: f32 (default), f16 or bf16; gguf: f32 or f16", 0, 0 },
    { "tokenizer", OPT_STR, &tok_path, "FILE", "hf, gguf: the vocabulary to write (default: the model's own, or beside it)", 0, 0 },
    { "shard-size", OPT_INT, &shard_mb, "MB", "hf: split into shards of at most MB megabytes, with an index", 1, 1 << 24 },
    { "force", OPT_FLAG, &force, NULL, "replace an existing output", 0, 0 },
    { "threads", OPT_INT, &threads, "N", "threads (default: every core)", 0, 4096 },
    { "quiet", OPT_FLAG, &quiet, NULL, "no progress display", 0, 0 },
    { 0 },
};

static const cli_cmd cmd = {
    "convert", "--model PATH --out PATH [--to hf|gguf|llama2c] [--dtype f32|f16|bf16]",
    "Rewrites a checkpoint in full precision. hf writes config.json and model.safetensors (or\n"
    "shards with model.safetensors.index.json) with Q/K rows in Hugging Face's rotate-half\n"
    "layout, and the model's tokenizer as tokenizer.json and tokenizer_config.json; gguf\n"
    "writes one .gguf file for llama.cpp (tensors F32 or F16, norms F32, the vocabulary\n"
    "embedded); llama2c writes llama2.c's legacy fp32 .bin. Any format qcalib reads,\n"
    "quantized ones included, can be the input. The output appears only when complete.",
    opts,
    "example:\n  qcalib convert --model stories260K.bin --out stories260K-hf --dtype f16",
};

/* A single-file output: nothing at out_path, or with --force a regular file that is no input
 * and that qcalib reads as a model of the format being written (what an earlier convert
 * wrote), so --force never replaces an unrelated file. 0, or a usage error (printed). */
static int check_out_file(const char *format, const char *const *inputs, int ninputs) {
    if (!qc_path_exists(out_path)) return 0; /* (lstat: a dangling link exists) */
    if (!force) return cli_usage_error(&cmd, "%s already exists (pass --force to replace it)", out_path);
    qc_err e = { "" };
    if (qc_outfile_check_replace(out_path, inputs, ninputs, &e)) return cli_usage_error(&cmd, "%s", e.msg);
    qc_checkpoint *ck = NULL;
    bool same = !qc_checkpoint_open(&ck, out_path, &e) && strcmp(qc_checkpoint_format(ck), format) == 0;
    qc_checkpoint_close(ck);
    if (!same)
        return cli_usage_error(&cmd, "%s: not a %s model file qcalib can read; --force replaces only such a file "
                               "(remove it yourself, or choose another --out)", out_path, format);
    return 0;
}

int cmd_convert(int argc, char **argv) {
    int rc = cli_parse(&cmd, argc, argv, 2);
    if (rc) return rc < 0 ? 0 : rc;
    if (!model_path) return cli_usage_error(&cmd, "--model is required");
    if (!out_path) return cli_usage_error(&cmd, "--out is required");
    bool hf = strcmp(to, "hf") == 0, gguf = strcmp(to, "gguf") == 0;
    if (!hf && !gguf && strcmp(to, "llama2c") != 0) return cli_usage_error(&cmd, "--to '%s': expected hf, gguf or llama2c", to);
    qc_dtype dt;
    if (strcmp(dtype_name, "f32") == 0) dt = QC_DT_F32;
    else if (strcmp(dtype_name, "f16") == 0) dt = QC_DT_F16;
    else if (strcmp(dtype_name, "bf16") == 0 && hf) dt = QC_DT_BF16;
    else return cli_usage_error(&cmd, "--dtype '%s': expected f32 or f16%s", dtype_name, hf ? " or bf16" : "");
    if (!hf && shard_mb) return cli_usage_error(&cmd, "--shard-size applies to --to hf");
    if (!hf && !gguf && dt != QC_DT_F32) return cli_usage_error(&cmd, "--to llama2c writes fp32: --dtype does not apply");
    const char *inputs[] = { model_path, tok_path };
    if (hf && (rc = cli_check_out(&cmd, out_path, force, inputs, 2))) return rc;
    if (!hf && (rc = check_out_file(gguf ? "gguf" : "llama2.c", inputs, 2))) return rc;
    cli_threads(threads);
    qc_log log = cli_log(quiet);
    qc_err e = { "" };
    qc_checkpoint *ck = NULL;
    qc_status st = qc_checkpoint_open(&ck, model_path, &e);
    if (!st) {
        qc_weight_source src = qc_checkpoint_source(ck);
        if (hf) { /* with the tokenizer in Hugging Face's files, when the model has one */
            qc_hf_export_opts o = { dt, (size_t)shard_mb << 20 };
            qc_tokenizer tok = { 0 };
            qc_outdir d = { 0 };
            bool found;
            st = qc_checkpoint_find_tokenizer(tok_path, ck, &tok, &found, &e);
            if (!st && !found) qc_logf(&log, QC_LOG_WARN, "%s: the folder gets no tokenizer (pass --tokenizer FILE)", e.msg);
            if (!st) st = qc_outdir_open(&d, out_path, force, &e);
            if (!st) st = qc_export_hf_into(&src, &d, &o, &log, &e);
            if (!st && found) st = qc_tokenizer_write_into(&tok, &d, true, &e);
            st = st ? (qc_outdir_abort(&d), st) : qc_outdir_commit(&d, &e);
            qc_tokenizer_free(&tok);
        } else if (gguf) {
            qc_tokenizer tok = { 0 };
            qc_gguf_type t = dt == QC_DT_F16 ? QC_GGUF_F16 : QC_GGUF_F32;
            st = qc_checkpoint_require_tokenizer(tok_path, ck, &tok, &e);
            qc_gguf_export_opts o = { t, t, t, &tok, model_path };
            if (!st) st = qc_export_gguf(&src, out_path, &o, &log, &e);
            qc_tokenizer_free(&tok);
        } else {
            st = qc_export_llama2c(&src, out_path, &log, &e);
        }
    }
    qc_checkpoint_close(ck);
    if (st) return cli_fail(&e);
    cli_log_done();
    if (!quiet) fprintf(stderr, "wrote %s\n", out_path);
    return 0;
}
