/* cmd_tokenize.c — `qcalib tokenize`: the token ids of a text, for users and for tests. */
#include "cli/cli.h"

#include <stdlib.h>

static const char *tok_path, *text_path;
static long vocab;
static bool bos;

static const cli_opt opts[] = {
    { "tokenizer", OPT_STR, &tok_path, "FILE", "llama2.c tokenizer file (required)", 0, 0 },
    { "vocab", OPT_INT, &vocab, "N", "vocabulary size (the file does not store it; required)", 1, 1 << 22 },
    { "text", OPT_STR, &text_path, "FILE", "text: plain, .jsonl or .json.gz (documents joined by blank lines) (required)", 0, 0 },
    { "bos", OPT_FLAG, &bos, NULL, "start with BOS", 0, 0 },
    { 0 },
};

static const cli_cmd cmd = {
    "tokenize", "--tokenizer FILE --vocab N --text FILE [--bos]",
    "Prints the token ids of a text on one line, space separated, as llama2.c's encoder makes them.",
    opts,
    NULL,
};

int cmd_tokenize(int argc, char **argv) {
    int rc = cli_parse(&cmd, argc, argv, 2);
    if (rc) return rc < 0 ? 0 : rc;
    if (!tok_path || !vocab || !text_path) return cli_usage_error(&cmd, "--tokenizer, --vocab and --text are required");
    qc_err e = { "" };
    qc_tokenizer t = { 0 };
    int32_t *ids = NULL;
    size_t n = 0, docs, bytes;
    qc_status st = qc_tokenizer_load(&t, tok_path, (int)vocab, &e);
    if (!st) st = cli_text_tokens(&t, text_path, &ids, &n, &docs, &bytes, &e);
    if (!st)
        for (size_t i = bos ? 0 : 1; i < n; i++) printf(i > (bos ? 0u : 1u) ? " %d" : "%d", ids[i]);
    if (!st) printf("\n");
    free(ids);
    qc_tokenizer_free(&t);
    return st ? cli_fail(&e) : 0;
}
