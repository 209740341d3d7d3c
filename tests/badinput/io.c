/* badinput/io.c — one small broken input per failure mode of io/'s readers, each built
 * here in the scratch folder: llama2.c files truncated, padded or with absurd headers;
 * safetensors files with every kind of bad header; config.json files malformed, incomplete,
 * mistyped or asking for what is not supported; HF folders with missing, misshapen or
 * quantized tensors; index files malformed or pointing where they must not. Each must fail
 * with a message naming the file and what is wrong. */
#include "io/io.h"
#include "tests/check.h"

#include <sys/stat.h>
#include <unistd.h>

#define STORIES "models/stories260K/stories260K.bin"
#define STORIES_BYTES 1056540

/* Opening path fails with a message containing both the file's name and `what`. */
static void expect_open_fails(const char *path, const char *name, const char *what) {
    qc_err e = { "" };
    qc_checkpoint *ck = NULL;
    qc_status st = qc_checkpoint_open(&ck, path, &e);
    CHECK(st != QC_OK && ck == NULL, "%s: opened, expected \"%s\"", path, what);
    CHECK(strstr(e.msg, name) != NULL, "message \"%s\" does not name %s", e.msg, name);
    CHECK(strstr(e.msg, what) != NULL, "message \"%s\" lacks \"%s\"", e.msg, what);
    qc_checkpoint_close(ck);
}

/* ---- missing files and folders ------------------------------------------------------------- */

static void test_missing(void) {
    expect_open_fails(tmp_path("nope.bin"), "nope.bin", "cannot open");
    expect_open_fails(tmp_path("no_such_dir/"), "no_such_dir", "cannot open");
    expect_open_fails(tmp_path("nope.safetensors"), "nope.safetensors", "no such file");
    mkdir(tmp_path("empty_dir"), 0755);
    expect_open_fails(tmp_path("empty_dir"), "empty_dir/config.json", "cannot open");
    mkdir(tmp_path("config_only"), 0755);
    write_str(tmp_path("config_only/config.json"),
               "{\"model_type\": \"llama\", \"hidden_size\": 8, \"intermediate_size\": 12, \"num_hidden_layers\": 1,"
               " \"num_attention_heads\": 2, \"vocab_size\": 10}");
    expect_open_fails(tmp_path("config_only"), "config_only", "neither model.safetensors nor model.safetensors.index.json");
    write_file(tmp_path("config_only/lonely.safetensors"), "", 0);
    expect_open_fails(tmp_path("config_only/lonely.safetensors"), "lonely.safetensors", "too short");
    mkdir(tmp_path("no_config"), 0755);
    write_file(tmp_path("no_config/model.safetensors"), "", 0);
    expect_open_fails(tmp_path("no_config/model.safetensors"), "no_config/config.json", "cannot open");
}

/* ---- llama2.c ------------------------------------------------------------------------------------ */

static uint8_t *stories(size_t *n) {
    char *buf = NULL;
    qc_err e = { "" };
    CHECK_OK(qc_read_file(shared_path(STORIES), 2 * STORIES_BYTES, &buf, n, &e), e);
    return (uint8_t *)buf;
}

static void test_llama2c_truncated(void) {
    size_t n;
    uint8_t *raw = stories(&n);
    if (!raw) return;
    size_t cuts[] = { 0, 4, 27, 28, 29, 131100, 500000, STORIES_BYTES - 4, STORIES_BYTES - 1 };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "cut%zu.bin", cuts[i]);
        write_file(tmp_path(name), raw, cuts[i]);
        expect_open_fails(tmp_path(name), name, "truncated");
        if (cuts[i] >= 28) expect_open_fails(tmp_path(name), name, "the header implies 1056540 bytes");
    }
    uint8_t *more = calloc(n + 8, 1);
    memcpy(more, raw, n);
    write_file(tmp_path("extra1.bin"), more, n + 1);
    expect_open_fails(tmp_path("extra1.bin"), "extra1.bin", "1 extra bytes after the weights");
    write_file(tmp_path("extra8.bin"), more, n + 8);
    expect_open_fails(tmp_path("extra8.bin"), "extra8.bin", "8 extra bytes");
    free(more);
    free(raw);
}

/* stories260K with header field `field` (0..6) set to v. */
static void bad_header(uint8_t *raw, size_t n, int field, int32_t v, const char *what) {
    char name[64];
    snprintf(name, sizeof name, "hdr%d_%d.bin", field, (int)v);
    int32_t old;
    memcpy(&old, raw + 4 * field, 4);
    memcpy(raw + 4 * field, &v, 4);
    write_file(tmp_path(name), raw, n);
    memcpy(raw + 4 * field, &old, 4);
    expect_open_fails(tmp_path(name), name, what);
}

static void test_llama2c_header(void) {
    size_t n;
    uint8_t *raw = stories(&n);
    if (!raw) return;
    bad_header(raw, n, 0, 1 << 30, "dim 1073741824 is out of range");
    bad_header(raw, n, 0, 0, "dim 0 is out of range");
    bad_header(raw, n, 0, 24, "head_dim 3 is odd");
    bad_header(raw, n, 1, -172, "hidden_dim -172 is out of range");
    bad_header(raw, n, 2, -5, "n_layers -5 is out of range");
    bad_header(raw, n, 2, 100000, "n_layers 100000 is out of range");
    bad_header(raw, n, 3, 7, "dim 64 is not a multiple of n_heads 7");
    bad_header(raw, n, 3, 0, "n_heads 0 is out of range");
    bad_header(raw, n, 4, 3, "n_heads 8 is not a multiple of n_kv_heads 3");
    bad_header(raw, n, 4, 0, "n_kv_heads 0 is out of range");
    bad_header(raw, n, 5, INT32_MIN, "vocab_size -2147483648 is out of range");
    bad_header(raw, n, 5, 0, "vocab_size 0 is out of range");
    bad_header(raw, n, 5, 1 << 23, "vocab_size 8388608 is out of range");
    bad_header(raw, n, 6, -1, "seq_len -1 is out of range");
    /* in range, but the sizes no longer match the file */
    bad_header(raw, n, 5, -512, "truncated");  /* untied: a classifier the file does not have */
    bad_header(raw, n, 2, 4, "extra bytes");   /* one layer fewer */
    bad_header(raw, n, 6, 1 << 22, "truncated");
    uint8_t magic[64] = { '2', '4', 'k', 'a', 2, 0, 0, 0 };
    write_file(tmp_path("v2.bin"), magic, sizeof magic);
    expect_open_fails(tmp_path("v2.bin"), "v2.bin", "truncated: 64 bytes, the llama2.c version 2 header alone needs 256");
    free(raw);
}

/* ---- safetensors headers --------------------------------------------------------------------------- */

/* A safetensors file: header length `len` (or strlen(header) when len is UINT64_MAX), the
 * header text, then `data` zero bytes. */
static void write_st(const char *path, uint64_t len, const char *header, size_t data) {
    size_t h = strlen(header);
    if (len == UINT64_MAX) len = h;
    uint8_t *buf = calloc(8 + h + data, 1);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(len >> 8 * i);
    memcpy(buf + 8, header, h);
    write_file(path, buf, 8 + h + data);
    free(buf);
}

static void st_fails(const char *name, uint64_t len, const char *header, size_t data, const char *what) {
    qc_err e = { "" };
    write_st(tmp_path(name), len, header, data);
    qc_safetensors_file f;
    qc_status st = qc_safetensors_open(&f, tmp_path(name), &e);
    CHECK(st != QC_OK, "%s opened, expected \"%s\"", name, what);
    CHECK(strstr(e.msg, name) && strstr(e.msg, what), "%s: message \"%s\" lacks \"%s\"", name, e.msg, what);
    CHECK(f.ntensors == 0 && f.tensors == NULL && f.map.data == NULL, "%s: nothing left open", name);
    if (st == QC_OK) qc_safetensors_close(&f);
}

#define T16 "\"dtype\":\"F32\",\"shape\":[2,2]"

static void test_safetensors_header(void) {
    qc_err e = { "" };
    qc_safetensors_file f;
    /* the fixture itself is fine */
    write_st(tmp_path("ok.safetensors"), UINT64_MAX, "{\"a\":{" T16 ",\"data_offsets\":[0,16]}}  ", 16);
    CHECK_OK(qc_safetensors_open(&f, tmp_path("ok.safetensors"), &e), e);
    qc_safetensors_close(&f);

    write_file(tmp_path("short.safetensors"), "abc", 3);
    CHECK_FAILS(qc_safetensors_open(&f, tmp_path("short.safetensors"), &e), e, "short.safetensors: 3 bytes, too short");
    CHECK_FAILS(qc_safetensors_open(&f, tmp_path("nothere.safetensors"), &e), e, "nothere.safetensors: cannot open");
    CHECK_FAILS(qc_safetensors_open(&f, tmp_path(""), &e), e, "is a directory");
    st_fails("pastend.safetensors", 1000, "{}", 0, "header length 1000 runs past the end of the file (10 bytes)");
    st_fails("huge.safetensors", (uint64_t)1 << 40, "{}", 0, "header length 1099511627776 is beyond the limit");
    st_fails("badjson.safetensors", UINT64_MAX, "{\"a\": {\"dtype\": ", 0, "header is not valid JSON");
    st_fails("emptyhdr.safetensors", 0, "", 0, "header is not valid JSON");
    st_fails("trailing.safetensors", UINT64_MAX, "{} x", 0, "bytes after its JSON object");
    st_fails("array.safetensors", UINT64_MAX, "[1, 2]", 0, "header is not a JSON object");
    st_fails("entry.safetensors", UINT64_MAX, "{\"a\": 1}", 0, "tensor 'a': header entry is not a JSON object");
    st_fails("nodtype.safetensors", UINT64_MAX, "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
             "tensor 'a': missing or non-string \"dtype\"");
    st_fails("dtype.safetensors", UINT64_MAX, "{\"a\":{\"dtype\":\"F12\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
             "tensor 'a': unknown dtype \"F12\"");
    st_fails("noshape.safetensors", UINT64_MAX, "{\"a\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,4]}}", 4,
             "non-array \"shape\"");
    st_fails("negshape.safetensors", UINT64_MAX, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
             "tensor 'a': shape[0] is not a non-negative integer");
    st_fails("fracshape.safetensors", UINT64_MAX, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1.5],\"data_offsets\":[0,4]}}", 4,
             "shape[1] is not a non-negative integer");
    st_fails("dims.safetensors", UINT64_MAX,
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "9 dimensions");
    st_fails("overflow.safetensors", UINT64_MAX,
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4, "shape overflows");
    st_fails("offsets.safetensors", UINT64_MAX, "{\"a\":{" T16 ",\"data_offsets\":[0]}}", 16,
             "tensor 'a': \"data_offsets\" must be two non-negative integers");
    st_fails("stroffsets.safetensors", UINT64_MAX, "{\"a\":{" T16 ",\"data_offsets\":[\"0\",16]}}", 16,
             "\"data_offsets\" must be two non-negative integers");
    st_fails("pastdata.safetensors", UINT64_MAX, "{\"a\":{" T16 ",\"data_offsets\":[48,64]}}", 16,
             "tensor 'a': data_offsets [48, 64] past the end of the data (16 bytes)");
    st_fails("backwards.safetensors", UINT64_MAX, "{\"a\":{" T16 ",\"data_offsets\":[16,0]}}", 16,
             "tensor 'a': data_offsets [16, 0] end before begin");
    st_fails("mismatch.safetensors", UINT64_MAX, "{\"a\":{" T16 ",\"data_offsets\":[0,12]}}", 16,
             "tensor 'a': data_offsets [0, 12] hold 12 bytes, but F32 shape needs 16");
    st_fails("overlap.safetensors", UINT64_MAX,
             "{\"a\":{" T16 ",\"data_offsets\":[0,16]},\"b\":{" T16 ",\"data_offsets\":[8,24]}}", 24,
             "tensors 'a' and 'b' overlap");
    st_fails("dup.safetensors", UINT64_MAX,
             "{\"a\":{" T16 ",\"data_offsets\":[0,16]},\"a\":{" T16 ",\"data_offsets\":[16,32]}}", 32,
             "tensor 'a' appears twice");
    st_fails("meta.safetensors", UINT64_MAX, "{\"__metadata__\":{\"format\":1}}", 0,
             "\"__metadata__\" entry 'format' is not a string");
    st_fails("metadup.safetensors", UINT64_MAX, "{\"__metadata__\":{\"b\":\"a\",\"b\":\"c\"}}", 0,
             "\"__metadata__\" entry 'b' appears twice");
    st_fails("metatwice.safetensors", UINT64_MAX, "{\"__metadata__\":{\"b\":\"a\"},\"__metadata__\":{}}", 0,
             "\"__metadata__\" appears twice");
    /* aliases: "b" names stored "a"; "c" names "x", which is not stored; exact lookups ignore them */
    write_st(tmp_path("alias.safetensors"), UINT64_MAX,
             "{\"__metadata__\":{\"format\":\"pt\",\"c\":\"x\",\"b\":\"a\"},\"a\":{" T16 ",\"data_offsets\":[0,16]}}", 16);
    CHECK_OK(qc_safetensors_open(&f, tmp_path("alias.safetensors"), &e), e);
    const qc_safetensors_tensor *t = NULL;
    CHECK(f.nmeta == 3 && strcmp(qc_safetensors_meta_get(&f, "format"), "pt") == 0 && qc_safetensors_meta_get(&f, "a") == NULL,
          "metadata kept: %d entries", f.nmeta);
    CHECK(qc_safetensors_find(&f, "b") == NULL, "qc_safetensors_find does not follow aliases");
    CHECK_OK(qc_safetensors_lookup(&f, "b", &t, &e), e);
    CHECK(t && t == qc_safetensors_find(&f, "a"), "alias b -> a");
    CHECK_OK(qc_safetensors_lookup(&f, "nope", &t, &e), e);
    CHECK(t == NULL, "neither stored nor aliased: NULL, no error");
    CHECK_FAILS(qc_safetensors_lookup(&f, "c", &t, &e), e,
                "alias.safetensors: tensor 'c' is an alias (\"__metadata__\") of 'x', which the file does not hold");
    qc_safetensors_close(&f);
}

/* ---- a tiny HF model and broken variants of it ------------------------------------------------------ */

static const qc_config tiny = { .dim = 8, .hidden_dim = 12, .n_layers = 1, .n_heads = 2, .n_kv_heads = 1,
                                .head_dim = 4, .vocab_size = 10, .seq_len = 16, .norm_eps = 1e-5f,
                                .rope_theta = 10000.0f, .tied_classifier = true };

static const char *const tiny_fields[][2] = {
    { "model_type", "\"llama\"" },    { "hidden_size", "8" },          { "intermediate_size", "12" },
    { "num_hidden_layers", "1" },     { "num_attention_heads", "2" },  { "num_key_value_heads", "1" },
    { "vocab_size", "10" },           { "max_position_embeddings", "16" }, { "rms_norm_eps", "1e-05" },
    { "tie_word_embeddings", "true" }, { "hidden_act", "\"silu\"" },
};

/* config.json of the tiny model in dir, with `key` set to the JSON `value` (NULL: removed;
 * a key not among the defaults is added). */
static void tiny_config(const char *dir, const char *key, const char *value) {
    char text[2048] = "{";
    bool found = false;
    size_t nf = sizeof tiny_fields / sizeof tiny_fields[0];
    for (size_t i = 0; i < nf; i++) {
        const char *v = tiny_fields[i][1];
        if (key && strcmp(key, tiny_fields[i][0]) == 0) {
            found = true;
            if (!value) continue;
            v = value;
        }
        snprintf(text + strlen(text), sizeof text - strlen(text), "%s\"%s\": %s", strlen(text) > 1 ? ", " : "",
                 tiny_fields[i][0], v);
    }
    if (key && !found && value) snprintf(text + strlen(text), sizeof text - strlen(text), ", \"%s\": %s", key, value);
    strcat(text, "}\n");
    char path[1100];
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_str(path, text);
}

/* How a tiny safetensors file departs from the good one. */
typedef struct tiny_mod {
    const char *skip;      /* a tensor left out */
    const char *reshape;   /* a tensor given one more row (or a 2-D shape for a norm) */
    const char *retype;    /* a tensor stored as `dtype` */
    qc_dtype dtype;
    const char *extra;     /* an extra I32 tensor */
    int part;              /* -1: every tensor; 0: globals only; 1: layers only */
    const char *rename, *as; /* tensor `rename` stored under the name `as` */
    const char *alias, *target; /* a "__metadata__" entry alias → target */
} tiny_mod;

static void tiny_weights(const char *path, const qc_config *c, tiny_mod m) {
    qc_err e = { "" };
    qc_safetensors_writer *w = qc_safetensors_writer_new(&e);
    static uint8_t zeros[4096];
    char names[64][96];
    size_t sizes[64];
    int n = 0;
    for (int k = 0; k < QC_W_COUNT; k++) {
        qc_weight wt = (qc_weight)k;
        if ((wt == QC_W_CLASSIFIER && c->tied_classifier) || !qc_weight_present(c, wt)) continue;
        bool global = qc_weight_is_global(wt);
        if ((m.part == 0 && !global) || (m.part == 1 && global)) continue;
        for (int l = 0; l < (global ? 1 : c->n_layers); l++) {
            char name[96];
            qc_weight_hf_name(wt, l, name, sizeof name);
            if (m.skip && strcmp(name, m.skip) == 0) continue;
            if (m.rename && strcmp(name, m.rename) == 0) snprintf(name, sizeof name, "%s", m.as);
            int rows, cols;
            qc_weight_shape(c, wt, &rows, &cols);
            bool vec = qc_weight_is_vector(wt);
            int64_t shape[2] = { rows, cols };
            int ndim = vec ? 1 : 2;
            if (m.reshape && strcmp(name, m.reshape) == 0) {
                if (vec) ndim = 2;
                else shape[0]++;
            }
            qc_dtype dt = m.retype && strcmp(name, m.retype) == 0 ? m.dtype : QC_DT_F32;
            CHECK_OK(qc_safetensors_writer_add(w, name, dt, ndim, shape, &e), e);
            snprintf(names[n], sizeof names[n], "%s", name);
            sizes[n++] = (size_t)shape[0] * (size_t)shape[1] * qc_dtype_size(dt);
        }
    }
    if (m.extra) {
        int64_t shape[2] = { 1, 8 };
        CHECK_OK(qc_safetensors_writer_add(w, m.extra, QC_DT_I32, 2, shape, &e), e);
        snprintf(names[n], sizeof names[n], "%s", m.extra);
        sizes[n++] = 32;
    }
    if (m.alias) CHECK_OK(qc_safetensors_writer_meta(w, m.alias, m.target, &e), e);
    CHECK_OK(qc_safetensors_writer_begin(w, path, &e), e);
    for (int i = 0; i < n; i++) CHECK_OK(qc_safetensors_writer_write(w, names[i], zeros, sizes[i], &e), e);
    CHECK_OK(qc_safetensors_writer_finish(w, &e), e);
    qc_safetensors_writer_free(w);
}

/* A folder `name` holding the tiny model's config and a model.safetensors modified by m. */
static const char *tiny_dir(const char *name, tiny_mod m) {
    const char *dir = tmp_path(name);
    mkdir(dir, 0755);
    tiny_config(dir, NULL, NULL);
    char path[1100];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    tiny_weights(path, &tiny, m);
    return dir;
}

static void test_hf_config(void) {
    const char *dir = tiny_dir("cfg", (tiny_mod){ .part = -1 });
    qc_err e = { "" };
    qc_checkpoint *ck = NULL;
    CHECK_OK(qc_checkpoint_open(&ck, dir, &e), e); /* the fixture is fine */
    qc_checkpoint_close(ck);
    struct { const char *key, *value, *what; } cases[] = {
        { "hidden_size", NULL, "config.json: required field hidden_size is missing" },
        { "vocab_size", NULL, "config.json: required field vocab_size is missing" },
        { "model_type", NULL, "config.json: required field model_type is missing" },
        { "hidden_size", "\"8\"", "config.json: hidden_size must be an integer, not a string" },
        { "hidden_size", "8.5", "config.json: hidden_size must be an integer, not 8.5" },
        { "hidden_size", "1e12", "hidden_size must be an integer" },
        { "hidden_size", "-8", "config.json: hidden_size -8 is out of range" },
        { "hidden_size", "7", "config.json: hidden_size 7 is not a multiple of num_attention_heads 2" },
        { "num_hidden_layers", "[1]", "num_hidden_layers must be an integer, not an array" },
        { "num_hidden_layers", "100000", "num_hidden_layers 100000 is out of range" },
        { "num_key_value_heads", "3", "num_attention_heads 2 is not a multiple of num_key_value_heads 3" },
        { "head_dim", "3", "head_dim 3 is odd" },
        { "rms_norm_eps", "\"small\"", "config.json: rms_norm_eps must be a number, not a string" },
        { "rms_norm_eps", "0", "rms_norm_eps 0 must be positive" },
        { "rope_theta", "-1", "rope_theta -1 must be positive" },
        { "tie_word_embeddings", "1", "config.json: tie_word_embeddings must be true or false, not a number" },
        { "model_type", "\"gpt2\"", "config.json: model_type \"gpt2\" is not supported" },
        { "model_type", "7", "model_type must be a string" },
        { "hidden_act", "\"gelu\"", "config.json: hidden_act \"gelu\" is not supported" },
        { "rope_scaling", "{\"type\": \"linear\", \"factor\": 2.0}", "config.json: rope_scaling.rope_type \"linear\" is not supported (llama3 only)" },
        { "mlp_bias", "true", "config.json: mlp_bias true is not supported yet" },
        { "attention_bias", "\"no\"", "attention_bias must be true or false" },
        { "quantization_config", "{\"bits\": 4}", "config.json: quantization_config" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tiny_config(dir, cases[i].key, cases[i].value);
        expect_open_fails(dir, "cfg/config.json", cases[i].what);
    }
    /* accepted: nulls, and mistral without a short sliding window */
    const char *ok[][2] = { { "rope_scaling", "null" }, { "head_dim", "null" }, { "attention_bias", "false" } };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        tiny_config(dir, ok[i][0], ok[i][1]);
        CHECK_OK(qc_checkpoint_open(&ck, dir, &e), e);
        qc_checkpoint_close(ck);
    }
    tiny_config(dir, "model_type", "\"mistral\"");
    CHECK_OK(qc_checkpoint_open(&ck, dir, &e), e);
    qc_checkpoint_close(ck);
    char path[1100];
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_str(path, "{\"model_type\": \"mistral\", \"hidden_size\": 8, \"intermediate_size\": 12, \"num_hidden_layers\": 1,"
                     " \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"vocab_size\": 10,"
                     " \"max_position_embeddings\": 16, \"sliding_window\": 4}");
    expect_open_fails(dir, "cfg/config.json", "sliding_window 4 (shorter than max_position_embeddings 16) is not supported");
    write_str(path, "{\"model_type\": \"qwen2\", \"hidden_size\": 8, \"intermediate_size\": 12, \"num_hidden_layers\": 1,"
                     " \"num_attention_heads\": 2, \"vocab_size\": 10, \"use_sliding_window\": true}");
    expect_open_fails(dir, "cfg/config.json", "use_sliding_window true is not supported");
    write_str(path, "{\"model_type\": \"mistral\", \"hidden_size\": 8, \"intermediate_size\": 12, \"num_hidden_layers\": 1,"
                     " \"num_attention_heads\": 2, \"vocab_size\": 10, \"attention_bias\": true}");
    expect_open_fails(dir, "cfg/config.json", "attention_bias true is not supported for model_type \"mistral\"");
    /* biases the config implies must be there: the file and the tensor named */
    tiny_config(dir, "attention_bias", "true");
    expect_open_fails(dir, "cfg/model.safetensors", "missing tensor 'model.layers.0.self_attn.q_proj.bias'");
    tiny_config(dir, "model_type", "\"qwen2\"");
    expect_open_fails(dir, "cfg/model.safetensors", "missing tensor 'model.layers.0.self_attn.q_proj.bias'");
    write_str(path, "{\"model_type\": \"llama\", \"hidden_size\": 8,");
    expect_open_fails(dir, "cfg/config.json", "not valid JSON");
    write_str(path, "{\"model_type\": \"llama\"} trailing");
    expect_open_fails(dir, "cfg/config.json", "not valid JSON");
    write_str(path, "[\"llama\"]");
    expect_open_fails(dir, "cfg/config.json", "not a JSON object");
    write_str(path, "");
    expect_open_fails(dir, "cfg/config.json", "not valid JSON");
}

static void test_hf_tensors(void) {
    expect_open_fails(tiny_dir("t_skip", (tiny_mod){ .part = -1, .skip = "model.layers.0.mlp.up_proj.weight" }),
                      "t_skip/model.safetensors", "missing tensor 'model.layers.0.mlp.up_proj.weight'");
    expect_open_fails(tiny_dir("t_noembed", (tiny_mod){ .part = -1, .skip = "model.embed_tokens.weight" }),
                      "t_noembed/model.safetensors", "missing tensor 'model.embed_tokens.weight'");
    expect_open_fails(tiny_dir("t_shape", (tiny_mod){ .part = -1, .reshape = "model.layers.0.mlp.gate_proj.weight" }),
                      "t_shape/model.safetensors",
                      "tensor 'model.layers.0.mlp.gate_proj.weight': shape [13, 8], but config.json implies [12, 8]");
    expect_open_fails(tiny_dir("t_norm", (tiny_mod){ .part = -1, .reshape = "model.norm.weight" }),
                      "t_norm/model.safetensors", "tensor 'model.norm.weight': shape [8, 1], but config.json implies [8]");
    expect_open_fails(tiny_dir("t_i32", (tiny_mod){ .part = -1, .retype = "model.layers.0.self_attn.q_proj.weight",
                                                     .dtype = QC_DT_I32 }),
                      "t_i32/model.safetensors",
                      "tensor 'model.layers.0.self_attn.q_proj.weight': dtype I32 is not supported yet");
    expect_open_fails(tiny_dir("t_f64", (tiny_mod){ .part = -1, .retype = "model.norm.weight", .dtype = QC_DT_F64 }),
                      "t_f64/model.safetensors", "dtype F64 is not supported yet");
    expect_open_fails(tiny_dir("t_gptq", (tiny_mod){ .part = -1, .skip = "model.layers.0.self_attn.q_proj.weight",
                                                      .extra = "model.layers.0.self_attn.q_proj.qweight" }),
                      "t_gptq/model.safetensors",
                      "tensor 'model.layers.0.self_attn.q_proj.qweight' (I32) is quantized, but config.json has no quantization_config");
    /* a bias the config does not imply would change the model: refused, not ignored */
    expect_open_fails(tiny_dir("t_bias", (tiny_mod){ .part = -1, .extra = "model.layers.0.self_attn.k_proj.bias" }),
                      "t_bias/model.safetensors",
                      "tensor 'model.layers.0.self_attn.k_proj.bias' is there, but config.json implies no k bias");
    /* a tied pair is one tensor under either name, as transformers reads it: only lm_head.weight
     * (TinyStories-656K's layout, with or without its "__metadata__" alias) serves the embedding */
    qc_err e = { "" };
    qc_checkpoint *ck = NULL;
    const char *emb = "model.embed_tokens.weight", *cls = "lm_head.weight";
    tiny_mod as_cls = { .part = -1, .rename = emb, .as = cls };
    tiny_mod aliased = { .part = -1, .rename = emb, .as = cls, .alias = emb, .target = cls };
    const char *ok_dirs[2] = { tiny_dir("t_lmhead", as_cls), tiny_dir("t_alias", aliased) };
    for (int i = 0; i < 2; i++) {
        CHECK_OK(qc_checkpoint_open(&ck, ok_dirs[i], &e), e);
        qc_checkpoint_close(ck);
    }
    /* any tensor may be aliased; the stored tensor must have the shape the alias's name implies */
    const char *up = "model.layers.0.mlp.up_proj.weight", *gate = "model.layers.0.mlp.gate_proj.weight";
    CHECK_OK(qc_checkpoint_open(&ck, tiny_dir("t_alias_up", (tiny_mod){ .part = -1, .skip = up, .alias = up, .target = gate }),
                                &e), e);
    qc_checkpoint_close(ck);
    expect_open_fails(tiny_dir("t_alias_missing", (tiny_mod){ .part = -1, .skip = emb, .alias = emb, .target = "lm_head" }),
                      "t_alias_missing/model.safetensors",
                      "tensor 'model.embed_tokens.weight' is an alias (\"__metadata__\") of 'lm_head', which the file does not hold");
    expect_open_fails(tiny_dir("t_alias_shape", (tiny_mod){ .part = -1, .skip = up, .alias = up, .target = "model.norm.weight" }),
                      "t_alias_shape/model.safetensors",
                      "tensor 'model.layers.0.mlp.up_proj.weight' (stored as 'model.norm.weight'): shape [8], but "
                      "config.json implies [12, 8]");
    tiny_mod cls_reshaped = { .part = -1, .rename = emb, .as = cls, .reshape = cls };
    expect_open_fails(tiny_dir("t_lmhead_shape", cls_reshaped), "t_lmhead_shape/model.safetensors",
                      "tensor 'model.embed_tokens.weight' (stored as 'lm_head.weight'): shape [11, 8], but config.json "
                      "implies [10, 8]");
    /* untied, the pair is two tensors: lm_head.weight does not stand in for the embedding */
    const char *untied_dir = tiny_dir("t_untied_cls", as_cls);
    tiny_config(untied_dir, "tie_word_embeddings", "false");
    expect_open_fails(untied_dir, "t_untied_cls/model.safetensors", "missing tensor 'model.embed_tokens.weight'");
    /* untied in config.json, but no lm_head.weight in the file */
    const char *dir = tiny_dir("t_untied", (tiny_mod){ .part = -1 });
    tiny_config(dir, "tie_word_embeddings", "false");
    expect_open_fails(dir, "t_untied/model.safetensors", "missing tensor 'lm_head.weight'");
    /* a broken model.safetensors inside a folder is named as such */
    dir = tiny_dir("t_broken", (tiny_mod){ .part = -1 });
    char path[1100];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_st(path, 1000, "{}", 0);
    expect_open_fails(dir, "t_broken/model.safetensors", "runs past the end of the file");
    expect_open_fails(path, "t_broken/model.safetensors", "runs past the end of the file");
}

/* ---- sharded folders ------------------------------------------------------------------------------------ */

/* A sharded tiny model: globals in shard 1 (written with `globals`: .part 0 and how it departs
 * from the good one), the layer in shard 2, and an index whose weight_map is `map` (NULL: the
 * right one, with the embedding under the name it is stored as). */
static const char *sharded_dir_with(const char *name, const char *map, tiny_mod globals) {
    const char *dir = tmp_path(name);
    mkdir(dir, 0755);
    tiny_config(dir, NULL, NULL);
    char path[1100];
    snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
    tiny_weights(path, &tiny, globals);
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    tiny_weights(path, &tiny, (tiny_mod){ .part = 1 });
    char text[4096] = "{\"metadata\": {\"total_size\": 0}, \"weight_map\": ";
    if (map) {
        strcat(text, map);
    } else {
        strcat(text, "{");
        for (int k = 0; k < QC_W_COUNT; k++) {
            if (k == QC_W_CLASSIFIER || !qc_weight_present(&tiny, (qc_weight)k)) continue;
            char tname[96];
            qc_weight_hf_name((qc_weight)k, 0, tname, sizeof tname);
            if (globals.rename && strcmp(tname, globals.rename) == 0) snprintf(tname, sizeof tname, "%s", globals.as);
            snprintf(text + strlen(text), sizeof text - strlen(text), "%s\"%s\": \"model-0000%d-of-00002.safetensors\"",
                     k ? ", " : "", tname, qc_weight_is_global((qc_weight)k) ? 1 : 2);
        }
        strcat(text, "}");
    }
    strcat(text, "}");
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    write_str(path, text);
    return dir;
}

static const char *sharded_dir(const char *name, const char *map) {
    return sharded_dir_with(name, map, (tiny_mod){ .part = 0 });
}

static void test_hf_index(void) {
    qc_err e = { "" };
    qc_checkpoint *ck = NULL;
    CHECK_OK(qc_checkpoint_open(&ck, sharded_dir("sh_ok", NULL), &e), e); /* the fixture is fine */
    if (ck) {
        float w[12 * 8];
        CHECK_OK(qc_checkpoint_read(ck, QC_W_GATE, 0, w, &e), e);
        CHECK_OK(qc_checkpoint_read(ck, QC_W_EMBED, 0, w, &e), e);
    }
    qc_checkpoint_close(ck);
    /* the embedding stored as lm_head.weight, aliased in its shard's "__metadata__" (the index
     * names only stored tensors, as transformers writes it): found through the alias */
    const char *emb = "model.embed_tokens.weight", *cls = "lm_head.weight";
    CHECK_OK(qc_checkpoint_open(&ck, sharded_dir_with("sh_alias", NULL, (tiny_mod){ .part = 0, .rename = emb, .as = cls,
                                                                                      .alias = emb, .target = cls }), &e), e);
    qc_checkpoint_close(ck);
    expect_open_fails(sharded_dir_with("sh_alias_bad", NULL, (tiny_mod){ .part = 0, .rename = emb, .as = cls, .alias = emb,
                                                                           .target = "lm_head" }),
                      "model-00001-of-00002.safetensors", "tensor 'model.embed_tokens.weight' is an alias");
    const char *index = "model.safetensors.index.json";
    char *p;
    expect_open_fails(sharded_dir("sh_json", "{\"a\": "), index, "not valid JSON");
    expect_open_fails(sharded_dir("sh_nomap", "null"), index, "no \"weight_map\" object");
    expect_open_fails(sharded_dir("sh_mapnum", "{\"model.norm.weight\": 3}"), index,
                      "weight_map entry 'model.norm.weight' is not a string");
    expect_open_fails(sharded_dir("sh_dotdot", "{\"model.norm.weight\": \"../sh_ok/model-00001-of-00002.safetensors\"}"),
                      index, "shard \"../sh_ok/model-00001-of-00002.safetensors\" is not a plain file name");
    expect_open_fails(sharded_dir("sh_dotdot2", "{\"model.norm.weight\": \"..\"}"), index, "is not a plain file name");
    expect_open_fails(sharded_dir("sh_abs", "{\"model.norm.weight\": \"/etc/passwd\"}"), index, "is not a plain file name");
    expect_open_fails(sharded_dir("sh_missing", "{\"model.norm.weight\": \"model-00003-of-00003.safetensors\"}"),
                      "model-00003-of-00003.safetensors", "cannot open");
    expect_open_fails(sharded_dir("sh_missing", "{\"model.norm.weight\": \"model-00003-of-00003.safetensors\"}"), index,
                      "cannot open");
    expect_open_fails(sharded_dir("sh_wrong", "{\"model.norm.weight\": \"model-00002-of-00002.safetensors\"}"), index,
                      "tensor 'model.norm.weight' is mapped to model-00002-of-00002.safetensors, which does not contain it");
    expect_open_fails(sharded_dir("sh_partial", "{\"model.norm.weight\": \"model-00001-of-00002.safetensors\"}"), index,
                      "missing tensor 'model.embed_tokens.weight' (not in weight_map)");
    /* a broken shard is named, with the index that led to it */
    const char *dir = sharded_dir("sh_badshard", NULL);
    p = qc_path_join(dir, "model-00002-of-00002.safetensors");
    write_st(p, UINT64_MAX, "{\"x\": {\"dtype\": \"Q4\", \"shape\": [1], \"data_offsets\": [0, 1]}}", 1);
    expect_open_fails(dir, "model-00002-of-00002.safetensors: tensor 'x': unknown dtype \"Q4\"", index);
    free(p);
}

int main(void) {
    RUN(test_missing);
    RUN(test_llama2c_truncated);
    RUN(test_llama2c_header);
    RUN(test_safetensors_header);
    RUN(test_hf_config);
    RUN(test_hf_tensors);
    RUN(test_hf_index);
    return check_summary();
}
