/* cmd_generate.c — `qcalib generate`: greedy decoding as llama2.c's run.c does it at
 * temperature 0 (one token at a time with a key/value cache, argmax, stop at BOS), so the
 * output can be compared token for token with the reference. */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

static const char *model_path, *tok_path, *prompt;
static long steps = 256, threads;
static bool print_ids;

static const cli_opt opts[] = {
    { "model", OPT_STR, &model_path, "PATH", "model: llama2.c .bin or Hugging Face folder (required)", 0, 0 },
    { "tokenizer", OPT_STR, &tok_path, "FILE", "tokenizer.json or llama2.c tokenizer (default: tokenizer.json, tokenizer.bin or tok<vocab>.bin beside the model)", 0, 0 },
    { "steps", OPT_INT, &steps, "N", "positions to run, BOS included, as run.c's -n (default 256; at most the model's context)", 1, 1 << 20 },
    { "prompt", OPT_STR, &prompt, "TEXT", "start from this text instead of BOS alone", 0, 0 },
    { "ids", OPT_FLAG, &print_ids, NULL, "print the token ids (space separated) instead of the text", 0, 0 },
    { "threads", OPT_INT, &threads, "N", "threads (default: OMP_NUM_THREADS if set, else every core)", 0, 4096 },
    { 0 },
};

static const cli_cmd cmd = {
    "generate", "--model PATH [--steps N] [--prompt TEXT] [--ids]",
    "Greedy decoding (temperature 0) from BOS, or from BOS + prompt, exactly as llama2.c's run.c:\n"
    "the token of largest logit (the first on ties) is taken at every position, and decoding\n"
    "stops early if the model produces BOS. Prompt tokens after the first are printed too.",
    opts,
    "example:\n  qcalib generate --model stories260K.bin --steps 200 --ids",
};

static int argmax(const float *v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

/* Runs one token at position kv->len through the model into logits. */
static qc_status step(qc_model *m, int32_t token, qc_kvcache *kv, qc_workspace *ws, float *x, float *logits,
                      qc_err *e) {
    qc_status st = qc_model_embed(m, &token, 1, x, e);
    for (int l = 0; l < m->cfg.n_layers && !st; l++) {
        const qc_block *b;
        st = qc_model_block(m, l, &b, e);
        if (!st) st = qc_block_forward_cached(&m->cfg, b, l, x, 1, kv, ws, e);
    }
    if (!st) st = qc_model_head(m, x, 1, logits, e);
    kv->len++;
    return st;
}

int cmd_generate(int argc, char **argv) {
    int rc = cli_parse(&cmd, argc, argv, 2);
    if (rc) return rc < 0 ? 0 : rc;
    if (!model_path) return cli_usage_error(&cmd, "--model is required");
    cli_threads(threads);
    qc_err e = { "" };
    qc_model *m = NULL;
    qc_tokenizer tok = { 0 };
    qc_kvcache kv = { 0 };
    qc_workspace *ws = NULL;
    int32_t *ptok = NULL;
    size_t np = 0;
    float *x = NULL, *logits = NULL;
    qc_status st = qc_model_open(&m, model_path, &e);
    if (!st) st = qc_checkpoint_require_tokenizer(tok_path, m->ck, &tok, &e);
    if (!st) st = qc_tokenizer_encode(&tok, prompt ? prompt : "", prompt ? strlen(prompt) : 0, true, false, &ptok, &np, &e);
    if (st) goto done;
    int n = (int)steps;
    if (n > m->cfg.seq_len) {
        fprintf(stderr, "qcalib generate: --steps %d capped at the model's context, %d\n", n, m->cfg.seq_len);
        n = m->cfg.seq_len;
    }
    if ((st = qc_kvcache_init(&kv, &m->cfg, n, &e))) goto done;
    if (!(ws = qc_workspace_new(&m->cfg, 1, n, &e))) { st = QC_ERR_NOMEM; goto done; }
    x = qc_malloc((size_t)m->cfg.dim, sizeof(float), &e, "activations");
    logits = x ? qc_malloc((size_t)m->cfg.vocab_size, sizeof(float), &e, "logits") : NULL;
    if (!logits) { st = QC_ERR_NOMEM; goto done; }
    int32_t token = ptok[0];
    for (int pos = 0; pos < n; pos++) {
        if ((st = step(m, token, &kv, ws, x, logits, &e))) break;
        int32_t next = (size_t)pos + 1 < np ? ptok[pos + 1] : argmax(logits, m->cfg.vocab_size);
        if (next == tok.bos_id) break;
        if (print_ids) {
            printf(pos ? " %d" : "%d", next);
        } else {
            char byte[2];
            size_t len;
            const char *piece = qc_tokenizer_piece(&tok, token, next, byte, &len);
            fwrite(piece, 1, len, stdout);
        }
        fflush(stdout);
        token = next;
    }
    printf("\n");
done:
    free(logits);
    free(x);
    qc_workspace_free(ws);
    qc_kvcache_free(&kv);
    free(ptok);
    qc_tokenizer_free(&tok);
    qc_model_free(m);
    return st ? cli_fail(&e) : 0;
}
