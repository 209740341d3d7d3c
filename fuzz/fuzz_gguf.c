/* fuzz_gguf.c — the GGUF reader (header, metadata, tensor table, F32/F16/BF16/Q4_0/Q4_1/Q8_0
 * data) as `--model FILE.gguf` opens it; every weight and the embedded vocabulary are then
 * read. */
#include "fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_checkpoint(fuzz_write("model.gguf", data, size));
    return 0;
}
