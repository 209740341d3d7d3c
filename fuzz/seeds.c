/* seeds.c — builds the fuzz targets' seed corpora and fixture folders from the real files in
 * the shared folder, at fuzz time (nothing of the shared data is committed):
 *     seeds SHARED OUT
 * writes OUT/seeds/<target>/ (the starting corpus of each fuzz_<target>) and OUT/fixtures/
 * (complete Hugging Face folders whose one file a target replaces by its input).
 *
 * Real files are used as they are (stories260K.bin, tok512.bin) or cut down (the first lines
 * of the C4 sample, the first paragraphs of TinyStories). Small model files come from a
 * "tiny" model: stories260K's own weights cut to 1 layer, dim 32, FFN 64, 4 heads (2 KV
 * heads), vocabulary 64 (the first 64 pieces of tok512), written by qcalib's own writers in
 * every format it reads — small enough that libFuzzer's mutations stay fast; the GGUF K-quant
 * seeds come from a synthetic 256-wide model of one small block. Hugging Face
 * tokenizer.json seeds are tok512's vocabulary restated in the two kinds qcalib reads. */
#include "datasets/datasets.h"
#include "io/io.h"
#include "quant/quant.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define NLIN 7
static const qc_weight lin[NLIN] = { QC_W_Q, QC_W_K, QC_W_V, QC_W_O, QC_W_GATE, QC_W_UP, QC_W_DOWN };

static const char *out_root;

static _Noreturn void fail(const char *what, const qc_err *e) {
    fprintf(stderr, "fuzz/seeds: %s%s%s\n", what, e ? ": " : "", e ? e->msg : "");
    exit(1);
}

static void ok(qc_status st, const char *what, const qc_err *e) {
    if (st) fail(what, e);
}

/* OUT/sub, created; returned in a static buffer of its own per slot. */
static const char *out_path(const char *sub) {
    static char bufs[8][1024];
    static int next;
    char *p = bufs[next++ % 8];
    snprintf(p, 1024, "%s/%s", out_root, sub);
    return p;
}

static void mkdirs(const char *path) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *s = tmp + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            mkdir(tmp, 0755);
            *s = '/';
        }
    mkdir(tmp, 0755);
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f)) fail(path, NULL);
}

static void copy_file(const char *from, const char *to) {
    char *buf;
    size_t n;
    qc_err e;
    ok(qc_read_file(from, (size_t)64 << 20, &buf, &n, &e), from, &e);
    write_bytes(to, buf, n);
    free(buf);
}

/* ---- the tiny model ---------------------------------------------------------------------- */

typedef struct tiny {
    const qc_checkpoint *ck; /* stories260K */
    qc_config cfg;
    qc_qweight *q;           /* (n_layers * NLIN) or NULL: unquantized */
} tiny;

static int lin_index(qc_weight w) {
    for (int k = 0; k < NLIN; k++)
        if (lin[k] == w) return k;
    return -1;
}

/* The top-left (rows, cols) corner of stories260K's weight, layer for layer. */
static qc_status tiny_float(const tiny *t, qc_weight w, int layer, float *out, qc_err *e) {
    const qc_config *big = qc_checkpoint_config(t->ck);
    int br, bc, r, c;
    qc_weight_shape(big, w, &br, &bc);
    qc_weight_shape(&t->cfg, w, &r, &c);
    float *full = qc_malloc((size_t)br * bc, sizeof *full, e, "seeds");
    if (!full) return QC_ERR_NOMEM;
    qc_status st = qc_checkpoint_read(t->ck, w, layer, full, e);
    for (int i = 0; !st && i < r; i++) memcpy(out + (size_t)i * c, full + (size_t)i * bc, (size_t)c * sizeof *out);
    free(full);
    return st;
}

static const qc_qweight *tiny_qweight(void *ctx, qc_weight w, int layer) {
    const tiny *t = ctx;
    int k = lin_index(w);
    const qc_qweight *q = t->q && k >= 0 ? &t->q[layer * NLIN + k] : NULL;
    return q && q->codes ? q : NULL; /* codes NULL: a linear left unquantized */
}

static qc_status tiny_read(void *ctx, qc_weight w, int layer, float *out, qc_err *e) {
    const qc_qweight *q = tiny_qweight(ctx, w, layer);
    if (q) {
        qc_qweight_dequantize(q, out);
        return QC_OK;
    }
    return tiny_float(ctx, w, layer, out, e);
}

static qc_weight_source tiny_source(tiny *t) {
    return (qc_weight_source){ .cfg = &t->cfg, .read = tiny_read, .qweight = tiny_qweight, .ctx = t };
}

/* Linear k of layer l quantized by round-to-nearest with spec s. */
static void tiny_quantize_one(tiny *t, int l, int k, const qc_quant_spec *s) {
    qc_err e;
    int r, c;
    qc_weight_shape(&t->cfg, lin[k], &r, &c);
    float *w = malloc((size_t)r * c * sizeof *w);
    if (!w) fail("out of memory", NULL);
    ok(tiny_float(t, lin[k], l, w, &e), "reading a weight", &e);
    qc_qweight_free(&t->q[l * NLIN + k]);
    ok(qc_quant_rtn(w, r, c, s, &t->q[l * NLIN + k], &e), "quantizing", &e);
    free(w);
}

/* Quantizes the tiny model's linears by round-to-nearest with spec s. */
static void tiny_quantize(tiny *t, const qc_quant_spec *s) {
    t->q = calloc((size_t)t->cfg.n_layers * NLIN, sizeof *t->q);
    if (!t->q) fail("out of memory", NULL);
    for (int l = 0; l < t->cfg.n_layers; l++)
        for (int k = 0; k < NLIN; k++) tiny_quantize_one(t, l, k, s);
}

static void tiny_unquantize(tiny *t) {
    for (int i = 0; t->q && i < t->cfg.n_layers * NLIN; i++) qc_qweight_free(&t->q[i]);
    free(t->q);
    t->q = NULL;
}

/* ---- model files --------------------------------------------------------------------------- */

/* llama2.c's export.py version 1 (fp32, 256-byte header; layout in io/llama2c_q8.c): there is
 * no writer for it in qcalib, so it is laid out here. */
static void write_ak42_v1(tiny *t, const char *path) {
    const qc_config *c = &t->cfg;
    qc_err e;
    FILE *f = fopen(path, "wb");
    if (!f) fail(path, NULL);
    uint8_t h[256] = { 0 };
    int32_t v[9] = { 0x616b3432, 1, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size,
                     c->seq_len };
    memcpy(h, v, sizeof v);
    h[36] = c->tied_classifier;
    fwrite(h, 1, sizeof h, f);
    const qc_weight order[] = { QC_W_ATTN_NORM, QC_W_FFN_NORM, QC_W_FINAL_NORM, QC_W_EMBED, QC_W_Q,   QC_W_K,
                                QC_W_V,         QC_W_O,        QC_W_GATE,       QC_W_DOWN,  QC_W_UP, QC_W_CLASSIFIER };
    for (size_t i = 0; i < sizeof order / sizeof *order; i++) {
        qc_weight w = order[i];
        if (w == QC_W_CLASSIFIER && c->tied_classifier) continue;
        int r, cols;
        qc_weight_shape(c, w, &r, &cols);
        float *buf = malloc((size_t)r * cols * sizeof *buf);
        for (int l = 0; l < (qc_weight_is_global(w) ? 1 : c->n_layers); l++) {
            ok(tiny_read(t, w, l, buf, &e), "reading a weight", &e);
            fwrite(buf, sizeof *buf, (size_t)r * cols, f);
        }
        free(buf);
    }
    if (fclose(f)) fail(path, NULL);
}

static qc_status outdir_export(tiny *t, const char *dir, int kind, qc_err *e) {
    qc_outdir d;
    qc_weight_source src = tiny_source(t);
    qc_status st = qc_outdir_open(&d, dir, true, e);
    if (st) return st;
    if (kind == 'g') {
        qc_gptq_export_opts o = { .checkpoint_format = 1, .damp_percent = 0.01f, .true_sequential = true };
        st = qc_gptq_export_into(&src, &d, &o, NULL, e);
    } else {
        st = qc_awq_export_into(&src, &d, NULL, e);
    }
    if (!st) st = qc_outdir_commit(&d, e);
    else qc_outdir_abort(&d);
    return st;
}

static void model_files(tiny *t, const qc_tokenizer *tok) {
    qc_err e;
    qc_weight_source src = tiny_source(t);
    /* llama2.c: legacy tied and untied, version 1, version 2 */
    ok(qc_llama2c_export(&src, out_path("seeds/llama2c/tiny_tied.bin"), NULL, &e), "legacy", &e);
    write_ak42_v1(t, out_path("seeds/llama2c/tiny_v1.bin"));
    ok(qc_llama2c_q8_export(&src, out_path("seeds/llama2c/tiny_v2.bin"), 32, NULL, &e), "version 2", &e);
    t->cfg.tied_classifier = false;
    ok(qc_llama2c_export(&src, out_path("seeds/llama2c/tiny_untied.bin"), NULL, &e), "legacy untied", &e);
    write_ak42_v1(t, out_path("seeds/llama2c/tiny_v1_untied.bin"));
    t->cfg.tied_classifier = true;

    /* GGUF: every block type through the embedding and classifier types */
    qc_gguf_export_opts g = { .float_type = QC_GGUF_F32, .embed_type = QC_GGUF_F32, .output_type = QC_GGUF_F32,
                              .tok = tok, .name = "tiny" };
    ok(qc_gguf_export(&src, out_path("seeds/gguf/tiny_f32.gguf"), &g, NULL, &e), "gguf f32", &e);
    g = (qc_gguf_export_opts){ QC_GGUF_F16, QC_GGUF_Q4_0, QC_GGUF_Q8_0, tok, "tiny", 0 };
    ok(qc_gguf_export(&src, out_path("seeds/gguf/tiny_f16_q4_0.gguf"), &g, NULL, &e), "gguf f16", &e);
    g = (qc_gguf_export_opts){ QC_GGUF_F32, QC_GGUF_Q4_1, QC_GGUF_Q4_0, tok, "tiny", 0 };
    ok(qc_gguf_export(&src, out_path("seeds/gguf/tiny_q4_1.gguf"), &g, NULL, &e), "gguf q4_1", &e);
    /* Llama 3's rope_scaling: a rope_freqs.weight tensor */
    qc_config plain = t->cfg;
    t->cfg.rope_factor = 8, t->cfg.rope_low_freq_factor = 1, t->cfg.rope_high_freq_factor = 4;
    t->cfg.rope_original_ctx = 64;
    ok(qc_config_set_llama3_rope(&t->cfg, "tiny", &e), "llama3 rope", &e);
    g = (qc_gguf_export_opts){ QC_GGUF_F32, QC_GGUF_F32, QC_GGUF_F32, tok, "tiny", 0 };
    ok(qc_gguf_export(&src, out_path("seeds/gguf/tiny_rope_freqs.gguf"), &g, NULL, &e), "gguf rope_freqs", &e);
    t->cfg = plain;
    /* the K-quants need rows of 256: a synthetic model 256 wide with one 8-wide head and an
     * 8-wide FFN (its linears small in F16), the embedding and classifier in each K-quant type;
     * under 64 KiB each */
    qc_synth syn = { .cfg = { .dim = 256, .hidden_dim = 8, .n_layers = 1, .n_heads = 1, .n_kv_heads = 1, .head_dim = 8,
                              .vocab_size = t->cfg.vocab_size, .seq_len = 32, .norm_eps = 1e-5f,
                              .rope_theta = 10000.0f },
                     .seed = 1 };
    qc_weight_source ksrc = qc_synth_source(&syn);
    const qc_gguf_type kpairs[3][2] = { { QC_GGUF_Q4_K, QC_GGUF_Q6_K }, { QC_GGUF_Q2_K, QC_GGUF_Q3_K },
                                        { QC_GGUF_Q5_K, QC_GGUF_Q4_K } };
    for (int k = 0; k < 3; k++) {
        char name[64];
        snprintf(name, sizeof name, "seeds/gguf/k256_%s_%s.gguf", qc_gguf_type_name(kpairs[k][0]),
                 qc_gguf_type_name(kpairs[k][1]));
        g = (qc_gguf_export_opts){ QC_GGUF_F16, kpairs[k][0], kpairs[k][1], tok, "k256", 0 };
        ok(qc_gguf_export(&ksrc, out_path(name), &g, NULL, &e), "gguf k-quants", &e);
    }

    /* Hugging Face folders: plain (F32, F16, BF16), sharded, GPTQ, AWQ */
    qc_hf_export_opts h = { .dtype = QC_DT_F32 };
    ok(qc_hf_export(&src, out_path("fixtures/hf"), &h, true, NULL, &e), "hf", &e);
    h.dtype = QC_DT_BF16;
    ok(qc_hf_export(&src, out_path("fixtures/hf_bf16"), &h, true, NULL, &e), "hf bf16", &e);
    h = (qc_hf_export_opts){ .dtype = QC_DT_F16, .shard_bytes = 8 << 10 };
    ok(qc_hf_export(&src, out_path("fixtures/sharded"), &h, true, NULL, &e), "hf sharded", &e);
    qc_quant_spec s = { .bits = 4, .groupsize = 32, .f16_scales = true, .zero_from_one = true };
    tiny_quantize(t, &s);
    ok(outdir_export(t, out_path("fixtures/gptq"), 'g', &e), "gptq", &e);
    ok(outdir_export(t, out_path("fixtures/awq"), 'a', &e), "awq", &e);
    tiny_unquantize(t);
    s = (qc_quant_spec){ .bits = 3, .groupsize = -1, .sym = true, .f16_scales = true, .zero_from_one = true };
    tiny_quantize(t, &s);
    ok(outdir_export(t, out_path("fixtures/gptq3"), 'g', &e), "gptq 3-bit", &e);
    tiny_unquantize(t);
    /* per-module settings (a "dynamic" section): 4-bit g32, down_proj 8-bit symmetric, v_proj
     * left unquantized */
    s = (qc_quant_spec){ .bits = 4, .groupsize = 32, .f16_scales = true, .zero_from_one = true };
    tiny_quantize(t, &s);
    s = (qc_quant_spec){ .bits = 8, .groupsize = 32, .sym = true, .f16_scales = true, .zero_from_one = true };
    tiny_quantize_one(t, 0, 6, &s);
    qc_qweight_free(&t->q[2]);
    ok(outdir_export(t, out_path("fixtures/gptq_mixed"), 'g', &e), "gptq mixed", &e);
    tiny_unquantize(t);

    const char *dirs[] = { "hf", "hf_bf16", "gptq", "gptq3", "awq", "gptq_mixed" };
    char from[1024], to[1024];
    for (int i = 0; i < 6; i++) {
        snprintf(from, sizeof from, "%s/fixtures/%s/model.safetensors", out_root, dirs[i]);
        snprintf(to, sizeof to, "%s/seeds/safetensors/%s.safetensors", out_root, dirs[i]);
        copy_file(from, to);
        snprintf(from, sizeof from, "%s/fixtures/%s/config.json", out_root, dirs[i]);
        snprintf(to, sizeof to, "%s/seeds/hf_config/%s.json", out_root, dirs[i]);
        copy_file(from, to);
    }
    copy_file(out_path("fixtures/sharded/model.safetensors.index.json"), out_path("seeds/hf_index/index.json"));
    snprintf(from, sizeof from, "%s/fixtures/sharded", out_root);
    DIR *d = opendir(from);
    if (!d) fail(from, NULL);
    for (struct dirent *de; (de = readdir(d));) /* the first shard */
        if (strstr(de->d_name, "-00001-of-")) {
            snprintf(from, sizeof from, "%s/fixtures/sharded/%s", out_root, de->d_name);
            copy_file(from, out_path("seeds/safetensors/shard.safetensors"));
        }
    closedir(d);
}

/* ---- tokenizers, texts, windows ----------------------------------------------------------- */

/* llama2.c's tokenizer format for the first n pieces of tok. */
static void write_tokenizer(const qc_tokenizer *tok, int n, const char *path) {
    FILE *f = fopen(path, "wb");
    if (!f) fail(path, NULL);
    int32_t maxlen = 0;
    for (int i = 0; i < n; i++) maxlen = tok->piece_len[i] > maxlen ? tok->piece_len[i] : maxlen;
    fwrite(&maxlen, 4, 1, f);
    for (int i = 0; i < n; i++) {
        int32_t len = tok->piece_len[i];
        fwrite(&tok->scores[i], 4, 1, f);
        fwrite(&len, 4, 1, f);
        fwrite(tok->pieces[i], 1, (size_t)len, f);
    }
    if (fclose(f)) fail(path, NULL);
}

/* ---- tokenizer.json seeds -------------------------------------------------------------------- */

/* GPT-2's byte-level alphabet: printable Latin-1 bytes stand for themselves, the others for
 * U+0100 upwards in byte order; written as UTF-8 to out (at most 2 bytes), returns the length. */
static int byte_char(int b, char *out) {
    int cp = b, extra = 0;
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)) {
        for (int k = 0; k < b; k++) extra += !((k >= 33 && k <= 126) || (k >= 161 && k <= 172) || k >= 174);
        cp = 256 + extra;
    }
    if (cp < 0x80) return out[0] = (char)cp, 1;
    out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

typedef struct merge {
    char a[128], b[128];
    float score;
    int id;
} merge;

static int cmp_merge(const void *x, const void *y) {
    const merge *p = x, *q = y;
    return p->score != q->score ? (p->score < q->score ? 1 : -1) : p->id - q->id;
}

/* Piece i of tok as the tokenizer.json spells it: spaces as "▁" (SentencePiece) or every
 * byte through the byte-level alphabet. */
static void spell(const qc_tokenizer *tok, int i, bool byte_level, char *out, size_t cap) {
    size_t n = 0;
    for (int k = 0; k < tok->piece_len[i] && n + 4 < cap; k++) {
        unsigned char c = (unsigned char)tok->pieces[i][k];
        if (byte_level) n += (size_t)byte_char(c, out + n);
        else if (c == ' ') memcpy(out + n, "\xe2\x96\x81", 3), n += 3;
        else out[n++] = (char)c;
    }
    out[n] = '\0';
}

static cJSON *special_token(int id, const char *content) {
    cJSON *t = cJSON_CreateObject();
    cJSON_AddNumberToObject(t, "id", id);
    cJSON_AddStringToObject(t, "content", content);
    cJSON_AddBoolToObject(t, "single_word", false);
    cJSON_AddBoolToObject(t, "lstrip", false);
    cJSON_AddBoolToObject(t, "rstrip", false);
    cJSON_AddBoolToObject(t, "normalized", false);
    cJSON_AddBoolToObject(t, "special", true);
    return t;
}

/* A tokenizer.json of tok's vocabulary, merges from every split of a piece into two pieces
 * (ranked by the piece's score). kind 0: SentencePiece-BPE (Llama 2's normalizer and
 * decoder, byte fallback); 1: byte-level BPE (GPT-2's ByteLevel pre-tokenizer with its own
 * regex); 2: byte-level with Llama 3's Split regex before ByteLevel, and NFC; 3: kind 2 with a
 * split regex built to backtrack (201^3 steps per position; issue 17), which must fail fast. */
static void write_tokenizer_json(const qc_tokenizer *tok, int kind, const char *path) {
    bool bl = kind > 0;
    cJSON *root = cJSON_CreateObject(), *vocab = cJSON_CreateObject(), *merges = cJSON_CreateArray();
    cJSON *added = cJSON_CreateArray();
    merge *m = calloc((size_t)tok->vocab_size * 8, sizeof *m);
    int nm = 0, next = 0;
    char sp[512];
    if (!m) fail("out of memory", NULL);
    if (bl)
        for (int b = 0; b < 256; b++) {
            char c[3] = { 0 };
            byte_char(b, c);
            cJSON_AddNumberToObject(vocab, c, next++);
        }
    for (int i = 0; i < tok->vocab_size; i++) {
        bool byte_piece = tok->piece_len[i] == 6 && memcmp(tok->pieces[i], "<0x", 3) == 0;
        if (bl && (i < 3 || byte_piece)) continue;
        spell(tok, i, bl, sp, sizeof sp);
        if (cJSON_GetObjectItemCaseSensitive(vocab, sp)) continue;
        cJSON_AddNumberToObject(vocab, sp, bl ? next++ : i);
        if (i < 3 || byte_piece) continue;
        for (size_t k = 1; sp[k] && nm < tok->vocab_size * 8; k++) { /* every split at a character boundary */
            if (((unsigned char)sp[k] & 0xC0) == 0x80) continue;
            merge *g = &m[nm];
            snprintf(g->a, sizeof g->a, "%.*s", (int)k, sp);
            snprintf(g->b, sizeof g->b, "%s", sp + k);
            if (cJSON_GetObjectItemCaseSensitive(vocab, g->a) && cJSON_GetObjectItemCaseSensitive(vocab, g->b))
                g->score = tok->scores[i], g->id = i, nm++;
        }
    }
    qsort(m, (size_t)nm, sizeof *m, cmp_merge);
    for (int i = 0; i < nm; i++) {
        char pair[260];
        snprintf(pair, sizeof pair, "%s %s", m[i].a, m[i].b);
        cJSON_AddItemToArray(merges, cJSON_CreateString(pair));
    }
    free(m);
    if (bl) {
        cJSON_AddItemToArray(added, special_token(next, "<|endoftext|>"));
        cJSON_AddNumberToObject(vocab, "<|endoftext|>", next);
    } else {
        for (int i = 0; i < 3; i++) cJSON_AddItemToArray(added, special_token(i, tok->pieces[i]));
    }
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddItemToObject(root, "added_tokens", added);
    const char *rest[4] = {
        "{\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\u2581\"},"
        "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\u2581\"}]},\"pre_tokenizer\":null,"
        "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\u2581\"},"
        "\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \","
        "\"start\":1,\"stop\":0}]},\"byte_fallback\":true}",
        "{\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
        "\"trim_offsets\":true,\"use_regex\":true},\"decoder\":{\"type\":\"ByteLevel\"},\"byte_fallback\":false}",
        "{\"normalizer\":{\"type\":\"NFC\"},\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":["
        "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|"
        "\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},"
        "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
        "\"trim_offsets\":true,\"use_regex\":false}]},\"decoder\":{\"type\":\"ByteLevel\"},\"byte_fallback\":false}",
        "{\"normalizer\":{\"type\":\"NFC\"},\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":["
        "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"[^Z]{0,200}[^Z]{0,200}[^Z]{0,200}Z|.\"},"
        "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
        "\"trim_offsets\":true,\"use_regex\":false}]},\"decoder\":{\"type\":\"ByteLevel\"},\"byte_fallback\":false}",
    };
    cJSON *parts = cJSON_Parse(rest[kind]);
    if (!parts) fail("tokenizer.json seed template", NULL);
    cJSON_AddItemToObject(root, "normalizer", cJSON_DetachItemFromObject(parts, "normalizer"));
    cJSON_AddItemToObject(root, "pre_tokenizer", cJSON_DetachItemFromObject(parts, "pre_tokenizer"));
    cJSON_AddNullToObject(root, "post_processor");
    cJSON_AddItemToObject(root, "decoder", cJSON_DetachItemFromObject(parts, "decoder"));
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    if (!bl) cJSON_AddStringToObject(model, "unk_token", tok->pieces[0]);
    cJSON_AddBoolToObject(model, "fuse_unk", !bl);
    cJSON_AddItemToObject(model, "byte_fallback", cJSON_DetachItemFromObject(parts, "byte_fallback"));
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddItemToObject(model, "merges", merges);
    cJSON_Delete(parts);
    char *text = cJSON_PrintUnformatted(root);
    if (!text) fail("out of memory", NULL);
    write_bytes(path, text, strlen(text));
    free(text);
    cJSON_Delete(root);
}

/* The first `lines` lines of text (all of it if it has fewer). */
static size_t head_lines(const char *text, size_t len, int lines) {
    size_t at = 0;
    for (int i = 0; i < lines && at < len; i++) {
        const char *nl = memchr(text + at, '\n', len - at);
        at = nl ? (size_t)(nl - text) + 1 : len;
    }
    return at;
}

static void write_gzip(const char *path, const char *data, size_t n) {
    gzFile g = gzopen(path, "wb9");
    if (!g || gzwrite(g, data, (unsigned)n) != (int)n || gzclose(g) != Z_OK) fail(path, NULL);
}

static void texts(const char *shared, const qc_tokenizer *tok) {
    char path[1024];
    qc_err e;
    /* C4: the first lines of the real sample, as JSONL and gzip'd */
    snprintf(path, sizeof path, "%s/data/c4/c4-validation-2k.json.gz", shared);
    qc_corpus c4;
    ok(qc_corpus_load(&c4, path, &e), "C4", &e);
    char *raw;
    size_t raw_len;
    gzFile g = gzopen(path, "rb");
    raw = malloc((size_t)64 << 20);
    int got = g ? gzread(g, raw, (unsigned)(64 << 20)) : -1;
    if (!g || got <= 0) fail(path, NULL);
    gzclose(g);
    raw_len = (size_t)got;
    const int lines[] = { 1, 3, 12 };
    for (int i = 0; i < 3; i++) {
        size_t n = head_lines(raw, raw_len, lines[i]);
        char name[64];
        snprintf(name, sizeof name, "seeds/jsonl/c4_%d.jsonl", lines[i]);
        write_bytes(out_path(name), raw, n);
        snprintf(name, sizeof name, "seeds/json_gz/c4_%d.json.gz", lines[i]);
        write_gzip(out_path(name), raw, n);
    }
    /* two gzip members back to back, as gzip -d reads them */
    const char *m1 = out_path("seeds/json_gz/c4_1.json.gz"), *m2 = out_path("seeds/json_gz/c4_3.json.gz");
    char *b1, *b2;
    size_t n1, n2;
    ok(qc_read_file(m1, (size_t)1 << 24, &b1, &n1, &e), m1, &e);
    ok(qc_read_file(m2, (size_t)1 << 24, &b2, &n2, &e), m2, &e);
    char *both = malloc(n1 + n2);
    if (!both) fail("out of memory", NULL);
    memcpy(both, b1, n1);
    memcpy(both + n1, b2, n2);
    write_bytes(out_path("seeds/json_gz/c4_two_members.json.gz"), both, n1 + n2);
    /* a gzip bomb (issue 17): one JSON line of 16 MiB of text, about 16 KiB gzip'd */
    size_t bomb_len = (size_t)16 << 20;
    char *bomb = malloc(bomb_len);
    if (!bomb) fail("out of memory", NULL);
    memset(bomb, 'a', bomb_len);
    memcpy(bomb, "{\"text\": \"", 10);
    memcpy(bomb + bomb_len - 3, "\"}\n", 3);
    write_gzip(out_path("seeds/json_gz/bomb_16MiB.json.gz"), bomb, bomb_len);
    free(bomb);
    free(both), free(b1), free(b2);
    free(raw);
    qc_corpus_free(&c4);

    /* windows: the first tokens of TinyStories' calibration text, int32 and int64 */
    snprintf(path, sizeof path, "%s/data/tinystories/tinystories_calib.txt", shared);
    qc_corpus ts;
    ok(qc_corpus_load(&ts, path, &e), "TinyStories", &e);
    int32_t *ids;
    size_t n;
    ok(qc_tokenizer_encode(tok, ts.text, ts.len < 4096 ? ts.len : 4096, true, false, &ids, &n, &e), "encode", &e);
    for (int item = 4; item <= 8; item += 4) {
        char hdr[128];
        int hl = snprintf(hdr, sizeof hdr, "{'descr': '<i%d', 'fortran_order': False, 'shape': (4, 16), }", item);
        while ((10 + hl + 1) % 64) hdr[hl++] = ' ';
        hdr[hl++] = '\n';
        uint8_t buf[10 + 128 + 64 * 8];
        memcpy(buf, "\x93NUMPY\x01\x00", 8);
        buf[8] = (uint8_t)hl, buf[9] = 0;
        memcpy(buf + 10, hdr, (size_t)hl);
        size_t at = 10 + (size_t)hl;
        for (int i = 0; i < 64; i++) {
            int64_t v = ids[i];
            memcpy(buf + at, &v, (size_t)item); /* little endian */
            at += (size_t)item;
        }
        write_bytes(out_path(item == 4 ? "seeds/npy/ts_i4.npy" : "seeds/npy/ts_i8.npy"), buf, at);
    }
    free(ids);
    /* a plain-text seed for the JSONL target too: a JSON line holding TinyStories' start */
    size_t cut = head_lines(ts.text, ts.len, 4);
    FILE *f = fopen(out_path("seeds/jsonl/tinystories.jsonl"), "wb");
    if (!f) fail("jsonl", NULL);
    fputs("{\"text\": \"", f);
    for (size_t i = 0; i < cut; i++) {
        char ch = ts.text[i];
        if (ch == '\n') fputs("\\n", f);
        else if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else fputc(ch, f);
    }
    fputs("\"}\n", f);
    fclose(f);
    qc_corpus_free(&ts);
}

/* The README's recipe examples, one file each; then hostile ones (issue 17): a NUL inside a
 * module pattern and inside a value (refused, not cut short), terminal escapes in a key. */
static void recipes(void) {
    static const char *const r[] = {
        "{\"method\": \"gptq\", \"linear:int4\": {\"groupsize\": 128}}",
        "{\"linear:int8\": {\"groupsize\": 0}}",
        "{\"linear:a8w4dq\": {\"groupsize\": 32}}",
        "{\"linear:int4\": {\"sym\": false}, \"act_quant\": \"a6\"}",
        "{\"embedding\": {\"bitwidth\": 8, \"groupsize\": 0}, \"linear:int3\": {\"groupsize\": 64, \"sym\": true}}",
        "{\"gptq\": {\"percdamp\": 0.1, \"blocksize\": 64, \"act_order\": true, \"static_groups\": false, "
        "\"true_sequential\": false, \"mse\": true}, \"target_bpw\": 4.5, \"observe\": 4, \"method\": \"rtn\"}",
        "{\"model.layers.*.mlp.down_proj\": {\"bits\": 8, \"groupsize\": 32}, \"model.layers.[0-1].self_attn.?_proj\": "
        "{\"sym\": true, \"skip\": false}, \"skip\": [\"model.layers.0.*\", \"*.o_proj\"]}",
        "{\"model.layers.*\\u0000.mlp.down_proj\": {\"bits\": 8}}",
        "{\"method\": \"gptq\\u0000rtn\", \"skip\": [\"*.o_proj\\u0000\"]}",
        "{\"model.layers.*.mlp.down_proj\\u001b[31m\": {\"bits\": 8}, \"x\x1b]0;t\x07\": 1}",
    };
    for (size_t i = 0; i < sizeof r / sizeof *r; i++) {
        char name[64];
        snprintf(name, sizeof name, "seeds/recipe/example%zu.json", i);
        write_bytes(out_path(name), r[i], strlen(r[i]));
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: seeds SHARED OUT\n");
        return 2;
    }
    const char *shared = argv[1];
    out_root = argv[2];
    const char *dirs[] = { "seeds/llama2c", "seeds/gguf", "seeds/safetensors", "seeds/hf_config", "seeds/hf_index",
                           "seeds/tokenizer", "seeds/tokenizer_json", "seeds/jsonl", "seeds/json_gz", "seeds/npy", "seeds/recipe", "fixtures" };
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) mkdirs(out_path(dirs[i]));

    char path[1024];
    qc_err e;
    snprintf(path, sizeof path, "%s/models/stories260K/stories260K.bin", shared);
    qc_checkpoint *ck;
    ok(qc_checkpoint_open(&ck, path, &e), "stories260K", &e);
    copy_file(path, out_path("seeds/llama2c/stories260K.bin"));
    snprintf(path, sizeof path, "%s/models/stories260K/tok512.bin", shared);
    qc_tokenizer tok512, tok64;
    ok(qc_tokenizer_load(&tok512, path, 512, &e), "tok512", &e);
    copy_file(path, out_path("seeds/tokenizer/tok512.bin"));
    write_tokenizer(&tok512, 64, out_path("seeds/tokenizer/tok64.bin"));
    ok(qc_tokenizer_load(&tok64, out_path("seeds/tokenizer/tok64.bin"), 64, &e), "tok64", &e);
    write_tokenizer_json(&tok512, 0, out_path("seeds/tokenizer_json/sentencepiece.json"));
    write_tokenizer_json(&tok512, 1, out_path("seeds/tokenizer_json/byte_level.json"));
    write_tokenizer_json(&tok512, 2, out_path("seeds/tokenizer_json/split_regex.json"));
    write_tokenizer_json(&tok512, 3, out_path("seeds/tokenizer_json/split_backtracking.json"));

    recipes();

    tiny t = { .ck = ck };
    t.cfg = (qc_config){ .dim = 32, .hidden_dim = 64, .n_layers = 1, .n_heads = 4, .n_kv_heads = 2, .head_dim = 8,
                         .vocab_size = 64, .seq_len = 32, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
                         .tied_classifier = true };
    model_files(&t, &tok64);
    texts(shared, &tok512);
    qc_tokenizer_free(&tok64);
    qc_tokenizer_free(&tok512);
    qc_checkpoint_close(ck);
    return 0;
}
