/* unit/job_format_choose.c — job/format_choose.c: the output format a quantize run writes without
 * --format (gguf only for a --gguf-* option, else gptq when it holds every setting given,
 * else fake), GGUF's block type from the settings, and each contradiction between two
 * options given refused with a message naming both. */
#include "job/job.h"
#include "tests/check.h"

#define GIVEN(v, f) ((qc_given){ (v), (f) })

/* Chooses for a; checks the format (and for gguf the block type) or, with `needle`, the
 * refusal and its message. */
static void expect(const char *what, const qc_format_ask *a, qc_out_format want, qc_gguf_type want_type,
                   const char *needle) {
    qc_err e = { "" };
    qc_format_choice c;
    qc_status st = qc_format_choose(a, &c, &e);
    if (needle) {
        CHECK(st == QC_ERR_ARG && strstr(e.msg, needle), "%s: refused with \"%s\" (got %d: \"%s\")", what, needle,
              (int)st, e.msg);
        return;
    }
    CHECK(st == QC_OK && c.format == want && (want != QC_FMT_GGUF || c.gguf_type == want_type),
          "%s: %s (%s), want %s (%s); %s", what, qc_out_format_name(c.format), qc_gguf_type_name(c.gguf_type),
          qc_out_format_name(want), qc_gguf_type_name(want_type), e.msg);
    CHECK(st || c.reason[0], "%s: a reason is given", what);
}

/* Without --format: the settings decide, never the input. */
static void test_default_follows_the_settings(void) {
    qc_format_ask a = { .bits = GIVEN(4, "--wbits"), .groupsize = GIVEN(128, "--groupsize") };
    expect("w4 g128 (the headline command)", &a, QC_FMT_GPTQ, 0, NULL);
    a.groupsize = GIVEN(32, "--groupsize");
    expect("w4 g32, asymmetric", &a, QC_FMT_GPTQ, 0, NULL);
    a.sym = GIVEN(1, "--sym");
    expect("w4 g32 sym: GGUF's q4_0 settings, but GGUF was not asked for", &a, QC_FMT_GPTQ, 0, NULL);
    qc_format_ask none = { 0 };
    expect("nothing given", &none, QC_FMT_GPTQ, 0, NULL);
    qc_format_ask w5 = { .bits = GIVEN(5, "--wbits") };
    expect("--wbits 5: GPTQ cannot, fake can", &w5, QC_FMT_FAKE, 0, NULL);
    qc_format_ask emb = { .bits = GIVEN(4, "the recipe's bits"), .groupsize = GIVEN(32, "the recipe's groupsize"),
                          .embed_bits = GIVEN(8, "the recipe's embedding bitwidth") };
    expect("torchchat's int4 + 8-bit embedding recipe: fake", &emb, QC_FMT_FAKE, 0, NULL);
    qc_format_ask d0 = { .percdamp = 0, .percdamp_from = "--percdamp" };
    expect("--percdamp 0: a GPTQ config cannot record it, fake", &d0, QC_FMT_FAKE, 0, NULL);
    d0.percdamp = 0.1;
    expect("--percdamp 0.1: gptq", &d0, QC_FMT_GPTQ, 0, NULL);
    qc_format_ask sq = { .no_quant = true };
    expect("smoothquant without --wbits: fake", &sq, QC_FMT_FAKE, 0, NULL);

    qc_recipe r;
    qc_err e = { "" };
    qc_recipe_init(&r);
    const char *json = "{\"model.layers.0.mlp.down_proj\": {\"bits\": 6}}";
    CHECK_OK(qc_recipe_parse(json, strlen(json), "test", &r, &e), e);
    qc_format_ask rule = { .recipe = &r };
    expect("a recipe rule at 6 bits: fake", &rule, QC_FMT_FAKE, 0, NULL);
    qc_format_choice c;
    CHECK(!qc_format_choose(&rule, &c, &e) && strstr(c.reason, "6 bits") && strstr(c.reason, "down_proj"),
          "the reason names the rule: %s", c.reason);
    qc_recipe_free(&r);
    json = "{\"model.layers.0.mlp.down_proj\": {\"bits\": 8}, \"skip\": [\"model.layers.1.*\"]}";
    CHECK_OK(qc_recipe_parse(json, strlen(json), "test", &r, &e), e);
    expect("a recipe rule at 8 bits and a skip: gptq", &rule, QC_FMT_GPTQ, 0, NULL);
    qc_recipe_free(&r);
}

/* GGUF when asked for, its type from what was given. */
static void test_gguf_when_asked(void) {
    qc_format_ask a = { .gguf_option = "--gguf-output-type" };
    expect("a --gguf-* option alone: gguf q4_0", &a, QC_FMT_GGUF, QC_GGUF_Q4_0, NULL);
    qc_format_ask g = { .format = "gguf" };
    expect("--format gguf: q4_0", &g, QC_FMT_GGUF, QC_GGUF_Q4_0, NULL);
    g.bits = GIVEN(8, "--wbits");
    expect("--format gguf --wbits 8: q8_0", &g, QC_FMT_GGUF, QC_GGUF_Q8_0, NULL);
    g.bits = GIVEN(4, "the recipe's bits"), g.sym = GIVEN(0, "the recipe's sym");
    expect("--format gguf, a recipe's sym false: q4_1", &g, QC_FMT_GGUF, QC_GGUF_Q4_1, NULL);
    qc_format_ask t = { .gguf_type = "q4_1", .gguf_option = "--gguf-type", .bits = GIVEN(4, "--wbits"),
                        .groupsize = GIVEN(32, "--groupsize") };
    expect("--gguf-type q4_1 --wbits 4 --groupsize 32", &t, QC_FMT_GGUF, QC_GGUF_Q4_1, NULL);
}

/* Two options given that contradict each other: refused, both named. */
static void test_contradictions(void) {
    qc_format_ask a = { .format = "gguf", .groupsize = GIVEN(128, "--groupsize") };
    expect("--format gguf --groupsize 128", &a, 0, 0, "--format gguf stores blocks of 32: --groupsize 128 contradicts it");
    qc_format_ask b = { .format = "gguf", .bits = GIVEN(3, "--wbits") };
    expect("--format gguf --wbits 3", &b, 0, 0, "--format gguf stores 4 or 8 bits (q4_0, q4_1, q8_0): --wbits 3");
    qc_format_ask c = { .gguf_type = "q4_1", .gguf_option = "--gguf-type", .sym = GIVEN(1, "--sym") };
    expect("--gguf-type q4_1 --sym", &c, 0, 0, "--gguf-type q4_1 is asymmetric: --sym contradicts it");
    qc_format_ask d = { .gguf_type = "q4_0", .gguf_option = "--gguf-type", .bits = GIVEN(8, "--wbits") };
    expect("--gguf-type q4_0 --wbits 8", &d, 0, 0, "--gguf-type q4_0 is 4-bit: --wbits 8 contradicts it");
    qc_format_ask f = { .gguf_type = "q4_0", .gguf_option = "--gguf-type", .sym = GIVEN(0, "the recipe's sym") };
    expect("--gguf-type q4_0, a recipe's sym false", &f, 0, 0, "is symmetric: the recipe's sym false contradicts it");
    qc_format_ask g = { .format = "gptq", .gguf_option = "--gguf-no-pad" };
    expect("--format gptq --gguf-no-pad", &g, 0, 0, "--gguf-no-pad applies to --format gguf: --format gptq contradicts it");
    qc_format_ask h = { .gguf_option = "--gguf-embed-type", .groupsize = GIVEN(64, "the recipe's groupsize") };
    expect("--gguf-embed-type with a recipe's groupsize 64", &h, 0, 0,
           "--gguf-embed-type stores blocks of 32: the recipe's groupsize 64 contradicts it");
    qc_format_ask i = { .format = "gguf", .bits = GIVEN(8, "--wbits"), .sym = GIVEN(0, "the recipe's sym") };
    expect("--format gguf --wbits 8, a recipe's sym false", &i, 0, 0, "q8_0, which is symmetric");
    qc_format_ask dg = { .format = "gptq", .percdamp = 0, .percdamp_from = "--percdamp" };
    expect("--format gptq --percdamp 0", &dg, 0, 0, "--format gptq records the damping as damp_percent, which loaders "
           "require in (0, 1): --percdamp 0 contradicts it");
    qc_format_ask j = { .format = "onnx" };
    expect("an unknown format", &j, 0, 0, "--format 'onnx': expected gptq, awq, gguf, llama2c or fake");
    qc_format_ask k = { .gguf_type = "f16", .gguf_option = "--gguf-type" };
    expect("--gguf-type f16", &k, 0, 0, "qcalib convert --to gguf");
}

int main(void) {
    RUN(test_default_follows_the_settings);
    RUN(test_gguf_when_asked);
    RUN(test_contradictions);
    return check_summary();
}
