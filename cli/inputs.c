/* inputs.c — what several commands need: the tokenizer that belongs to a model, a text
 * file as token ids, the check of --out against the inputs, the thread count. */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

qc_status cli_tokenizer_if_any(const char *path, const qc_checkpoint *ck, qc_tokenizer *t, bool *found, qc_err *e) {
    const char *model_path = qc_checkpoint_path(ck);
    int vocab = qc_checkpoint_config(ck)->vocab_size;
    *found = true;
    if (path) return qc_tokenizer_load(t, path, vocab, e);
    if (qc_checkpoint_tokenizer(ck, t, e) == QC_OK) return QC_OK; /* carried by the file (GGUF) */
    char *dir = qc_path_is_dir(model_path) ? qc_strdup(model_path, e) : qc_path_dirname(model_path);
    if (!dir) return qc_fail(e, QC_ERR_NOMEM, "out of memory");
    char name[32];
    snprintf(name, sizeof name, "tok%d.bin", vocab);
    const char *candidates[3] = { "tokenizer.json", "tokenizer.bin", name }; /* a Hugging Face folder's first */
    for (int i = 0; i < 3; i++) {
        char *p = qc_path_join(dir, candidates[i]);
        if (p && qc_path_exists(p)) {
            qc_status st = qc_tokenizer_load(t, p, vocab, e);
            free(p);
            free(dir);
            return st;
        }
        free(p);
    }
    *found = false;
    qc_fail(e, QC_ERR_ARG, "no tokenizer found beside %s (looked for tokenizer.json, tokenizer.bin and %s in %s)", model_path,
            name, dir);
    free(dir);
    return QC_OK;
}

qc_status cli_tokenizer(const char *path, const qc_checkpoint *ck, qc_tokenizer *t, qc_err *e) {
    bool found;
    qc_status st = cli_tokenizer_if_any(path, ck, t, &found, e);
    if (!st && !found) {
        size_t n = strlen(e->msg);
        snprintf(e->msg + n, sizeof e->msg - n, "; pass --tokenizer FILE");
        return QC_ERR_ARG;
    }
    return st;
}

qc_status cli_text_tokens(const qc_tokenizer *t, const char *path, int32_t **ids, size_t *n,
                          size_t *docs, size_t *bytes, qc_err *e) {
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

int cli_threads(long n) { return qc_set_threads((int)n); }

int cli_compute(const cli_cmd *cmd, const char *name) {
    qc_compute c;
    if (!qc_compute_parse(name, &c)) return cli_usage_error(cmd, "--compute '%s': expected f32 or bf16", name);
    qc_set_compute(c);
    return 0;
}

void cli_log_compute(qc_log *log) {
    qc_compute c = qc_get_compute();
    qc_logf(log, QC_LOG_INFO, "products: oneDNN on %s, compute %s", qc_matmul_isa(), qc_compute_name(c));
    if (c == QC_COMPUTE_BF16 && !qc_matmul_native_bf16())
        qc_logf(log, QC_LOG_WARN, "--compute bf16: this CPU (%s) does not multiply bf16 natively; oneDNN converts the "
                "operands, which is slower than --compute f32", qc_matmul_isa());
}

int cli_check_out(const cli_cmd *cmd, const char *out, bool force, const char *const *inputs, int ninputs) {
    int swept = qc_leftovers_sweep(out);
    if (swept)
        fprintf(stderr, "qcalib: %d temporar%s of %s left by a qcalib run that died (%s.tmp.*, %s.old.*) cleared\n", swept,
                swept == 1 ? "y" : "ies", out, out, out);
    qc_err e = { "" };
    return qc_outdir_check(out, force, inputs, ninputs, &e) ? cli_usage_error(cmd, "%s", e.msg) : 0;
}
