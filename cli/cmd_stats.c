/* cmd_stats.c — `qcalib stats`: the look at weights and activations that comes before
 * choosing a quantization scheme (which modules have heavy tails, which input channels carry
 * outliers). The figures come from calib/ (analysis.c, report.c); this prints a summary. */
#include "calib/calib.h"
#include "cli/cli.h"

#include <math.h>
#include <stdlib.h>

static const char *model_path, *out_path, *tok_path, *tokens_path, *imatrix_path;
static cli_list calib;
static long nsamples = 32, seqlen, seed, threads;
static bool force, quiet;

static const char *compute_name = "f32", *max_memory;

static const cli_opt opts[] = {
    { "model", OPT_STR, &model_path, "PATH", "model: any format qcalib reads (required)", 0, 0 },
    { "out", OPT_STR, &out_path, "DIR", "output folder (required; must not exist unless --force)", 0, 0 },
    { "calib", OPT_LIST, &calib, "FILE", "text whose activations to measure: plain, .jsonl or .json.gz; repeatable", 0, 0 },
    { "calib-tokens", OPT_STR, &tokens_path, "FILE", "windows as a NumPy int32/int64 array (nsamples, seqlen), used as they are", 0, 0 },
    { "nsamples", OPT_INT, &nsamples, "N", "windows drawn from --calib (default 32)", 1, 1 << 20 },
    { "seqlen", OPT_INT, &seqlen, "N", "tokens per window (default: the model's context, at most 2048)", 2, 1 << 20 },
    { "seed", OPT_INT, &seed, "N", "seed of the window sampler (default 0)", 0, 4294967295.0 },
    { "tokenizer", OPT_STR, &tok_path, "FILE", "llama2.c tokenizer (default: the model's own)", 0, 0 },
    { "max-memory", OPT_STR, &max_memory, "SIZE", "memory the calibration text may take while its windows are drawn, as quantize counts it (e.g. 8G; default: the kernel's MemAvailable)", 0, 0 },
    { "imatrix-out", OPT_STR, &imatrix_path, "FILE", "also write the activations' Σx² as llama.cpp's importance matrix for llama-quantize --imatrix: GGUF if FILE ends in .gguf, else the legacy .dat (needs --calib or --calib-tokens)", 0, 0 },
    { "threads", OPT_INT, &threads, "N", "threads (default: OMP_NUM_THREADS if set, else every core)", 0, 4096 },
    { "compute", OPT_STR, &compute_name, "T", CLI_COMPUTE_HELP " (default f32)", 0, 0 },
    { "force", OPT_FLAG, &force, NULL, "replace an existing output folder", 0, 0 },
    { "quiet", OPT_FLAG, &quiet, NULL, "no progress display and no summary", 0, 0 },
    { 0 },
};

static const cli_cmd cmd = {
    "stats", "--model PATH --out DIR [--calib TEXT ...] [options]",
    "Statistics of every weight matrix (token embedding, classifier, each block's seven linears):\n"
    "range, mean, standard deviation, kurtosis (3 for a normal distribution), the spread of\n"
    "max|w| over output channels, counts beyond 3σ and 6σ, and a standardized histogram. With\n"
    "--calib (or --calib-tokens), also the per-input-channel statistics (max, min, mean, std,\n"
    "mean|x|) of every linear layer's input in the fp32 model — the outlier channels that\n"
    "SmoothQuant and AWQ are about. Windows are drawn as `quantize` draws them.",
    opts,
    "DIR receives weight_stats.csv, weight_hist.csv, act_stats.csv (with calibration text) and\n"
    "stats.json (all of it); the columns are listed in the README. Plot them with\n"
    "scripts/plot-weight-hist and scripts/plot-act-max.\n\n"
    "--imatrix-out FILE writes the same activations' Σx² per input channel of every linear,\n"
    "over every token of every window, as llama-imatrix does on the same windows: llama.cpp's\n"
    "tensor names (blk.N.attn_q.weight, ...), FILE.gguf in its GGUF imatrix layout, any other\n"
    "name in its legacy .dat layout.\n\n"
    "examples:\n"
    "  qcalib stats --model stories260K.bin --calib tinystories_calib.txt --out st\n"
    "  qcalib stats --model m.gguf --calib calib.txt --seqlen 512 --out st --imatrix-out m.imatrix.gguf",
};

static void print_summary(const qc_config *c, const qc_wstats *ws, int n, const qc_stats *act) {
    printf("%-44s %10s %9s %11s %8s\n", "weight", "std", "kurtosis", "absmax max/", ">6σ");
    printf("%-44s %10s %9s %11s %8s\n", "", "", "", "median row", "");
    for (int i = 0; i < n; i++) {
        char name[128];
        qc_weight_hf_name(ws[i].weight, ws[i].layer < 0 ? 0 : ws[i].layer, name, sizeof name);
        printf("%-44s %10.4g %9.3f %11.2f %8lld\n", name, ws[i].std, ws[i].kurtosis,
               ws[i].row_absmax_max / ws[i].row_absmax_median, (long long)ws[i].beyond6);
    }
    if (!act) return;
    printf("\n%-6s %-8s %10s %8s %12s\n", "block", "input", "max|x|", "channel", "max / mean");
    for (int l = 0; l < c->n_layers; l++)
        for (int s = 0; s < QC_SITE_COUNT; s++) {
            const qc_stats *a = &act[l * QC_SITE_COUNT + s];
            int top = 0;
            double mean = 0.0;
            for (int j = 0; j < a->n; j++) {
                if (a->absmax[j] > a->absmax[top]) top = j;
                mean += a->absmax[j] / a->n;
            }
            printf("%-6d %-8s %10.4g %8d %12.2f\n", l, qc_site_name(s), a->absmax[top], top, a->absmax[top] / mean);
        }
}

int cmd_stats(int argc, char **argv) {
    int rc = cli_parse(&cmd, argc, argv, 2);
    if (rc) return rc < 0 ? 0 : rc;
    if (!model_path || !out_path) return cli_usage_error(&cmd, "--model and --out are required");
    if (calib.n && tokens_path) return cli_usage_error(&cmd, "--calib and --calib-tokens exclude each other");
    if (imatrix_path && !calib.n && !tokens_path)
        return cli_usage_error(&cmd, "--imatrix-out needs activations: give --calib or --calib-tokens");
    const char *inputs[CLI_LIST_MAX + 3] = { model_path, tok_path, tokens_path };
    for (int i = 0; i < calib.n; i++) inputs[3 + i] = calib.v[i];
    if ((rc = cli_compute(&cmd, compute_name))) return rc;
    uint64_t budget = 0; /* bounds each --calib source's text (calib/plan.c), as quantize does */
    if (max_memory && !cli_parse_size(max_memory, &budget))
        return cli_usage_error(&cmd, "--max-memory '%s': expected a size such as 8G, 512M or 1.5GiB", max_memory);
    if (!budget && !cli_mem_available(&budget)) budget = 0;
    if ((rc = cli_check_out(&cmd, out_path, force, inputs, 3 + calib.n))) return rc;
    if (imatrix_path && (rc = cli_check_out_file(&cmd, imatrix_path, force, inputs, 3 + calib.n))) return rc;
    cli_threads(threads);
    qc_log log = cli_log(quiet);
    cli_log_compute(&log);
    qc_err e = { "" };
    qc_model *m = NULL;
    qc_tokenizer tok = { 0 };
    qc_windows w = { 0 };
    qc_wstats *ws = NULL;
    qc_stats *act = NULL;
    qc_outdir d = { 0 };
    int n = 0;
    qc_status st = qc_model_open(&m, model_path, &e);
    if (!st) st = qc_wstats_checkpoint(m->ck, &log, &ws, &n, &e);
    if (!st && calib.n) {
        int sl = seqlen ? (int)seqlen : qc_config_default_seqlen(&m->cfg);
        st = qc_checkpoint_require_tokenizer(tok_path, m->ck, &tok, &e);
        size_t text_read;
        if (!st)
            st = qc_windows_draw_within(&tok, calib.v, calib.n, (int)nsamples, sl, (uint64_t)seed,
                                       qc_mem_plan_text_bound(budget, qc_get_threads()), &text_read, &w, &e);
    } else if (!st && tokens_path) {
        st = qc_windows_load_npy(tokens_path, &w, &e);
    }
    size_t nact = m ? (size_t)m->cfg.n_layers * QC_SITE_COUNT : 0;
    if (!st && w.n) {
        act = qc_calloc(nact, sizeof *act, &e, "activation statistics");
        st = act ? qc_activation_stats(m, &w, 0, &log, act, &e) : QC_ERR_NOMEM;
    }
    if (!st) st = qc_outdir_open(&d, out_path, force, &e);
    if (!st) st = qc_stats_report_write(&d, &m->cfg, ws, n, act, &e);
    if (!st && imatrix_path) {
        const char *datasets[CLI_LIST_MAX];
        int nd = tokens_path ? 1 : calib.n;
        for (int i = 0; i < nd; i++) datasets[i] = tokens_path ? tokens_path : calib.v[i];
        st = qc_stats_imatrix_write(imatrix_path, &m->cfg, act, &w, datasets, nd, &e);
    }
    if (!st) st = qc_outdir_commit(&d, &e);
    qc_outdir_abort(&d);
    cli_log_done();
    if (!st && !quiet) print_summary(&m->cfg, ws, n, act);
    if (act)
        for (size_t i = 0; i < nact; i++) qc_stats_free(&act[i]);
    free(act);
    free(ws);
    qc_windows_free(&w);
    qc_tokenizer_free(&tok);
    qc_model_free(m);
    return st ? cli_fail(&e) : 0;
}
