/* fuzz_hf_index.c — model.safetensors.index.json of a sharded Hugging Face folder: the input
 * replaces the index of a real sharded folder from fuzz/seeds (its config.json and shards
 * stay), which is then opened and read in full. */
#include "fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char dir[1024];
    if (!dir[0])
        snprintf(dir, sizeof dir, "%s", fuzz_dir_with_fixture("idx", "sharded", "model.safetensors.index.json"));
    fuzz_write("idx/model.safetensors.index.json", data, size);
    fuzz_checkpoint(dir);
    return 0;
}
