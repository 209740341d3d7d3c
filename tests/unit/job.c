/* unit/job.c — job/: one quantize run driven as a library call, without the CLI, on the real
 * stories260K: the settings planned (format chosen, contradictions refused as usage errors),
 * the run writing its folder with the checkpoint hook called once per block, the summary
 * (every linear quantized, the file's bits per weight, the written model evaluating to the
 * same perplexity as the solver's linears in memory), a run its format's budget refuses found
 * before any work and leaving nothing behind; and the table of output formats. */
#include "job/job.h"
#include "tests/check.h"

#include <cjson/cJSON.h>
#include <unistd.h>

static const char *calib_texts[1], *eval_texts[1];

/* stories260K with 8 windows of 64 tokens of the TinyStories calibration text, into out. */
static void settings(qc_job_settings *s, const char *out) {
    qc_job_settings_init(s);
    calib_texts[0] = shared_path("data/tinystories/tinystories_calib.txt");
    s->model = shared_path("models/stories260K/stories260K.bin");
    s->out = out;
    s->calib = calib_texts, s->ncalib = 1;
    s->nsamples = 8, s->seqlen = 64;
}

static void count_block(void *ctx, int layer) {
    int *n = ctx;
    CHECK(layer == *n, "checkpoint of block %d after %d blocks", layer, *n);
    ++*n;
}

static void test_run(void) {
    const char *out = tmp_path("job-gptq");
    qc_job_settings s;
    settings(&s, out);
    s.wbits = 4, s.groupsize = 32;
    eval_texts[0] = shared_path("data/tinystories/tinystories_eval.txt");
    s.evals = eval_texts, s.nevals = 1, s.eval_seqlen = 64, s.verify = true;
    qc_err e = { "" };
    qc_job *j = NULL;
    CHECK_OK(qc_job_open(&s, &j, &e), e);
    CHECK_OK(qc_job_plan(j, &e), e);
    int blocks = 0;
    qc_job_hooks h = { .checkpointed = count_block, .ctx = &blocks };
    CHECK_OK(qc_job_run(j, &h, &e), e);
    const qc_job_summary *r = qc_job_summary_of(j);
    CHECK(r->format->format == QC_FMT_GPTQ, "format %s, want gptq (the default for w4 g32)", r->format->name);
    CHECK(r->n_layers == 5 && r->modules == 5 * QC_LIN_COUNT, "%d blocks, %d linears", r->n_layers, r->modules);
    CHECK(blocks == r->n_layers, "the checkpoint hook saw %d of %d blocks", blocks, r->n_layers);
    CHECK(r->opts->spec.bits == 4 && r->opts->spec.groupsize == 32 && r->opts->spec.zero_from_one,
          "the solver's spec: w%d g%d, zero from one %d", r->opts->spec.bits, r->opts->spec.groupsize,
          r->opts->spec.zero_from_one);
    /* 4-bit codes + an fp16 scale and a 4-bit zero per 32 weights: 4 + 20/32 bits per weight, and
     * more where a row's last packed words and groups are partly filled (the 172-wide FFN) */
    CHECK(r->file_bpw >= 4.625 && r->file_bpw < 4.75, "the file's bits per weight %.6f", r->file_bpw);
    CHECK(r->nevals == 1 && r->evals[0].quant.nll == r->evals[0].memory.nll && r->evals[0].fp32.ppl > 1 &&
          r->evals[0].quant.ppl > r->evals[0].fp32.ppl,
          "perplexity fp32 %g, written %g, in memory %g", r->evals[0].fp32.ppl, r->evals[0].quant.ppl,
          r->evals[0].memory.ppl);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(r->json, "format");
    CHECK(cJSON_IsString(fmt) && !strcmp(fmt->valuestring, "gptq"), "summary.json's format");
    const char *files[] = { "model.safetensors", "config.json", "quantize_config.json", "tokenizer.json",
                            "quant_log.csv", "recipe.json", "summary.json" };
    char path[1200];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", out, files[i]);
        CHECK(access(path, F_OK) == 0, "%s missing", path);
    }
    snprintf(path, sizeof path, "%s.work", out);
    CHECK(access(path, F_OK) != 0, "%s left behind", path);
    qc_job_free(j);
}

static void test_refusals(void) {
    qc_err e = { "" };
    qc_job_settings s;
    qc_job *j = NULL;
    settings(&s, tmp_path("job-gguf128"));
    s.format = "gguf", s.groupsize = 128;
    CHECK_OK(qc_job_open(&s, &j, &e), e);
    CHECK_FAILS(qc_job_plan(j, &e), e, "stores blocks of 32: --groupsize 128 contradicts it");
    qc_job_free(j);
    /* mixed precision within 2 bits per weight: no candidate is that small, found before calibrating */
    const char *out = tmp_path("job-budget");
    settings(&s, out);
    s.target_bpw = 2;
    CHECK_OK(qc_job_open(&s, &j, &e), e);
    CHECK_OK(qc_job_plan(j, &e), e);
    CHECK(qc_job_run(j, NULL, &e) != QC_OK && qc_job_usage(j), "a budget below every candidate: %s", e.msg);
    CHECK(access(out, F_OK) != 0, "%s written by a refused run", out);
    qc_job_free(j);
}

static void test_table(void) {
    for (int f = 0; f < QC_FMT_COUNT; f++) {
        const qc_format_row *r = qc_format_row_of((qc_out_format)f);
        qc_out_format back;
        CHECK(r && r->format == (qc_out_format)f && r->write && r->reader, "row %d", f);
        CHECK(qc_out_format_parse(r->name, &back) == r->quantized && (!r->quantized || back == r->format),
              "--format %s", r->name);
        CHECK(!r->bias, "%s: biases stay float", r->name);
        CHECK(!r->quantized || (r->spec && r->module_spec && r->embed_spec && (r->bits & QC_BITS(r->default_bits))),
              "%s: rules, and its default bits among those it holds", r->name);
    }
    const qc_format_row *g = qc_format_row_of(QC_FMT_GGUF);
    qc_quant_spec s = { .bits = 4, .groupsize = 32 };
    CHECK(g->pad && g->pad(&s) == 32 && g->carries_vocab && g->bpw, "gguf pads to 32-blocks, carries its vocabulary");
    const qc_format_row *q = qc_format_row_of(QC_FMT_GPTQ);
    CHECK(q->bits == (QC_BITS(2) | QC_BITS(3) | QC_BITS(4) | QC_BITS(8)) && !q->embed && !q->pad && q->bpw_index,
          "gptq: 2, 3, 4, 8 bits, fp16 embedding, no padding, g_idx counted apart");
    for (int b = 0; b <= 8; b++)
        CHECK(!!(q->bits & QC_BITS(b)) == qc_gptq_format_holds_bits(b), "gptq's row and its writer agree on %d bits", b);
}

int main(void) {
    qc_set_threads(1); /* as the command line does (--threads), before any parallel work */
    RUN(test_table);
    RUN(test_refusals);
    RUN(test_run);
    return check_summary();
}
