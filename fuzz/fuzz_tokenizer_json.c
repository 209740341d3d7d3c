/* fuzz_tokenizer_json.c — a Hugging Face tokenizer.json (datasets/tokenizer_json.c: the
 * normalizers, pre-tokenizers with their PCRE2 regexes, decoders and BPE model it accepts).
 * Seeds: tok512's vocabulary as SentencePiece-BPE, byte-level BPE and Llama 3-style Split +
 * ByteLevel files (fuzz/seeds). A file that loads encodes and decodes a text with multi-byte
 * characters, a NUL byte, invalid UTF-8 and a special token, then every piece and merge is read
 * back, as the GGUF writer does. */
#include "fuzz/fuzz.h"

static const char text[] = "Once upon a time, a caf\xc3\xa9 <0x0A> \xf0\x9f\x99\x82 had\0 \xff\xfe lots.\n"
                           "  It's 1234 o'clock<|endoftext|>\r\n\tdone";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("tokenizer.json", data, size);
    qc_tokenizer t;
    qc_err e;
    if (qc_tokenizer_load_json(&t, path, &e)) return 0;
    fuzz_tokenizer_use(&t, text, sizeof text - 1);
    for (int i = 0; i < qc_tokenizer_merge_count(&t); i++) {
        int32_t l, r;
        qc_tokenizer_merge(&t, i, &l, &r);
    }
    (void)qc_tokenizer_byte_level(&t);
    (void)qc_tokenizer_pre_name(&t);
    qc_tokenizer_free(&t);
    return 0;
}
