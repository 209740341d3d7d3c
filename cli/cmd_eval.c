/* cmd_eval.c — `qcalib eval`: perplexity (QUANT-SPEC §6) with the protocol printed beside
 * it, and KL divergence against a base model's saved log-probabilities. */
#include "cli/cli.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char *model_path, *text_path, *tok_path, *save_path, *kld_path, *act_quant;
static long seqlen, batch_tokens, threads;
static bool json, quiet;

static const char *compute_name = "f32";

static const cli_opt opts[] = {
    { "model", OPT_STR, &model_path, "PATH", "model: llama2.c .bin or Hugging Face folder (required)", 0, 0 },
    { "text", OPT_STR, &text_path, "FILE", "text to evaluate: plain, .jsonl or .json.gz (required)", 0, 0 },
    { "tokenizer", OPT_STR, &tok_path, "FILE", "tokenizer.json or llama2.c tokenizer (default: tokenizer.json, tokenizer.bin or tok<vocab>.bin beside the model)", 0, 0 },
    { "seqlen", OPT_INT, &seqlen, "N", "window length (default: the model's context, at most 2048)", 2, 1 << 20 },
    { "save-logits", OPT_STR, &save_path, "FILE", "save this model's log-probabilities (the base for --kld-base)", 0, 0 },
    { "kld-base", OPT_STR, &kld_path, "FILE", "report KL divergence and top-1 agreement against saved log-probabilities", 0, 0 },
    { "act-quant", OPT_STR, &act_quant, "aN", "simulate N-bit activations: every block linear's input quantized per token, symmetric, dynamic (a8: W8A8)", 0, 0 },
    { "batch-tokens", OPT_INT, &batch_tokens, "N", "tokens per forward chunk (default 2048)", 1, 1 << 24 },
    { "threads", OPT_INT, &threads, "N", "threads (default: OMP_NUM_THREADS if set, else every core)", 0, 4096 },
    { "compute", OPT_STR, &compute_name, "T", CLI_COMPUTE_HELP " (default f32)", 0, 0 },
    { "json", OPT_FLAG, &json, NULL, "print one JSON object instead of text", 0, 0 },
    { "quiet", OPT_FLAG, &quiet, NULL, "no progress display", 0, 0 },
    { 0 },
};

static const cli_cmd cmd = {
    "eval", "--model PATH --text FILE [options]",
    "Perplexity of a model on a text, by the protocol of QUANT-SPEC §6: the whole text is\n"
    "tokenized once with BOS at the start, cut into non-overlapping windows of --seqlen tokens\n"
    "(the incomplete tail is dropped), and ppl = exp(mean NLL) over every predicted token\n"
    "(seqlen - 1 per window). The protocol is printed with the number: figures from different\n"
    "protocols are not comparable.",
    opts,
    "KL divergence: run the reference model once with --save-logits BASE, then the model to judge\n"
    "with --kld-base BASE on the same text and --seqlen. The file holds vocab x 4 bytes per token.\n\n"
    "example:\n"
    "  qcalib eval --model stories260K.bin --text tinystories_eval.txt --seqlen 512",
};

static void print_json(const qc_config *c, size_t ntok, size_t docs, size_t bytes, const qc_eval_result *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", model_path);
    cJSON_AddStringToObject(o, "text", text_path);
    cJSON_AddNumberToObject(o, "ppl", r->ppl);
    if (act_quant) cJSON_AddStringToObject(o, "act_quant", act_quant);
    cJSON_AddNumberToObject(o, "nll", r->nll);
    cJSON_AddNumberToObject(o, "max_abs_logit", r->max_abs_logit);
    cJSON_AddNumberToObject(o, "tokens", (double)ntok);
    cJSON_AddNumberToObject(o, "windows", r->windows);
    cJSON_AddNumberToObject(o, "seqlen", r->seqlen);
    cJSON_AddNumberToObject(o, "scored", (double)r->scored);
    cJSON_AddNumberToObject(o, "documents", (double)docs);
    cJSON_AddNumberToObject(o, "bytes", (double)bytes);
    cJSON_AddNumberToObject(o, "vocab", c->vocab_size);
    cJSON_AddNumberToObject(o, "seconds", r->seconds);
    cJSON_AddStringToObject(o, "compute", qc_compute_name(qc_get_compute()));
    cJSON_AddStringToObject(o, "matmul_isa", qc_matmul_isa());
    if (r->has_kld) {
        cJSON_AddNumberToObject(o, "kld_mean", r->kld_mean);
        cJSON_AddNumberToObject(o, "kld_median", r->kld_median);
        cJSON_AddNumberToObject(o, "kld_p99", r->kld_p99);
        cJSON_AddNumberToObject(o, "kld_max", r->kld_max);
        cJSON_AddNumberToObject(o, "top1_agreement", r->top1);
        cJSON_AddNumberToObject(o, "base_ppl", r->base_ppl);
    }
    char *s = cJSON_PrintUnformatted(o);
    printf("%s\n", s);
    free(s);
    cJSON_Delete(o);
}

static void print_text(qc_model *m, size_t ntok, size_t docs, size_t bytes, const qc_eval_result *r) {
    const qc_config *c = &m->cfg;
    printf("model       %s (%s; %d blocks, dim %d, vocab %d)\n", model_path, qc_checkpoint_format(m->ck),
           c->n_layers, c->dim, c->vocab_size);
    printf("text        %s: %zu bytes, %zu document%s, %zu tokens with BOS\n", text_path, bytes, docs,
           docs == 1 ? "" : "s", ntok);
    printf("protocol    seqlen %d, %d windows, %lld predicted tokens (tail of %zu tokens dropped)\n", r->seqlen,
           r->windows, (long long)r->scored, ntok - (size_t)r->windows * (size_t)r->seqlen);
    if (act_quant) printf("activations %s: every block linear's input quantized per token (symmetric, dynamic)\n", act_quant);
    printf("perplexity  %.4f   (mean NLL %.6f nats; %.1f tokens/s)\n", r->ppl, r->nll,
           (double)r->windows * r->seqlen / (r->seconds > 0 ? r->seconds : 1e-9));
    if (r->has_kld) {
        printf("base        perplexity %.4f (%s)\n", r->base_ppl, kld_path);
        printf("KL div.     mean %.6f, median %.6f, 99%% %.6f, max %.6f nats\n", r->kld_mean, r->kld_median,
               r->kld_p99, r->kld_max);
        printf("top-1       %.2f%% of predictions agree with the base\n", 100.0 * r->top1);
    }
}

int cmd_eval(int argc, char **argv) {
    int rc = cli_parse(&cmd, argc, argv, 2);
    if (rc) return rc < 0 ? 0 : rc;
    if (!model_path) return cli_usage_error(&cmd, "--model is required");
    if (!text_path) return cli_usage_error(&cmd, "--text is required");
    int act_bits = 0;
    if (act_quant && (sscanf(act_quant, "a%d", &act_bits) != 1 || act_bits < 2 || act_bits > 16 ||
                      snprintf(NULL, 0, "a%d", act_bits) != (int)strlen(act_quant)))
        return cli_usage_error(&cmd, "--act-quant '%s': expected aN, N bits from 2 to 16 (a8: W8A8's int8 activations)", act_quant);
    if ((rc = cli_compute(&cmd, compute_name))) return rc;
    cli_threads(threads);
    qc_log log = cli_log(quiet || json);
    cli_log_compute(&log);
    qc_err e = { "" };
    qc_model *m = NULL;
    qc_tokenizer tok = { 0 };
    qc_windows w = { 0 };
    int32_t *ids = NULL;
    size_t n = 0, docs = 0, bytes = 0;
    qc_eval_result r;
    qc_status st = qc_model_open(&m, model_path, &e);
    if (!st) st = qc_checkpoint_require_tokenizer(tok_path, m->ck, &tok, &e);
    if (!st) st = qc_tokenizer_encode_file(&tok, text_path, &ids, &n, &docs, &bytes, &e);
    if (!st) {
        int sl = seqlen ? (int)seqlen : qc_config_default_seqlen(&m->cfg);
        st = qc_windows_sequential(ids, n, sl, &w, &e);
        if (st) qc_fail_prefix(&e, st, "%s", text_path);
    }
    if (!st) {
        qc_eval_opts o = { (int)batch_tokens, save_path, kld_path, &log, act_bits };
        st = qc_eval_perplexity(m, &w, &o, &r, &e);
    }
    if (!st) {
        cli_log_done();
        if (json) print_json(&m->cfg, n, docs, bytes, &r);
        else print_text(m, n, docs, bytes, &r);
    }
    qc_windows_free(&w);
    free(ids);
    qc_tokenizer_free(&tok);
    qc_model_free(m);
    return st ? cli_fail(&e) : 0;
}
