/* fuzz_json_gz.c — the corpus reader on a `.json.gz` file (gzip members inflated, then JSON lines), as
 * `--calib` loads it: under a bound on its text (4 MiB here; a run's comes from the memory budget),
 * past which inflating stops. A corpus that loads is then joined. Seeds: C4's first lines
 * (fuzz/seeds), and a gzip bomb of 16 MiB of text in 16 KiB, refused at the bound. */
#include "fuzz/fuzz.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    qc_corpus c;
    qc_err e;
    if (qc_corpus_load_max(&c, fuzz_write("corpus.json.gz", data, size), (size_t)4 << 20, &e) == QC_OK) {
        char *text;
        size_t len;
        if (qc_corpus_joined(&c, &text, &len, &e) == QC_OK) free(text);
        qc_corpus_free(&c);
    }
    return 0;
}
