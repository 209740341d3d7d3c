/* fuzz_tokenizer.c — llama2.c's tokenizer file, loaded for the two vocabulary sizes of the
 * seeds (512: tok512.bin; 64: its first 64 pieces); a file that loads then encodes and
 * decodes a text with multi-byte characters, a NUL byte and byte-fallback pieces. */
#include "fuzz/fuzz.h"

static const char text[] = "Once upon a time, a caf\xc3\xa9 <0x0A> \xf0\x9f\x99\x82 had\0 \xff\xfe lots.\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("tok.bin", data, size);
    const int vocab[] = { 512, 64 };
    for (int v = 0; v < 2; v++) {
        qc_tokenizer t;
        qc_err e;
        if (qc_tokenizer_load(&t, path, vocab[v], &e)) continue;
        fuzz_tokenizer_use(&t, text, sizeof text - 1);
        qc_tokenizer_free(&t);
    }
    return 0;
}
