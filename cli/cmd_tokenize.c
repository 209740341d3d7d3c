/* cmd_tokenize.c — `qcalib tokenize`: the token ids of a text, for users and for tests. */
#include "cli/cli.h"

#include <stdlib.h>

static const char *tok_path, *text_path;
static long vocab;
static bool bos, per_doc;

static const cli_opt opts[] = {
    { "tokenizer", OPT_STR, &tok_path, "FILE", "Hugging Face tokenizer.json, or a llama2.c tokenizer file (required)", 0, 0 },
    { "vocab", OPT_INT, &vocab, "N", "vocabulary size of a llama2.c tokenizer (the file does not store it)", 1, 1 << 22 },
    { "text", OPT_STR, &text_path, "FILE", "text: plain, .jsonl or .json.gz (required)", 0, 0 },
    { "jsonl", OPT_FLAG, &per_doc, NULL, "one line per document (JSON lines: each line's \"text\"; plain text: the whole file)", 0, 0 },
    { "bos", OPT_FLAG, &bos, NULL, "start each line with BOS", 0, 0 },
    { 0 },
};

static const cli_cmd cmd = {
    "tokenize", "--tokenizer FILE --text FILE [--vocab N] [--jsonl] [--bos]",
    "Prints the token ids of a text, space separated: one line for the whole text (documents joined\n"
    "by blank lines), or one line per document with --jsonl. No BOS unless --bos.",
    opts,
    NULL,
};

static void print_ids(const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    printf("\n");
}

int cmd_tokenize(int argc, char **argv) {
    int rc = cli_parse(&cmd, argc, argv, 2);
    if (rc) return rc < 0 ? 0 : rc;
    bool json = tok_path && qc_str_ends_with(tok_path, ".json");
    if (!tok_path || !text_path) return cli_usage_error(&cmd, "--tokenizer and --text are required");
    if (!json && !vocab) return cli_usage_error(&cmd, "--vocab is required for a llama2.c tokenizer");
    qc_err e = { "" };
    qc_tokenizer t = { 0 };
    qc_corpus c = { 0 };
    int32_t *ids = NULL;
    size_t n = 0;
    qc_status st = json ? qc_tokenizer_load_json(&t, tok_path, &e) : qc_tokenizer_load(&t, tok_path, (int)vocab, &e);
    if (!st) st = qc_corpus_load(&c, text_path, &e);
    for (size_t d = 0; !st && per_doc && d < c.ndocs; d++) {
        st = qc_tokenizer_encode(&t, c.text + c.doc_off[d], c.doc_len[d], bos, false, &ids, &n, &e);
        if (st) qc_fail_prefix(&e, st, "%s: document %zu", text_path, d + 1);
        else print_ids(ids, n);
        free(ids);
        ids = NULL;
    }
    if (!st && !per_doc) {
        char *text;
        size_t len;
        st = qc_corpus_joined(&c, &text, &len, &e);
        if (!st && (st = qc_tokenizer_encode(&t, text, len, bos, false, &ids, &n, &e))) qc_fail_prefix(&e, st, "%s", text_path);
        if (!st) print_ids(ids, n);
        free(text);
    }
    free(ids);
    qc_corpus_free(&c);
    qc_tokenizer_free(&t);
    return st ? cli_fail(&e) : 0;
}
