/* fuzz_safetensors.c — a safetensors file: its header (length, JSON, dtypes, shapes, offsets)
 * through qc_safetensors_open, whose every tensor's bytes are then touched, and every "__metadata__" key
 * looked up as an alias (qc_safetensors_lookup); then the same file as
 * the model of a Hugging Face folder (a real config.json beside it, from fuzz/seeds), read in
 * full. */
#include "fuzz/fuzz.h"

#include <stdlib.h>

static volatile uint8_t sink; /* keeps the reads of every tensor byte */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char dir[1024];
    if (!dir[0]) snprintf(dir, sizeof dir, "%s", fuzz_dir_with_fixture("st", "hf", "model.safetensors"));
    const char *path = fuzz_write("st/model.safetensors", data, size);
    qc_safetensors_file f;
    qc_err e;
    if (qc_safetensors_open(&f, path, &e) == QC_OK) {
        for (int i = 0; i < f.ntensors; i++)
            for (size_t b = 0; b < f.tensors[i].nbytes; b++) sink += f.tensors[i].data[b];
        if (f.ntensors) (void)qc_safetensors_find(&f, f.tensors[0].name);
        const qc_safetensors_tensor *t;
        for (int i = 0; i < f.nmeta; i++) /* each "__metadata__" key as a possible alias */
            if (qc_safetensors_lookup(&f, f.meta[i].key, &t, &e) == QC_OK && t) sink += t->nbytes ? t->data[0] : 0;
        qc_safetensors_close(&f);
    }
    fuzz_checkpoint(dir);
    return 0;
}
