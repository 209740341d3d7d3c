/* badinput/bounds.c — the bounds on hostile inputs (issue 17, "Bounded inputs"): a gzip bomb
 * is refused as soon as its text passes the bound given, having held about that much; messages that
 * quote input escape what a terminal would act on (qc_err_escape); a recipe key or value holding
 * a NUL is refused, not cut short; a tokenizer.json split regex built to backtrack fails fast,
 * naming the file and the pattern, while a real regex over a long run of spaces (which needs
 * more steps than the first limit) still splits as an unlimited one does. */
#include "calib/calib.h"
#include "datasets/datasets.h"
#include "tests/check.h"

#include <sys/resource.h>
#include <zlib.h>

/* Peak resident memory of this process so far, bytes. */
static size_t max_rss(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (size_t)ru.ru_maxrss * 1024;
}

static void test_gzip_bomb_bounded(void) {
    /* one JSON line whose text is 64 MiB of 'a': about 64 KiB once gzip'd */
    const char *path = tmp_path("bomb.json.gz");
    gzFile g = gzopen(path, "wb9");
    CHECK(g != NULL, "cannot write %s", path);
    if (!g) return;
    static char chunk[1 << 20];
    memset(chunk, 'a', sizeof chunk);
    gzputs(g, "{\"text\": \"");
    for (int i = 0; i < 64; i++) gzwrite(g, chunk, sizeof chunk);
    gzputs(g, "\"}\n");
    gzclose(g);
    size_t before = max_rss(), bound = (size_t)4 << 20;
    qc_corpus c;
    qc_err e;
    CHECK_FAILS(qc_corpus_load_max(&c, path, bound, &e), e, "decompresses to more than 4194304 bytes");
    CHECK(strstr(e.msg, path) != NULL, "names the file: %s", e.msg);
    /* what reading may hold for 4 MiB (corpus.c: the file, the inflated buffer < 4 per byte),
     * far below the 64 MiB the bomb inflates to */
    size_t grew = max_rss() - before;
    CHECK(grew < 5 * bound, "reading the bomb grew the peak RSS by %zu bytes (bound %zu)", grew, 5 * bound);
    /* the same file under a bound above its text loads whole */
    CHECK_OK(qc_corpus_load_max(&c, path, (size_t)80 << 20, &e), e);
    CHECK(c.ndocs == 1 && c.len == (size_t)64 << 20, "%zu documents, %zu bytes", c.ndocs, c.len);
    qc_corpus_free(&c);
    /* a plain file over the bound is refused before it is read */
    const char *plain = tmp_path("big.txt");
    FILE *f = fopen(plain, "wb");
    for (int i = 0; f && i < 5; i++) fwrite(chunk, 1, sizeof chunk, f);
    if (f) fclose(f);
    CHECK_FAILS(qc_corpus_load_max(&c, plain, bound, &e), e, "5242880 bytes, more than the 4194304 bytes of text");
}

static void test_err_escape(void) {
    qc_err e;
    qc_err_escape(&e, qc_fail(&e, QC_ERR_FORMAT, "k\"%s\"", "a\x1b[2Jb\x7f\xff\xc3\xa9\xc2\x9b\xe2\x80\xae\t"));
    /* ESC, DEL, a lone 0xFF, C1 CSI (U+009B), RIGHT-TO-LEFT OVERRIDE (U+202E), tab escaped;
     * é (U+00E9) kept */
    CHECK(strcmp(e.msg, "k\"a\\x1B[2Jb\\x7F\\xFF\xc3\xa9\\xC2\\x9B\\xE2\\x80\\xAE\\x09\"") == 0, "escaped: %s", e.msg);
    /* overlong and surrogate encodings are not UTF-8 */
    qc_err_escape(&e, qc_fail(&e, QC_ERR_FORMAT, "%s", "\xc0\xaf\xed\xa0\x80"));
    CHECK(strcmp(e.msg, "\\xC0\\xAF\\xED\\xA0\\x80") == 0, "overlong, surrogate: %s", e.msg);
    /* a message that grows past the buffer is cut at a whole escape */
    char many[600];
    memset(many, 1, sizeof many - 1);
    many[sizeof many - 1] = 0;
    qc_err_escape(&e, qc_fail(&e, QC_ERR_FORMAT, "%s", many));
    size_t n = strlen(e.msg);
    CHECK(n < sizeof e.msg && n % 4 == 0 && strncmp(e.msg + n - 4, "\\x01", 4) == 0, "cut at a whole escape: %zu", n);
}

static void test_recipe_nul(void) {
    qc_recipe r;
    qc_err e;
    static const char key[] = "{\"model.layers.*\\u0000.mlp.down_proj\": {\"bits\": 8}}";
    CHECK_FAILS(qc_recipe_parse(key, strlen(key), "r.json", &r, &e), e,
                "r.json: the key \"model.layers.*\\u0000.mlp.down_proj\" at byte 1 holds a NUL character");
    static const char value[] = "{\"act_quant\": \"a8\\u0000\"}";
    CHECK_FAILS(qc_recipe_parse(value, strlen(value), "r.json", &r, &e), e, "the string \"a8\\u0000\" at byte 14 holds a NUL");
    static const char method[] = "{\"method\": \"gptq\\u0000rtn\"}";
    CHECK_FAILS(qc_recipe_parse(method, strlen(method), "r.json", &r, &e), e, "holds a NUL");
    /* a raw NUL byte inside a string: cut short the same way */
    static const char raw[] = "{\"skip\": [\"*.o_proj\0x\"]}";
    CHECK_FAILS(qc_recipe_parse(raw, sizeof raw - 1, "r.json", &r, &e), e, "holds a NUL");
    /* an escaped backslash followed by u0000 is six plain characters: a valid pattern */
    static const char fine[] = "{\"skip\": [\"model.layers.0.\\\\u0000*\"]}";
    CHECK_OK(qc_recipe_parse(fine, strlen(fine), "r.json", &r, &e), e);
    CHECK(r.nrules == 1 && strcmp(r.rules[0].pattern, "model.layers.0.\\u0000*") == 0, "pattern %s",
          r.nrules ? r.rules[0].pattern : "(none)");
    qc_recipe_free(&r);
}

static void test_recipe_messages_escaped(void) {
    qc_recipe r;
    qc_err e;
    static const char unknown[] = "{\"x\x1b]0;pwned\x07\": 1}";
    CHECK_FAILS(qc_recipe_parse(unknown, strlen(unknown), "r.json", &r, &e), e, "unknown key \"x\\x1B]0;pwned\\x07\"");
    static const char rule[] = "{\"model.layers.*.mlp.down_proj\x1b[31m\": {\"bits\": 8}}";
    CHECK_OK(qc_recipe_parse(rule, strlen(rule), "r.json", &r, &e), e);
    static const qc_config cfg = { .dim = 64, .hidden_dim = 172, .n_layers = 2, .n_heads = 8, .n_kv_heads = 4, .head_dim = 8,
                                   .vocab_size = 512, .seq_len = 512 };
    qc_module_quant mods[2 * QC_LIN_COUNT];
    qc_quant_spec base = { .bits = 4, .groupsize = 32 };
    CHECK_FAILS(qc_recipe_modules(&r, &cfg, &base, NULL, NULL, mods, &e), e,
                "recipe rule \"model.layers.*.mlp.down_proj\\x1B[31m\" matches none");
    CHECK(!strchr(e.msg, '\x1b'), "no raw ESC: %s", e.msg);
    qc_recipe_free(&r);
}

/* A tokenizer.json of single-character pieces with one Split pre-tokenizer (regex rx, as
 * JSON source), written to the scratch folder. */
static const char *split_tokenizer(const char *name, const char *rx) {
    char *json = qc_strdupf("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \" \": 1, \"b\": 2}, \"merges\": []}, "
                            "\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"%s\"}, \"behavior\": \"Isolated\"}}",
                            rx);
    const char *path = tmp_path(name);
    write_str(path, json);
    free(json);
    return path;
}

static void test_regex_backtracking_fails_fast(void) {
    const char *path = split_tokenizer("hostile.json", "[^Z]{0,200}[^Z]{0,200}[^Z]{0,200}Z|.");
    qc_tokenizer t;
    qc_err e;
    if (qc_tokenizer_load_json(&t, path, &e)) {
        CHECK(false, "%s", e.msg);
        return;
    }
    /* Unbounded, 4000 bytes took about 20 s (5 ms per byte: 201^3 steps per position) and then
     * succeeded; bounded, the first match stops after about 2 million steps. That the
     * encoding fails with the limit's own message is the proof the limit cut it short (a
     * time taken is a benchmark's business, not a test's). */
    size_t n = 4000;
    char *text = malloc(n);
    memset(text, 'a', n);
    int32_t *ids = NULL;
    size_t nids = 0;
    CHECK_FAILS(qc_tokenizer_encode(&t, text, n, false, false, &ids, &nids, &e), e, "needs too many backtracking steps");
    CHECK(strstr(e.msg, path) && strstr(e.msg, "/[^Z]{0,200}[^Z]{0,200}[^Z]{0,200}Z|./"), "names the file and the pattern: %s",
          e.msg);
    free(ids);
    free(text);
    qc_tokenizer_free(&t);
}

static void test_regex_long_run_splits(void) {
    /* Llama 3's white space alternatives: \s*[\r\n]+ walks back over a run of spaces, about one
     * step per space, far past the first limit; the split must come out as unlimited. */
    const char *path = split_tokenizer("spaces.json", "[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+");
    qc_tokenizer t;
    qc_err e;
    if (qc_tokenizer_load_json(&t, path, &e)) {
        CHECK(false, "%s", e.msg);
        return;
    }
    size_t run = 200000, n = run + 2;
    char *text = malloc(n);
    text[0] = 'a';
    memset(text + 1, ' ', run);
    text[n - 1] = 'b';
    int32_t *ids = NULL;
    size_t nids = 0;
    CHECK_OK(qc_tokenizer_encode(&t, text, n, false, false, &ids, &nids, &e), e);
    /* words "a", run - 1 spaces (\s+(?!\S) leaves the last), " b"; no merges: one id per byte */
    CHECK(nids == n, "%zu ids for %zu bytes", nids, n);
    bool same = nids == n && ids[0] == 0 && ids[n - 1] == 2;
    for (size_t i = 1; same && i + 1 < n; i++) same = ids[i] == 1;
    CHECK(same, "ids a, spaces, b");
    free(ids);
    free(text);
    qc_tokenizer_free(&t);
}

int main(void) {
    RUN(test_gzip_bomb_bounded);
    RUN(test_err_escape);
    RUN(test_recipe_nul);
    RUN(test_recipe_messages_escaped);
    RUN(test_regex_backtracking_fails_fast);
    RUN(test_regex_long_run_splits);
    return check_summary();
}
