/* text_tokens.c — a text file as token ids: the corpus read (plain, JSONL, .json.gz), its
 * documents joined as qc_corpus_joined joins them, encoded with BOS first when the tokenizer
 * adds one. What eval, quantize's --eval and the other commands read a text through. */
#include "datasets/datasets.h"

#include <stdlib.h>

qc_status qc_tokenizer_encode_file(const qc_tokenizer *t, const char *path, int32_t **ids, size_t *n, size_t *docs,
                                   size_t *bytes, qc_err *e) {
    qc_corpus c;
    qc_status st = qc_corpus_load(&c, path, e);
    if (st) return st;
    char *text;
    size_t len;
    st = qc_corpus_joined(&c, &text, &len, e);
    *docs = c.ndocs;
    qc_corpus_free(&c);
    if (st) return st;
    *bytes = len;
    st = qc_tokenizer_encode(t, text, len, t->add_bos, false, ids, n, e);
    free(text);
    if (st) qc_fail_prefix(e, st, "%s", path);
    return st;
}
