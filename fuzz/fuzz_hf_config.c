/* fuzz_hf_config.c — config.json, the one option JSON qcalib reads (model shape, and the
 * quantization_config of GPTQ and AWQ folders, GPTQ's per-module "dynamic" regexes included):
 * the input is the config.json of four real folders from fuzz/seeds — plain F32, GPTQ 4-bit,
 * AWQ, and GPTQ with per-module settings — each opened and read in full. */
#include "fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const kinds[] = { "hf", "gptq", "awq", "gptq_mixed" };
    for (int i = 0; i < 4; i++) {
        char sub[64];
        snprintf(sub, sizeof sub, "cfg_%s", kinds[i]);
        char dir[1024];
        snprintf(dir, sizeof dir, "%s", fuzz_dir_with_fixture(sub, kinds[i], "config.json"));
        snprintf(sub, sizeof sub, "cfg_%s/config.json", kinds[i]);
        fuzz_write(sub, data, size);
        fuzz_checkpoint(dir);
    }
    return 0;
}
