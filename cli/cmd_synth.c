/* cmd_synth.c — `qcalib synth`: a SYNTHETIC Llama (random weights at a real model's shapes)
 * as a Hugging Face folder with a synthetic tokenizer.bin, for benchmarks. */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

static const char *shape, *out_path, *dtype_name = "f16";
static long seed, threads, blocks;
static bool force, quiet;

static const cli_opt opts[] = {
    { "shape", OPT_STR, &shape, "NAME", "tiny (128 wide, 2 blocks), tiny256 (256 wide, 8 blocks: GGUF K-quants fit), 1b (2048 wide, 16 blocks, FFN 5632) or 7b (Llama-2-7B) (required)", 0, 0 },
    { "out", OPT_STR, &out_path, "DIR", "output folder (required; must not exist unless --force)", 0, 0 },
    { "dtype", OPT_STR, &dtype_name, "TYPE", "f16 (default), bf16 or f32", 0, 0 },
    { "blocks", OPT_INT, &blocks, "N", "keep the first N blocks of the shape (default: all): its widths at a fraction of the size, for measuring per-block rates", 1, 4096 },
    { "seed", OPT_INT, &seed, "N", "the weights' seed (default 0): same seed, same bytes", 0, 2147483647 },
    { "force", OPT_FLAG, &force, NULL, "replace an existing output folder", 0, 0 },
    { "threads", OPT_INT, &threads, "N", "threads (default: OMP_NUM_THREADS if set, else every core)", 0, 4096 },
    { "quiet", OPT_FLAG, &quiet, NULL, "no progress display", 0, 0 },
    { 0 },
};

static const cli_cmd cmd = {
    "synth", "--shape tiny|tiny256|1b|7b --out DIR [--blocks N] [--dtype f16|bf16|f32] [--seed N]",
    "Writes a SYNTHETIC Llama for benchmarks: random weights (about normal, standard deviation\n"
    "0.02; RMSNorm weights near 1) at real shapes, as a Hugging Face folder (config.json labelled\n"
    "\"qcalib_synthetic\": true, model.safetensors) with a synthetic llama2.c tokenizer.bin, so\n"
    "quantize and eval run on it with any text. Generated one tensor at a time: memory stays\n"
    "small at any size (7b in f16 is 13.5 GB on disk). Not a trained model: its perplexity\n"
    "means nothing.",
    opts,
    "example:\n  qcalib synth --shape 1b --out synth-1b && qcalib --method gptq --model synth-1b --calib TEXT --out q",
};

int cmd_synth(int argc, char **argv) {
    int rc = cli_parse(&cmd, argc, argv, 2);
    if (rc) return rc < 0 ? 0 : rc;
    qc_synth s = { .seed = (uint64_t)seed };
    if (!shape) return cli_usage_error(&cmd, "--shape is required (tiny, tiny256, 1b or 7b)");
    if (!qc_synth_shape(shape, &s.cfg)) return cli_usage_error(&cmd, "--shape '%s': expected tiny, tiny256, 1b or 7b", shape);
    if (blocks > s.cfg.n_layers)
        return cli_usage_error(&cmd, "--blocks %ld: the %s shape has %d blocks", blocks, shape, s.cfg.n_layers);
    if (blocks) s.cfg.n_layers = (int)blocks; /* the first blocks' weights are the whole model's */
    if (!out_path) return cli_usage_error(&cmd, "--out is required");
    qc_dtype dt;
    if (strcmp(dtype_name, "f16") == 0) dt = QC_DT_F16;
    else if (strcmp(dtype_name, "bf16") == 0) dt = QC_DT_BF16;
    else if (strcmp(dtype_name, "f32") == 0) dt = QC_DT_F32;
    else return cli_usage_error(&cmd, "--dtype '%s': expected f16, bf16 or f32", dtype_name);
    if ((rc = cli_check_out(&cmd, out_path, force, NULL, 0))) return rc;
    cli_threads(threads);
    qc_log log = cli_log(quiet);
    qc_err e = { "" };
    qc_outdir d = { 0 };
    qc_status st = qc_outdir_open(&d, out_path, force, &e);
    if (!st) st = qc_synth_export_into(&s, shape, &d, dt, &log, &e);
    char *tok = st ? NULL : qc_outdir_file(&d, "tokenizer.bin");
    if (!st) st = tok ? qc_tokenizer_write_synthetic(tok, s.cfg.vocab_size, &e) : qc_fail(&e, QC_ERR_NOMEM, "out of memory");
    free(tok);
    if (!st) st = qc_outdir_commit(&d, &e);
    else qc_outdir_abort(&d);
    if (st) return cli_fail(&e);
    cli_log_done();
    if (!quiet)
        fprintf(stderr, "wrote %s (SYNTHETIC %s model, %d blocks, %s, seed %ld)\n", out_path, shape, s.cfg.n_layers,
                dtype_name, seed);
    return 0;
}
