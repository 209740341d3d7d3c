/* evaluate.c — the perplexity of an --eval text on a model, and the check before calibrating
 * that each text fills a window. */
#include "job/internal.h"

#include <stdlib.h>

qc_status qc_job_eval_text(qc_model *m, const qc_tokenizer *t, const char *text, int sl, int abits, qc_eval_result *r,
                           const qc_log *log, qc_err *e) {
    int32_t *ids = NULL;
    size_t n, docs, bytes;
    qc_windows w = { 0 };
    qc_status st = qc_tokenizer_encode_file(t, text, &ids, &n, &docs, &bytes, e);
    if (!st && (st = qc_windows_sequential(ids, n, sl, &w, e))) qc_fail_prefix(e, st, "%s", text);
    qc_eval_opts o = { 0, NULL, NULL, log, abits };
    if (!st) st = qc_eval_perplexity(m, &w, &o, r, e);
    qc_windows_free(&w);
    free(ids);
    return st;
}

qc_status qc_job_eval_windows(const qc_tokenizer *t, const char *text, int sl, bool *usage, qc_err *e) {
    int32_t *ids = NULL;
    size_t n, docs, bytes;
    qc_windows w = { 0 };
    qc_status st = qc_tokenizer_encode_file(t, text, &ids, &n, &docs, &bytes, e);
    if (!st && (st = qc_windows_sequential(ids, n, sl, &w, e))) {
        qc_fail_prefix(e, st, "--eval %s (--eval-seqlen %d)", text, sl);
        *usage = true;
    }
    qc_windows_free(&w);
    free(ids);
    return st;
}
