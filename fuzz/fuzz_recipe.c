/* fuzz_recipe.c — quantization recipes (--quantize's JSON): the input is parsed; what parses is
 * dumped and parsed again (the dump must read back: an abort here is a finding), and its rules
 * are applied to stories260K's shape, as a run does before calibrating. Seeds: the README's
 * examples (fuzz/seeds). */
#include "calib/calib.h"
#include "fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>

static qc_status plain_spec(void *ctx, int bits, int groupsize, bool sym, qc_quant_spec *out, qc_err *e) {
    *out = (qc_quant_spec){ .bits = bits, .groupsize = groupsize, .sym = sym };
    return qc_quant_spec_check(out, e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const qc_config cfg = { .dim = 64, .hidden_dim = 172, .n_layers = 5, .n_heads = 8, .n_kv_heads = 4,
                                   .head_dim = 8, .vocab_size = 512, .seq_len = 512, .norm_eps = 1e-5f,
                                   .rope_theta = 10000.0f, .tied_classifier = true };
    qc_recipe r, back;
    qc_err e;
    if (qc_recipe_parse((const char *)data, size, "fuzz", &r, &e)) return 0;
    char *text = qc_recipe_dump(&r);
    if (!text) abort();
    if (qc_recipe_parse(text, strlen(text), "dump", &back, &e)) {
        fprintf(stderr, "the dump does not read back: %s\n%s\n", e.msg, text);
        abort();
    }
    char *again = qc_recipe_dump(&back);
    if (!again || strcmp(text, again) != 0) abort();
    qc_module_quant mods[5 * QC_LIN_COUNT];
    qc_quant_spec base = { .bits = 4, .groupsize = 128 };
    (void)qc_recipe_modules(&r, &cfg, &base, plain_spec, NULL, mods, &e);
    free(text), free(again);
    qc_recipe_free(&r);
    qc_recipe_free(&back);
    return 0;
}
