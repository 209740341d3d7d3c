/* unit/datasets.c — datasets/: corpus readers (plain text, JSON lines, gzip) on the real
 * files in ../shared/data and on one broken file per failure mode, and the window samplers.
 * The tokenizer has its own binary, unit/datasets_tokenizer.c. */
#include "datasets/datasets.h"
#include "tests/check.h"

#include <sys/stat.h>
#include <zlib.h>

/* Writes s as one gzip member, appended to path when `append`. */
static void write_gz(const char *path, const char *s, size_t n, bool append) {
    gzFile g = gzopen(path, append ? "ab" : "wb");
    CHECK(g != NULL, "gzopen %s", path);
    if (!g) return;
    CHECK(n == 0 || gzwrite(g, s, (unsigned)n) == (int)n, "gzwrite %s", path);
    CHECK(gzclose(g) == Z_OK, "gzclose %s", path);
}

/* FNV-1a 64, to compare a whole text with a value Python printed. */
static uint64_t fnv1a(const char *s, size_t n) {
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static bool docs_contiguous(const qc_corpus *c) {
    size_t at = 0;
    for (size_t i = 0; i < c->ndocs; i++) {
        if (c->doc_off[i] != at) return false;
        at += c->doc_len[i];
    }
    return at == c->len && c->text[c->len] == '\0';
}

/* ---- real corpora -------------------------------------------------------------------- */

static void test_plain_real(void) {
    qc_err e = { "" };
    const char *files[3] = { "data/tinystories/tinystories_calib.txt",
                             "data/tinystories/tinystories_eval.txt", "data/wikitext2/wiki.test.raw" };
    size_t sizes[3] = { 635575, 158800, 1290547 };
    for (int f = 0; f < 3; f++) {
        const char *path = shared_path(files[f]);
        qc_corpus c;
        CHECK_OK(qc_corpus_load(&c, path, &e), e);
        char *raw;
        size_t n;
        CHECK_OK(qc_read_file(path, (size_t)1 << 30, &raw, &n, &e), e);
        CHECK(c.len == sizes[f] && n == sizes[f], "%s: %zu bytes", files[f], c.len);
        CHECK(c.ndocs == 1 && c.doc_off[0] == 0 && c.doc_len[0] == c.len, "one document");
        CHECK(c.len == n && memcmp(c.text, raw, n) == 0 && c.text[n] == '\0', "bytes as stored");
        CHECK(strcmp(c.path, path) == 0, "path kept");
        free(raw);
        qc_corpus_free(&c);
    }
    /* wiki.test.raw has CRLF line ends: kept */
    qc_corpus w;
    CHECK_OK(qc_corpus_load(&w, shared_path("data/wikitext2/wiki.test.raw"), &e), e);
    CHECK(w.text && strncmp(w.text, " = Robert Boulter = \r\n Robert", 27) == 0, "CRLF kept: \"%.30s\"",
          w.text ? w.text : "");
    qc_corpus_free(&w);
}

/* Expected numbers from Python:
 *   import gzip, json
 *   lines = gzip.open('c4-validation-2k.json.gz', 'rb').read()
 *   docs = [json.loads(l)['text'].encode() for l in lines.split(b'\n') if l.strip()]
 *   len(docs), sum(map(len, docs)), len(docs[0]), len(docs[-1])  # 2000 4245662 8693 1270
 *   j = b'\n\n'.join(docs); len(j)                                # 4249660
 *   FNV-1a 64 of j (the loop in fnv1a above)                       # 0x246bd382dabdf452 */
static void test_c4_real(void) {
    qc_err e = { "" };
    qc_corpus c;
    CHECK_OK(qc_corpus_load(&c, shared_path("data/c4/c4-validation-2k.json.gz"), &e), e);
    CHECK(c.ndocs == 2000, "%zu documents", c.ndocs);
    CHECK(c.len == 4245662, "%zu bytes of text", c.len);
    CHECK(docs_contiguous(&c), "documents back to back");
    if (c.ndocs == 2000) {
        CHECK(c.doc_len[0] == 8693 && c.doc_len[1] == 337 && c.doc_len[1999] == 1270, "document lengths");
        CHECK(strncmp(c.text, "We offer valet parking as well as street and private lot.\nOu", 60) == 0,
              "first document");
    }
    char *joined;
    size_t n;
    CHECK_OK(qc_corpus_joined(&c, &joined, &n, &e), e);
    CHECK(n == 4249660 && joined[n] == '\0', "joined length %zu", n);
    CHECK(fnv1a(joined, n) == 0x246bd382dabdf452ull, "joined text differs from Python's");
    free(joined);
    qc_corpus_free(&c);
}

/* ---- small corpora built here ----------------------------------------------------------- */

static void test_plain_any_bytes(void) {
    qc_err e = { "" };
    const char raw[] = "a\0b\r\n\xff\xfe\x80 \n\n";
    size_t n = sizeof raw - 1;
    const char *path = tmp_path("bytes.txt");
    write_file(path, raw, n);
    qc_corpus c;
    CHECK_OK(qc_corpus_load(&c, path, &e), e);
    CHECK(c.len == n && memcmp(c.text, raw, n) == 0, "NULs, CR, invalid UTF-8 kept");
    qc_corpus_free(&c);
    /* the same bytes gzip'd under a plain name: inflated, still one document */
    const char *gz = tmp_path("bytes.txt.gz");
    write_gz(gz, raw, n, false);
    CHECK_OK(qc_corpus_load(&c, gz, &e), e);
    CHECK(c.ndocs == 1 && c.len == n && memcmp(c.text, raw, n) == 0, "gzip'd plain text");
    qc_corpus_free(&c);
    /* gzip recognised by its magic bytes whatever the name; two members read in turn */
    const char *odd = tmp_path("noext");
    write_gz(odd, "first ", 6, false);
    write_gz(odd, "second", 6, true);
    CHECK_OK(qc_corpus_load(&c, odd, &e), e);
    CHECK(c.len == 12 && memcmp(c.text, "first second", 12) == 0, "multi-member gzip: \"%s\"",
          c.text ? c.text : "");
    qc_corpus_free(&c);
}

static void test_jsonl_small(void) {
    qc_err e = { "" };
    /* CRLF ends, blank lines, an empty text, escapes (é, a surrogate pair, \n, \"), other
     * fields of any type, no newline at the end */
    const char *src = "{\"text\": \"one\", \"url\": \"x\"}\r\n"
                      "\n   \t\r\n"
                      "{\"id\": 3, \"text\": \"\"}\n"
                      "{\"text\": \"caf\\u00e9 \\ud83d\\ude00\\n\\\"q\\\"\", \"meta\": {\"a\": [1, 2]}}\n"
                      "{\"text\":\"last\"}";
    const char *want[4] = { "one", "", "caf\xc3\xa9 \xf0\x9f\x98\x80\n\"q\"", "last" };
    const char *path = tmp_path("small.jsonl");
    write_str(path, src);
    qc_corpus c;
    CHECK_OK(qc_corpus_load(&c, path, &e), e);
    CHECK(c.ndocs == 4 && docs_contiguous(&c), "%zu documents", c.ndocs);
    for (size_t i = 0; i < 4 && i < c.ndocs; i++)
        CHECK(c.doc_len[i] == strlen(want[i]) &&
                  memcmp(c.text + c.doc_off[i], want[i], c.doc_len[i]) == 0,
              "document %zu", i);
    char *joined;
    size_t n;
    CHECK_OK(qc_corpus_joined(&c, &joined, &n, &e), e);
    char expect[128];
    snprintf(expect, sizeof expect, "%s\n\n%s\n\n%s\n\n%s", want[0], want[1], want[2], want[3]);
    CHECK(n == strlen(expect) && strcmp(joined, expect) == 0, "joined: \"%s\"", joined);
    free(joined);
    qc_corpus_free(&c);

    /* ".json" and ".jsonl.gz" are JSON lines too; a gzip'd ".json" needs no ".gz" suffix */
    const char *names[3] = { "a.json", "a.jsonl.gz", "a.json.gz" };
    for (int i = 0; i < 3; i++) {
        const char *p = tmp_path(names[i]);
        write_gz(p, "{\"text\":\"hi\"}\n", 14, false);
        CHECK_OK(qc_corpus_load(&c, p, &e), e);
        CHECK(c.ndocs == 1 && c.len == 2 && strcmp(c.text, "hi") == 0, "%s", names[i]);
        qc_corpus_free(&c);
    }
}

/* ---- broken corpora ----------------------------------------------------------------------- */

static void test_corpus_bad_files(void) {
    qc_err e = { "" };
    qc_corpus c;
    const char *missing = tmp_path("no-such-file.txt");
    CHECK_FAILS_AT(qc_corpus_load(&c, missing, &e), e, missing, "cannot open");
    CHECK(c.text == NULL && c.path == NULL, "a failed load leaves a zeroed corpus");
    qc_corpus_free(&c);

    const char *dir = tmp_path("adir.jsonl");
    mkdir(dir, 0755);
    CHECK_FAILS_AT(qc_corpus_load(&c, dir, &e), e, dir, "directory");

    const char *empty = tmp_path("empty.txt");
    write_file(empty, "", 0);
    CHECK_FAILS_AT(qc_corpus_load(&c, empty, &e), e, empty, "no text");
    const char *empty_gz = tmp_path("empty.txt.gz");
    write_gz(empty_gz, "", 0, false);
    CHECK_FAILS_AT(qc_corpus_load(&c, empty_gz, &e), e, empty_gz, "no text");
    const char *blank = tmp_path("blank.jsonl");
    write_str(blank, "\n  \n\r\n");
    CHECK_FAILS_AT(qc_corpus_load(&c, blank, &e), e, blank, "no text");
    const char *empties = tmp_path("empties.jsonl");
    write_str(empties, "{\"text\":\"\"}\n{\"text\":\"\"}\n");
    CHECK_FAILS_AT(qc_corpus_load(&c, empties, &e), e, empties, "no text");
}

static void test_jsonl_bad_lines(void) {
    static const struct {
        const char *name, *src, *needle;
    } cases[] = {
        { "array.jsonl", "{\"text\":\"ok\"}\n[1, 2]\n", "line 2: not a JSON object" },
        { "string.jsonl", "\"text\"\n", "line 1: not a JSON object" },
        { "missing.jsonl", "{\"text\":\"ok\"}\n\n{\"txt\":\"x\"}\n", "line 3: no string field \"text\"" },
        { "number.jsonl", "{\"text\": 12}\n", "line 1: field \"text\" is not a string" },
        { "null.jsonl", "{\"text\": null}\n", "line 1: field \"text\" is not a string" },
        { "nested.jsonl", "{\"a\": {\"text\": \"x\"}}\n", "line 1: no string field \"text\"" },
        { "malformed.jsonl", "{\"text\":\"a\"}\n{\"text\":\"b\"}\n{\"text\": \"c\",}\n", "line 3: malformed JSON" },
        { "unterminated.jsonl", "{\"text\": \"abc\n\"}\n", "line 1: malformed JSON" },
        { "trailing.jsonl", "{\"text\": \"a\"} {\"text\": \"b\"}\n", "line 1: unexpected bytes after" },
        { "twice.jsonl", "{\"text\": \"a\", \"text\": \"b\"}\n", "line 1: field \"text\" appears twice" },
        { "nul.jsonl", "{\"text\": \"a\\u0000b\"}\n", "line 1: a \\u0000" },
        { "caseonly.jsonl", "{\"Text\": \"a\"}\n", "line 1: no string field \"text\"" },
    };
    qc_err e = { "" };
    qc_corpus c;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = tmp_path(cases[i].name);
        write_str(path, cases[i].src);
        CHECK_FAILS_AT(qc_corpus_load(&c, path, &e), e, path, cases[i].needle);
    }
    /* an escaped backslash before "u0000" is no NUL: accepted */
    const char *ok = tmp_path("backslash.jsonl");
    write_str(ok, "{\"text\": \"a\\\\u0000b\"}\n");
    CHECK_OK(qc_corpus_load(&c, ok, &e), e);
    CHECK(c.len == 8 && strcmp(c.text, "a\\u0000b") == 0, "literal backslash-u0000");
    qc_corpus_free(&c);
}

/* The real C4 file cut short, damaged, or followed by garbage: never a partial corpus. */
static void test_gzip_damaged(void) {
    qc_err e = { "" };
    char *gz;
    size_t n;
    CHECK_OK(qc_read_file(shared_path("data/c4/c4-validation-2k.json.gz"), (size_t)1 << 30, &gz, &n, &e), e);
    if (!gz) return;
    const char *path = tmp_path("cut.json.gz");
    size_t cuts[] = { 1, 2, 9, 10, 100, 4096, n / 3, n / 2, n - 9, n - 8, n - 5, n - 4, n - 1 };
    qc_corpus c;
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_file(path, gz, cuts[i]);
        qc_status st = qc_corpus_load(&c, path, &e);
        CHECK(st != QC_OK && c.ndocs == 0 && c.text == NULL, "cut at %zu accepted", cuts[i]);
        CHECK(strstr(e.msg, path) != NULL, "cut at %zu: message \"%s\" lacks the path", cuts[i], e.msg);
        /* one byte is no gzip magic (plain JSONL, malformed); otherwise the stream ends early */
        const char *needle = cuts[i] < 2 ? "malformed JSON" : cuts[i] < 10 ? "gzip" : "unexpected end of gzip stream";
        CHECK(strstr(e.msg, needle) != NULL, "cut at %zu: \"%s\" lacks \"%s\"", cuts[i], e.msg, needle);
    }
    /* one flipped byte in the compressed data: a data or CRC error */
    const char *flipped = tmp_path("flipped.json.gz");
    size_t at[] = { n / 2, n / 4, n - 12 };
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        gz[at[i]] ^= 0xff;
        write_file(flipped, gz, n);
        gz[at[i]] ^= 0xff;
        CHECK_FAILS_AT(qc_corpus_load(&c, flipped, &e), e, flipped, "corrupt gzip stream");
    }
    /* a damaged CRC32 or length in the trailer */
    gz[n - 6] ^= 0x01;
    write_file(flipped, gz, n);
    gz[n - 6] ^= 0x01;
    CHECK_FAILS_AT(qc_corpus_load(&c, flipped, &e), e, flipped, "corrupt gzip stream");
    /* garbage after the stream */
    const char *tail = tmp_path("tail.json.gz");
    write_file(tail, gz, n);
    FILE *f = fopen(tail, "ab");
    if (f) {
        fputs("junk", f);
        fclose(f);
    }
    CHECK_FAILS_AT(qc_corpus_load(&c, tail, &e), e, tail, "garbage after the gzip stream");
    free(gz);
}

static void test_free_null(void) {
    qc_corpus_free(NULL);
    qc_windows_free(NULL);
    qc_tokenizer_free(NULL);
    qc_corpus c;
    memset(&c, 0, sizeof c);
    qc_corpus_free(&c);
    qc_err e = { "" };
    char *text;
    size_t n;
    CHECK_FAILS(qc_corpus_joined(&c, &text, &n, &e), e, "no documents");
    CHECK(text == NULL, "no output on failure");
}

/* ---- windows ------------------------------------------------------------------------------ */

static int32_t *iota(size_t n) {
    int32_t *ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < n && ids; i++) ids[i] = (int32_t)i;
    return ids;
}

static void test_windows_sequential(void) {
    qc_err e = { "" };
    int32_t *ids = iota(1050);
    qc_windows w;
    CHECK_OK(qc_windows_sequential(ids, 1050, 100, &w, &e), e);
    CHECK(w.n == 10 && w.seqlen == 100, "10 windows, the 50-token tail dropped: %d", w.n);
    bool ok = true;
    for (int i = 0; i < w.n * w.seqlen; i++) ok &= w.tokens[i] == i;
    CHECK(ok, "consecutive from the start");
    qc_windows_free(&w);
    CHECK(w.tokens == NULL && w.n == 0, "free zeroes");
    CHECK_OK(qc_windows_sequential(ids, 100, 100, &w, &e), e);
    CHECK(w.n == 1, "exactly one window");
    qc_windows_free(&w);
    CHECK_FAILS(qc_windows_sequential(ids, 99, 100, &w, &e), e, "do not fill one window");
    CHECK_FAILS(qc_windows_sequential(ids, 1050, 0, &w, &e), e, "seqlen 0");
    CHECK_FAILS(qc_windows_sequential(ids, 1050, -3, &w, &e), e, "seqlen -3");
    CHECK(w.tokens == NULL, "nothing allocated on failure");
    free(ids);
}

/* Starts from CPython 3.11 (the stream is 0..n-1, so a window's first token is its start):
 *   python3 -c "import random; random.seed(0); print([random.randint(0, 100000-512-1) for _ in range(8)])"
 *     [50494, 99346, 55125, 5306, 33936, 67013, 63691, 53075]
 *   python3 -c "import random; random.seed(1234); print([random.randint(0, 2048-128-1) for _ in range(5)])"
 *     [1593, 902, 239, 15, 185]
 *   python3 -c "import random; random.seed(5); print([random.randint(0, 1) for _ in range(8)])"
 *     [1, 1, 0, 1, 0, 0, 0, 0] */
static void check_starts(size_t n, int nsamples, int seqlen, uint64_t seed, const int64_t *want) {
    qc_err e = { "" };
    int32_t *ids = iota(n);
    qc_windows w;
    CHECK_OK(qc_windows_random(ids, n, nsamples, seqlen, seed, &w, &e), e);
    CHECK(w.n == nsamples && w.seqlen == seqlen, "shape %d x %d", w.n, w.seqlen);
    for (int s = 0; s < w.n; s++) {
        const int32_t *row = w.tokens + (size_t)s * (size_t)seqlen;
        CHECK(row[0] == want[s], "seed %llu sample %d starts at %d, CPython %lld",
              (unsigned long long)seed, s, row[0], (long long)want[s]);
        CHECK(row[seqlen - 1] == row[0] + seqlen - 1, "window %d is contiguous", s);
    }
    qc_windows_free(&w);
    free(ids);
}

static void test_windows_random(void) {
    static const int64_t s0[8] = { 50494, 99346, 55125, 5306, 33936, 67013, 63691, 53075 };
    static const int64_t s1234[5] = { 1593, 902, 239, 15, 185 };
    static const int64_t s5[8] = { 1, 1, 0, 1, 0, 0, 0, 0 };
    static const int64_t zeros[3] = { 0, 0, 0 };
    check_starts(100000, 8, 512, 0, s0);
    check_starts(2048, 5, 128, 1234, s1234);
    check_starts(11, 8, 9, 5, s5);    /* randint(0, 1) */
    check_starts(10, 3, 9, 5, zeros); /* n = seqlen + 1: the one possible start */

    qc_err e = { "" };
    int32_t *ids = iota(100);
    qc_windows w;
    CHECK_FAILS(qc_windows_random(ids, 100, 4, 100, 0, &w, &e), e, "need more than seqlen 100");
    CHECK_FAILS(qc_windows_random(ids, 100, 0, 10, 0, &w, &e), e, "nsamples 0");
    CHECK_FAILS(qc_windows_random(ids, 100, 4, 0, 0, &w, &e), e, "seqlen 0");
    CHECK(w.tokens == NULL, "nothing allocated on failure");
    free(ids);
}

int main(void) {
    RUN(test_plain_real);
    RUN(test_c4_real);
    RUN(test_plain_any_bytes);
    RUN(test_jsonl_small);
    RUN(test_corpus_bad_files);
    RUN(test_jsonl_bad_lines);
    RUN(test_gzip_damaged);
    RUN(test_free_null);
    RUN(test_windows_sequential);
    RUN(test_windows_random);
    return check_summary();
}
