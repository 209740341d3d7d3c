/* tokenizer_find.c — the tokenizer that belongs to a model: the one given, else the one the
 * file carries (GGUF), else tokenizer.json, tokenizer.bin or tok<vocab>.bin beside it (a
 * Hugging Face folder's first). Every command that reads text through a model finds it here. */
#include "io/io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

qc_status qc_checkpoint_find_tokenizer(const char *path, const qc_checkpoint *ck, qc_tokenizer *t, bool *found,
                                       qc_err *e) {
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

qc_status qc_checkpoint_require_tokenizer(const char *path, const qc_checkpoint *ck, qc_tokenizer *t, qc_err *e) {
    bool found;
    qc_status st = qc_checkpoint_find_tokenizer(path, ck, t, &found, e);
    if (!st && !found) {
        size_t n = strlen(e->msg);
        snprintf(e->msg + n, sizeof e->msg - n, "; pass --tokenizer FILE");
        return QC_ERR_ARG;
    }
    return st;
}
