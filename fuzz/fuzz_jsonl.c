/* fuzz_jsonl.c — the corpus reader on a `.jsonl` file (JSON lines with a "text" field), as
 * `--calib` and `--eval` load it; a corpus that loads is then joined. */
#include "fuzz/fuzz.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    qc_corpus c;
    qc_err e;
    if (qc_corpus_load(&c, fuzz_write("corpus.jsonl", data, size), &e) == QC_OK) {
        char *text;
        size_t len;
        if (qc_corpus_joined(&c, &text, &len, &e) == QC_OK) free(text);
        qc_corpus_free(&c);
    }
    return 0;
}
