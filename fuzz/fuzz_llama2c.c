/* fuzz_llama2c.c — llama2.c checkpoints: the legacy header, export.py's "ak42" versions 1
 * (fp32) and 2 (Q8_0), as `--model FILE.bin` opens them; every weight is then read. */
#include "fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_checkpoint(fuzz_write("model.bin", data, size));
    return 0;
}
