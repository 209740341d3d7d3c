/* unit/io_rope_freqs.c — Llama 3's rope_scaling through GGUF (io/rope_freqs.c, gguf_write.c,
 * gguf_checkpoint.c), on tinystories-656K's real weights under a Llama-3-style config: the
 * test writes a folder holding ../shared's config.json with a rope_scaling block added
 * (theta 10000, head_dim 16: wavelengths 6.3, 20, 63 kept below 256/4, 199 interpolated,
 * 628 and up divided above 256/1) and symbolic links to the real model.safetensors and
 * tokenizer.json.
 *   - the factors against the formula evaluated here in double: each is one rounding of the
 *     double value to fp32 (pow's and the divisions' double errors are ~1e-16, far inside), so
 *     within FP32_U of it relatively;
 *   - the GGUF holds them as rope_freqs.weight, F32 [8], bit for bit; read back, the config
 *     has the same factors, and the logits equal the Hugging Face folder's bit for bit (the
 *     same F32 weights, the same factors, the same pass), while the scaling itself moves the
 *     logits far beyond fp32 rounding;
 *   - a model whose factors came from a GGUF cannot be written as config.json (no parameters);
 *     a rope_freqs.weight holding a NaN is refused. */
#include "datasets/datasets.h"
#include "io/gguf.h"
#include "io/io.h"
#include "model/model.h"
#include "tests/bounds.h"
#include "tests/check.h"

#include <sys/stat.h>
#include <unistd.h>

#define FACTOR 8.0
#define LOW 1.0
#define HIGH 4.0
#define ORIGINAL 256
enum { SEQLEN = 128 };

static char dir[4096], gguf[4096];

/* ../shared's config.json with "rope_scaling": null replaced by Llama 3's block. */
static void write_folder(void) {
    snprintf(dir, sizeof dir, "%s", tmp_path("ts656k-llama3"));
    snprintf(gguf, sizeof gguf, "%s", tmp_path("ts656k-llama3.gguf"));
    mkdir(dir, 0755);
    FILE *in = fopen(shared_path("models/tinystories-656K/config.json"), "r");
    static char text[8192], out[9000];
    size_t n = in ? fread(text, 1, sizeof text - 1, in) : 0;
    if (in) fclose(in);
    text[n] = 0;
    char *at = strstr(text, "\"rope_scaling\": null");
    CHECK(at != NULL, "config.json has \"rope_scaling\": null");
    if (!at) return;
    snprintf(out, sizeof out, "%.*s\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": %g, \"low_freq_factor\": %g, "
             "\"high_freq_factor\": %g, \"original_max_position_embeddings\": %d}%s", (int)(at - text), text, FACTOR, LOW,
             HIGH, ORIGINAL, at + strlen("\"rope_scaling\": null"));
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_str(path, out);
    const char *links[] = { "model.safetensors", "tokenizer.json" };
    for (int i = 0; i < 2; i++) {
        char target[4200], rel[200];
        snprintf(rel, sizeof rel, "models/tinystories-656K/%s", links[i]);
        snprintf(target, sizeof target, "%s", shared_path(rel));
        char *real = realpath(target, NULL);
        snprintf(path, sizeof path, "%s/%s", dir, links[i]);
        unlink(path);
        CHECK(real && symlink(real, path) == 0, "link %s", path);
        free(real);
    }
}

/* The factor of frequency i, in double (see io/rope_freqs.c's header for the formula). */
static double factor_ref(int i, int head_dim) {
    double f = pow(10000.0, -2.0 * i / head_dim), wl = 2 * M_PI / f;
    if (wl < ORIGINAL / HIGH) return 1;
    if (wl > ORIGINAL / LOW) return FACTOR;
    double s = (ORIGINAL / wl - LOW) / (HIGH - LOW);
    return 1 / ((1 - s) / FACTOR + s);
}

static float *logits(const char *path, const int32_t *ids, const qc_config *patch) {
    qc_err e = { "" };
    qc_model *m;
    if (qc_model_open(&m, path, &e)) {
        CHECK(0, "open %s: %s", path, e.msg);
        return NULL;
    }
    if (patch) m->cfg = *patch;
    qc_workspace *ws = qc_workspace_new(&m->cfg, SEQLEN, SEQLEN, &e);
    float *lg = malloc((size_t)SEQLEN * m->cfg.vocab_size * sizeof(float));
    CHECK_OK(qc_model_forward(m, ids, 1, SEQLEN, lg, ws, &e), e);
    qc_workspace_free(ws);
    qc_model_free(m);
    return lg;
}

static void test_factors_and_logits(void) {
    qc_err e = { "" };
    write_folder();
    qc_checkpoint *ck;
    CHECK_OK(qc_checkpoint_open(&ck, dir, &e), e);
    if (!ck) return;
    qc_config hc = *qc_checkpoint_config(ck);
    int n = hc.head_dim / 2, kept = 0, mid = 0, divided = 0;
    CHECK(hc.rope_nfreqs == n && n == 8, "%d factors for head_dim %d", hc.rope_nfreqs, hc.head_dim);
    for (int i = 0; i < n; i++) {
        double r = factor_ref(i, hc.head_dim);
        kept += r == 1, divided += r == FACTOR, mid += r != 1 && r != FACTOR;
        CHECK(fabs(hc.rope_freqs[i] - r) <= FP32_U * r, "factor %d: %.9g, formula %.17g", i, (double)hc.rope_freqs[i], r);
    }
    CHECK(kept == 3 && mid == 1 && divided == 4, "bands: %d kept, %d interpolated, %d divided", kept, mid, divided);

    /* the GGUF: rope_freqs.weight as the config's factors */
    qc_weight_source src = qc_checkpoint_source(ck);
    qc_tokenizer tok;
    CHECK_OK(qc_tokenizer_load(&tok, shared_path("models/tinystories-656K/tokenizer.json"), hc.vocab_size, &e), e);
    qc_gguf_export_opts go = { .float_type = QC_GGUF_F32, .embed_type = QC_GGUF_F32, .output_type = QC_GGUF_F32,
                               .tok = &tok, .name = dir };
    CHECK_OK(qc_gguf_export(&src, gguf, &go, NULL, &e), e);
    qc_gguf_file f;
    CHECK_OK(qc_gguf_file_open(&f, gguf, &e), e);
    const qc_gguf_tensor *t = qc_gguf_find_tensor(&f, "rope_freqs.weight");
    CHECK(t && t->type->id == QC_GGUF_F32 && t->n_dims == 1 && t->ne[0] == n, "rope_freqs.weight F32 [%d]", n);
    if (t) CHECK(memcmp(t->data, hc.rope_freqs, (size_t)n * 4) == 0, "rope_freqs.weight holds the config's factors");
    size_t data_at = t ? (size_t)(t->data - (const uint8_t *)f.map.data) : 0;
    qc_gguf_file_close(&f);

    qc_checkpoint *gk;
    CHECK_OK(qc_checkpoint_open(&gk, gguf, &e), e);
    if (gk) {
        const qc_config *gc = qc_checkpoint_config(gk);
        CHECK(gc->rope_nfreqs == n && memcmp(gc->rope_freqs, hc.rope_freqs, (size_t)n * sizeof(float)) == 0,
              "the GGUF read back: the same %d factors", n);
        qc_weight_source gs = qc_checkpoint_source(gk);
        qc_hf_export_opts ho = { QC_DT_F32, 0 };
        CHECK_FAILS(qc_hf_export(&gs, tmp_path("ts656k-llama3-back"), &ho, true, NULL, &e), e,
                    "without the rope_scaling parameters config.json needs");
        qc_checkpoint_close(gk);
    }

    /* logits: the GGUF's equal the folder's; without the scaling they move far beyond rounding */
    int32_t *ids = NULL;
    size_t nids = 0;
    qc_corpus c;
    CHECK_OK(qc_corpus_load(&c, shared_path("data/tinystories/tinystories_eval.txt"), &e), e);
    CHECK_OK(qc_tokenizer_encode(&tok, c.text, c.len, true, false, &ids, &nids, &e), e);
    CHECK(nids >= SEQLEN, "%zu tokens", nids);
    qc_corpus_free(&c);
    float *a = logits(dir, ids, NULL), *b = logits(gguf, ids, NULL);
    qc_config plain = hc;
    plain.rope_nfreqs = 0;
    float *p = logits(dir, ids, &plain);
    size_t nl = (size_t)SEQLEN * hc.vocab_size;
    CHECK(a && b && memcmp(a, b, nl * sizeof(float)) == 0, "GGUF and HF folder: the same logits bit for bit");
    double bound = fp32_logits_bound(&hc, SEQLEN, a, nl), effect = 0;
    for (size_t i = 0; a && p && i < nl; i++) effect = fmax(effect, fabs((double)a[i] - p[i]));
    printf("    the scaling moves the logits by up to %.3g (fp32 bound %.3g)\n", effect, bound);
    CHECK(effect > 100 * bound, "the scaling changes the logits (%.3g) far beyond rounding (%.3g)", effect, bound);
    free(a), free(b), free(p), free(ids);
    qc_tokenizer_free(&tok);
    qc_checkpoint_close(ck);

    /* a broken rope_freqs.weight: a NaN factor */
    if (data_at) {
        char bad[4200];
        snprintf(bad, sizeof bad, "%s", tmp_path("ts656k-llama3-nan.gguf"));
        qc_map map;
        CHECK_OK(qc_map_open(&map, gguf, &e), e);
        uint8_t *copy = malloc(map.size);
        memcpy(copy, map.data, map.size);
        float nan = NAN;
        memcpy(copy + data_at + 4, &nan, 4);
        write_file(bad, copy, map.size);
        qc_map_close(&map);
        free(copy);
        qc_checkpoint *bk = NULL;
        CHECK_FAILS(qc_checkpoint_open(&bk, bad, &e), e, "RoPE frequency factor 1 is nan");
        qc_checkpoint_close(bk);
    }
}

int main(void) {
    RUN(test_factors_and_logits);
    return check_summary();
}
