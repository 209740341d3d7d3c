/* fuzz_npy.c — NumPy .npy token windows (`--calib-tokens`): magic, version, header dict,
 * shape and data size. */
#include "fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    qc_windows w;
    qc_err e;
    if (qc_windows_load_npy(fuzz_write("w.npy", data, size), &w, &e) == QC_OK) qc_windows_free(&w);
    return 0;
}
