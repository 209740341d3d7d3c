/* unit/datasets_tokenizer.c — datasets/'s llama2.c tokenizer: loading (the real tok512.bin
 * and one broken file per failure mode), encode -> decode round trips on the real texts,
 * identity with a plain port of run.c's O(n^2) encoder (the oracle), decoding of the
 * reference generation, and encoding speed. */
#include "datasets/datasets.h"
#include "tests/check.h"

#include <sys/stat.h>

#define TOK512 "models/stories260K/tok512.bin"

/* ---- tokenizer files built here ---------------------------------------------------------- */

/* A vocabulary being built: llama2.c's fixed first 259 pieces, then extras. */
typedef struct vocab {
    int n;
    char *piece[600];
    float score[600];
} vocab;

static void vocab_add(vocab *v, const char *piece, float score) {
    if (v->n >= 600) return;
    v->piece[v->n] = strdup(piece);
    v->score[v->n++] = score;
}

static void vocab_base(vocab *v) {
    v->n = 0;
    vocab_add(v, "<unk>", 0);
    vocab_add(v, "\n<s>\n", 0);
    vocab_add(v, "\n</s>\n", 0);
    for (int b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        vocab_add(v, s, 0);
    }
}

static void vocab_free(vocab *v) {
    for (int i = 0; i < v->n; i++) free(v->piece[i]);
    v->n = 0;
}

/* The first k pieces of vocab_base only. */
static void vocab_prefix(vocab *v, int k) {
    vocab_base(v);
    for (int i = k; i < v->n; i++) free(v->piece[i]);
    v->n = k;
}

static void put32(char *p, uint32_t x) {
    for (int i = 0; i < 4; i++) p[i] = (char)(x >> (8 * i));
}

/* Serializes v in the tokenizer layout into a new buffer. */
static char *vocab_bytes(const vocab *v, int32_t max_len, size_t *size) {
    size_t n = 4;
    for (int i = 0; i < v->n; i++) n += 8 + strlen(v->piece[i]);
    char *buf = malloc(n), *p = buf + 4;
    put32(buf, (uint32_t)max_len);
    for (int i = 0; i < v->n; i++) {
        union { float f; uint32_t u; } s = { v->score[i] };
        size_t len = strlen(v->piece[i]);
        put32(p, s.u);
        put32(p + 4, (uint32_t)len);
        memcpy(p + 8, v->piece[i], len);
        p += 8 + len;
    }
    *size = n;
    return buf;
}

static int vocab_max_len(const vocab *v) {
    size_t m = 1;
    for (int i = 0; i < v->n; i++) m = strlen(v->piece[i]) > m ? strlen(v->piece[i]) : m;
    return (int)m;
}

/* Writes v to tmp_path(name) and loads it. */
static qc_status vocab_load(const vocab *v, const char *name, qc_tokenizer *t, qc_err *e) {
    size_t n;
    char *buf = vocab_bytes(v, vocab_max_len(v), &n);
    write_file(tmp_path(name), buf, n);
    free(buf);
    return qc_tokenizer_load(t, tmp_path(name), v->n, e);
}

/* ---- the oracle: run.c's encode, ported as written ------------------------------------------ */

/* karpathy/llama2.c run.c encode(): the same steps, variables and comparisons. The one
 * liberty: str_lookup(sprintf("%s%s", vocab[a], vocab[b])) depends only on (a, b), so it is
 * tabulated once per vocabulary (with run.c's sort + bsearch) instead of being recomputed
 * inside the O(n^2) rescan; the rescan-and-merge loop itself is run.c's. */
typedef struct ref_entry {
    const char *str;
    int id;
} ref_entry;

typedef struct ref_tok {
    const qc_tokenizer *t;
    ref_entry *sorted; /* (vocab_size) run.c's sorted_vocab */
    int *pair;         /* (vocab_size, vocab_size) str_lookup of the concatenation */
} ref_tok;

static int ref_compare(const void *a, const void *b) {
    return strcmp(((const ref_entry *)a)->str, ((const ref_entry *)b)->str);
}

static int ref_lookup(const ref_tok *r, const char *str) {
    ref_entry key = { str, 0 };
    const ref_entry *res = bsearch(&key, r->sorted, (size_t)r->t->vocab_size, sizeof key, ref_compare);
    return res ? res->id : -1;
}

static void ref_init(ref_tok *r, const qc_tokenizer *t) {
    int v = t->vocab_size;
    r->t = t;
    r->sorted = malloc((size_t)v * sizeof *r->sorted);
    for (int i = 0; i < v; i++) r->sorted[i] = (ref_entry){ t->pieces[i], i };
    qsort(r->sorted, (size_t)v, sizeof *r->sorted, ref_compare);
    r->pair = malloc((size_t)v * (size_t)v * sizeof *r->pair);
    char *buf = malloc((size_t)t->max_token_length * 2 + 3);
    for (int a = 0; a < v; a++)
        for (int b = 0; b < v; b++) {
            sprintf(buf, "%s%s", t->pieces[a], t->pieces[b]);
            r->pair[(size_t)a * (size_t)v + (size_t)b] = ref_lookup(r, buf);
        }
    free(buf);
}

static void ref_free(ref_tok *r) {
    free(r->sorted);
    free(r->pair);
}

/* tokens must hold strlen(text) + 3 */
static void ref_encode(const ref_tok *r, const char *text, int bos, int eos, int *tokens, int *n_tokens) {
    const qc_tokenizer *t = r->t;
    char *str_buffer = malloc((size_t)t->max_token_length * 2 + 1 + 2);
    size_t str_len = 0;
    *n_tokens = 0;
    if (bos) tokens[(*n_tokens)++] = 1;
    if (text[0] != '\0') tokens[(*n_tokens)++] = ref_lookup(r, " ");
    for (const char *c = text; *c != '\0'; c++) {
        if ((*c & 0xC0) != 0x80) str_len = 0;
        str_buffer[str_len++] = *c;
        str_buffer[str_len] = '\0';
        if ((*(c + 1) & 0xC0) == 0x80 && str_len < 4) continue;
        int id = ref_lookup(r, str_buffer);
        if (id != -1) {
            tokens[(*n_tokens)++] = id;
        } else {
            for (size_t i = 0; i < str_len; i++) tokens[(*n_tokens)++] = (unsigned char)str_buffer[i] + 3;
        }
        str_len = 0;
    }
    while (1) {
        float best_score = -1e10;
        int best_id = -1;
        int best_idx = -1;
        for (int i = 0; i < (*n_tokens - 1); i++) {
            int id = r->pair[(size_t)tokens[i] * (size_t)t->vocab_size + (size_t)tokens[i + 1]];
            if (id != -1 && t->scores[id] > best_score) {
                best_score = t->scores[id];
                best_id = id;
                best_idx = i;
            }
        }
        if (best_idx == -1) break;
        tokens[best_idx] = best_id;
        for (int i = best_idx + 1; i < (*n_tokens - 1); i++) tokens[i] = tokens[i + 1];
        (*n_tokens)--;
    }
    if (eos) tokens[(*n_tokens)++] = 2;
    free(str_buffer);
}

/* Encodes text (no NULs) both ways; true when the ids agree. Reports the first difference. */
static bool same_as_runc(const ref_tok *r, const char *text, size_t len, bool bos, bool eos,
                         const char *what) {
    char *s = malloc(len + 1);
    memcpy(s, text, len);
    s[len] = '\0';
    int *want = malloc((len + 3) * sizeof *want), nwant;
    ref_encode(r, s, bos, eos, want, &nwant);
    qc_err e = { "" };
    int32_t *got;
    size_t ngot;
    qc_status st = qc_tokenizer_encode(r->t, s, len, bos, eos, &got, &ngot, &e);
    bool same = st == QC_OK && ngot == (size_t)nwant;
    for (size_t i = 0; same && i < ngot; i++) same = got[i] == want[i];
    if (!same) {
        size_t i = 0;
        while (st == QC_OK && i < ngot && i < (size_t)nwant && got[i] == want[i]) i++;
        fprintf(stderr, "  %s (%zu bytes): %s; %zu ids vs run.c's %d, first difference at %zu\n", what,
                len, st ? e.msg : "encoded", ngot, nwant, i);
    }
    free(got);
    free(want);
    free(s);
    return same;
}

/* ---- the real material ---------------------------------------------------------------------- */

typedef struct real_text {
    const char *name;
    char *data;
    size_t len;
} real_text;

/* The evaluation texts as the pipeline sees them: each corpus joined. */
static void load_text(real_text *x, const char *name, const char *rel) {
    qc_err e = { "" };
    qc_corpus c;
    x->name = name;
    x->data = NULL;
    x->len = 0;
    CHECK_OK(qc_corpus_load(&c, shared_path(rel), &e), e);
    if (c.ndocs) CHECK_OK(qc_corpus_joined(&c, &x->data, &x->len, &e), e);
    qc_corpus_free(&c);
}

static real_text texts[4];

static void load_texts(void) {
    load_text(&texts[0], "tinystories_calib", "data/tinystories/tinystories_calib.txt");
    load_text(&texts[1], "tinystories_eval", "data/tinystories/tinystories_eval.txt");
    load_text(&texts[2], "wiki.test.raw", "data/wikitext2/wiki.test.raw");
    load_text(&texts[3], "c4 (joined)", "data/c4/c4-validation-2k.json.gz");
}

static qc_tokenizer tok512;

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_load_tok512(void) {
    qc_tokenizer *t = &tok512;
    CHECK(t->vocab_size == 512 && t->max_token_length == 7, "vocab %d, max length %d", t->vocab_size,
          t->max_token_length);
    CHECK(t->bos_id == 1 && t->eos_id == 2, "BOS/EOS");
    CHECK(t->vocab_size == 512 && strcmp(t->pieces[1], "\n<s>\n") == 0 &&
              strcmp(t->pieces[3], "<0x00>") == 0 && strcmp(t->pieces[258], "<0xFF>") == 0 &&
              strcmp(t->pieces[403], " Once") == 0 && t->piece_len[403] == 5,
          "pieces");
    CHECK(t->vocab_size == 512 && t->scores[259] == 0.0f && t->scores[260] == -1.0f, "scores");
    /* every piece is found as itself: in particular tok512 has no duplicate pieces */
    int bad = 0;
    for (int i = 0; i < t->vocab_size; i++) {
        bad += qc_tokenizer_lookup(t, t->pieces[i], (size_t)t->piece_len[i]) != i;
        bad += (size_t)t->piece_len[i] != strlen(t->pieces[i]);
    }
    CHECK(bad == 0, "%d pieces not found as themselves", bad);
    CHECK(qc_tokenizer_lookup(t, " ", 1) == 410, "dummy prefix id");
    CHECK(qc_tokenizer_lookup(t, "", 0) == -1 && qc_tokenizer_lookup(t, "zzzzzz", 6) == -1 &&
              qc_tokenizer_lookup(t, " Once upon", 10) == -1,
          "absent strings");
}

static void test_load_bad_files(void) {
    qc_err e = { "" };
    qc_tokenizer t;
    const char *missing = tmp_path("missing.bin");
    CHECK_FAILS_AT(qc_tokenizer_load(&t, missing, 512, &e), e, missing, "cannot open");
    CHECK(t.pieces == NULL && t.index == NULL, "zeroed after failure");
    qc_tokenizer_free(&t);
    const char *dir = tmp_path("tokdir");
    mkdir(dir, 0755);
    CHECK_FAILS_AT(qc_tokenizer_load(&t, dir, 512, &e), e, dir, "directory");
    const char *real = shared_path(TOK512);
    CHECK_FAILS(qc_tokenizer_load(&t, real, 0, &e), e, "vocab_size 0");
    CHECK_FAILS(qc_tokenizer_load(&t, real, -1, &e), e, "vocab_size -1");
    CHECK_FAILS(qc_tokenizer_load(&t, real, (1 << 22) + 1, &e), e, "outside 1..4194304");
    CHECK_FAILS_AT(qc_tokenizer_load(&t, real, 513, &e), e, real, "token 512: truncated");
    CHECK_FAILS_AT(qc_tokenizer_load(&t, real, 511, &e), e, real, "trailing bytes");

    /* a small valid file, then one broken copy per failure mode */
    vocab v;
    vocab_base(&v);
    vocab_add(&v, " ", -1);
    vocab_add(&v, "ab", 2);
    size_t n;
    char *good = vocab_bytes(&v, 6, &n), *buf = malloc(n + 100);
    const char *path = tmp_path("broken.bin");
    write_file(path, good, n);
    CHECK_OK(qc_tokenizer_load(&t, path, v.n, &e), e);
    qc_tokenizer_free(&t);
    CHECK(t.pieces == NULL, "free zeroes");
    size_t last = n - 2; /* offset of the last piece's text ("ab") */

    write_file(path, good, 0);
    CHECK_FAILS_AT(qc_tokenizer_load(&t, path, v.n, &e), e, path, "too short");
    int bad_cut = 0;
    /* truncated at every offset of the header and the first tokens, then every 7th, and at
     * every offset of the last token */
    for (size_t cut = 1; cut < n; cut += cut < 64 || cut + 16 >= n ? 1 : 7) {
        write_file(path, good, cut);
        e.msg[0] = '\0';
        bad_cut += qc_tokenizer_load(&t, path, v.n, &e) == QC_OK || !strstr(e.msg, path) ||
                   !strstr(e.msg, "truncated");
    }
    CHECK(bad_cut == 0, "%d truncated copies not refused as truncated", bad_cut);

    static const struct {
        int32_t value;
        const char *needle;
    } lengths[] = { { -1, "length -1" }, { 0, "length 0" }, { 7, "length 7" }, { INT32_MAX, "length 2147483647" } };
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        memcpy(buf, good, n);
        put32(buf + last - 4, (uint32_t)lengths[i].value);
        write_file(path, buf, n);
        CHECK_FAILS_AT(qc_tokenizer_load(&t, path, v.n, &e), e, path, lengths[i].needle);
    }
    static const int32_t mtls[] = { 0, -5, (1 << 16) + 1, INT32_MIN };
    for (size_t i = 0; i < sizeof mtls / sizeof mtls[0]; i++) {
        memcpy(buf, good, n);
        put32(buf, (uint32_t)mtls[i]);
        write_file(path, buf, n);
        CHECK_FAILS_AT(qc_tokenizer_load(&t, path, v.n, &e), e, path, "max_token_length");
    }
    memcpy(buf, good, n);
    put32(buf, 1); /* every piece but " " is longer than 1 */
    write_file(path, buf, n);
    CHECK_FAILS_AT(qc_tokenizer_load(&t, path, v.n, &e), e, path, "token 0: length 5");
    memcpy(buf, good, n);
    buf[last + 1] = '\0';
    write_file(path, buf, n);
    CHECK_FAILS_AT(qc_tokenizer_load(&t, path, v.n, &e), e, path, "NUL byte");
    memcpy(buf, good, n);
    memset(buf + n, 0, 100);
    write_file(path, buf, n + 1);
    CHECK_FAILS_AT(qc_tokenizer_load(&t, path, v.n, &e), e, path, "1 trailing bytes");
    write_file(path, buf, n + 100);
    CHECK_FAILS_AT(qc_tokenizer_load(&t, path, v.n, &e), e, path, "100 trailing bytes");
    CHECK(t.pieces == NULL && t.path == NULL, "zeroed after failure");
    free(buf);
    free(good);
    vocab_free(&v);
}

/* (a) encode -> decode (prev = BOS) gives back every byte of the real texts. */
static void test_round_trip(void) {
    qc_err e = { "" };
    for (int i = 0; i < 4; i++) {
        real_text *x = &texts[i];
        if (!x->data) continue;
        int32_t *ids;
        size_t n;
        double t0 = qc_now();
        CHECK_OK(qc_tokenizer_encode(&tok512, x->data, x->len, false, false, &ids, &n, &e), e);
        double t1 = qc_now();
        char *back;
        size_t len;
        CHECK_OK(qc_tokenizer_decode(&tok512, tok512.bos_id, ids, n, &back, &len, &e), e);
        CHECK(back && len == x->len && memcmp(back, x->data, len) == 0, "%s: round trip differs",
              x->name);
        printf("    %-18s %9zu bytes -> %8zu tokens (%.2f bytes/token), encoded in %.3f s (%.1f MB/s)\n",
               x->name, x->len, n, (double)x->len / (double)(n ? n : 1), t1 - t0,
               (double)x->len / 1e6 / (t1 - t0));
        if (i == 2) CHECK(t1 - t0 < 5.0, "wiki.test.raw took %.2f s: not O(n log n)?", t1 - t0);
        free(back);
        free(ids);
    }
    /* BOS and EOS framing */
    int32_t *ids;
    size_t n;
    CHECK_OK(qc_tokenizer_encode(&tok512, "Once", 4, true, true, &ids, &n, &e), e);
    CHECK(n == 3 && ids[0] == 1 && ids[1] == 403 && ids[2] == 2, "[BOS, \" Once\", EOS]");
    free(ids);
    CHECK_OK(qc_tokenizer_encode(&tok512, NULL, 0, true, false, &ids, &n, &e), e);
    CHECK(n == 1 && ids[0] == 1, "empty text: BOS alone, no dummy prefix");
    free(ids);
    CHECK_OK(qc_tokenizer_encode(&tok512, "", 0, false, false, &ids, &n, &e), e);
    CHECK(n == 0, "empty text, no BOS: no tokens");
    free(ids);
    /* NUL bytes (run.c would stop there) are ordinary bytes: token 3 */
    CHECK_OK(qc_tokenizer_encode(&tok512, "a\0b", 3, false, false, &ids, &n, &e), e);
    char *back;
    size_t len;
    CHECK_OK(qc_tokenizer_decode(&tok512, 1, ids, n, &back, &len, &e), e);
    CHECK(len == 3 && memcmp(back, "a\0b", 3) == 0, "NUL round trip");
    bool has3 = false;
    for (size_t i = 0; i < n; i++) has3 |= ids[i] == 3;
    CHECK(has3, "NUL is byte token 3");
    free(back);
    free(ids);
}

/* (b) identical ids to run.c's encoder on tok512: 200 seeded random slices of 1-2000 bytes
 * of each text (TinyStories: 150 of calib, 50 of eval), a quarter of them moved to start
 * inside a UTF-8 sequence, with BOS/EOS on some; then edge cases. (The oracle is O(n^2):
 * longer slices would make this the slowest test by far, under the sanitizers too.) */
static void test_identity_real_slices(void) {
    ref_tok r;
    ref_init(&r, &tok512);
    qc_pyrandom rng;
    qc_pyrandom_seed(&rng, 20240601);
    int bad = 0, total = 0, mid_utf8 = 0;
    for (int i = 0; i < 4; i++) {
        real_text *x = &texts[i];
        if (!x->data || x->len < 4000) continue;
        int slices = i == 0 ? 150 : i == 1 ? 50 : 200; /* TinyStories: 200 over its two halves */
        for (int s = 0; s < slices; s++) {
            size_t len = (size_t)qc_pyrandom_randint(&rng, 1, 2000);
            size_t start = (size_t)qc_pyrandom_randint(&rng, 0, (int64_t)(x->len - len));
            if (s % 4 == 0) { /* force a start inside a UTF-8 sequence where there is one */
                size_t k = start;
                while (k < x->len - len && ((unsigned char)x->data[k] & 0xC0) != 0x80) k++;
                if (k < x->len - len) start = k;
            }
            mid_utf8 += ((unsigned char)x->data[start] & 0xC0) == 0x80;
            char what[96];
            snprintf(what, sizeof what, "%s[%zu:+%zu]", x->name, start, len);
            bad += !same_as_runc(&r, x->data + start, len, s % 3 == 0, s % 5 == 0, what);
            total++;
        }
    }
    CHECK(bad == 0, "%d of %d slices differ from run.c", bad, total);
    CHECK(mid_utf8 >= 20, "only %d slices start inside a UTF-8 sequence", mid_utf8);
    printf("    %d slices identical to run.c's encoder (%d start mid-UTF-8)\n", total - bad, mid_utf8);

    static const char *edge[] = {
        "", " ", "\n", "  ", "   leading spaces", "trailing spaces   ", "\r\n\r\n",
        "\x01\x02\x03\x7f\x1b", /* bytes not in the vocabulary */
        "h\xc3\xa9llo w\xc3\xb6rld \xe2\x98\x83 \xf0\x9f\x98\x80 \xe4\xb8\xad\xe6\x96\x87",
        "\xff\xfe\x80\x80\x80\x80\x80\x80\xc3", /* invalid UTF-8: stray and too many continuations */
        "\xe2\x82", "\xe2\x82z", "\x80", "\xf0\x9f\x98\x80\x80\x80", "<0x41><s></s>\n<s>\n",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "the the the the the the the",
        "Once upon a time, there was a little girl named Lily.",
    };
    int bad_edge = 0;
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++)
        for (int f = 0; f < 4; f++) bad_edge += !same_as_runc(&r, edge[i], strlen(edge[i]), f & 1, f & 2, edge[i]);
    CHECK(bad_edge == 0, "%d edge cases differ from run.c", bad_edge);
    ref_free(&r);
}

/* A vocabulary made to stress what tok512 cannot: multi-byte code points and partial
 * sequences as pieces, many equal scores (leftmost wins), overlapping merges, scores at and
 * beyond run.c's -1e10 floor, NaN and infinity, and pieces that look like byte tokens. */
static void stress_vocab(vocab *v) {
    vocab_base(v);
    static const struct {
        const char *piece;
        float score;
    } extra[] = {
        { " ", 0 }, { "a", 0 }, { "b", 0 }, { "c", 0 }, { "\n", 0 }, { "aa", 1 }, { "ab", 1 },
        { "ba", 1 }, { "bb", 0.5f }, { "aaa", 1 }, { "aab", 2 }, { "abab", 3 }, { " a", 1 },
        { " ab", 2 }, { "  ", 1 }, { " b", -5 }, { "ca", -1e10f }, { "cc", INFINITY },
        { "ac", -9.9e9f }, { "bc", -0.0f }, { "cb", NAN }, { "ccc", -2e10f }, { "cab", 0 },
        { "\xc3\xa9", 0 }, { "\xe2\x82\xac", 0 }, { "\xf0\x9f\x98\x80", 0 }, { "\xe2\x82", 0 },
        { "\xc3\xa9\xe2\x82\xac", 2 }, { "a\xe2\x82\xac", 1 }, { "\x80\x80\x80\x80", 0 },
        { "<", 0 }, { ">", 0 }, { "0", 0 }, { "x", 0 }, { "4", 0 }, { "1", 0 }, { "<0", 0.1f },
        { "<0x", 0.1f }, { "<0x4", 0.1f }, { "<0x41", 0.1f }, { " <0x41>", 0 },
    };
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) vocab_add(v, extra[i].piece, extra[i].score);
}

/* (b) identical ids to run.c's encoder: random strings over the stress vocabulary */
static void test_identity_stress(void) {
    qc_err e = { "" };
    vocab v;
    stress_vocab(&v);
    qc_tokenizer t;
    CHECK_OK(vocab_load(&v, "stress.bin", &t, &e), e);
    if (!t.index) {
        vocab_free(&v);
        return;
    }
    ref_tok r;
    ref_init(&r, &t);
    static const char *alphabet[] = { "a", "b", "c", " ", "\n", "\xc3\xa9", "\xe2\x82\xac",
                                      "\xf0\x9f\x98\x80", "\xe2\x82", "\x80", "\xff", "\xc3",
                                      "<", "0", "x", "4", "1", ">", "aa", "ab" };
    size_t na = sizeof alphabet / sizeof alphabet[0];
    qc_pyrandom rng;
    qc_pyrandom_seed(&rng, 7);
    int bad = 0, total = 3000;
    char s[512];
    for (int k = 0; k < total; k++) {
        size_t len = 0, parts = (size_t)qc_pyrandom_randint(&rng, 0, 60);
        for (size_t p = 0; p < parts; p++) {
            const char *a = alphabet[qc_pyrandom_randint(&rng, 0, (int64_t)na - 1)];
            memcpy(s + len, a, strlen(a));
            len += strlen(a);
        }
        s[len] = '\0';
        bad += !same_as_runc(&r, s, len, k % 2, k % 3 == 0, "stress string");
    }
    CHECK(bad == 0, "%d of %d random strings differ from run.c", bad, total);
    /* specific expectations, independent of the oracle */
    int32_t *ids;
    size_t n;
    int id_cc = qc_tokenizer_lookup(&t, "cc", 2), id_ca = qc_tokenizer_lookup(&t, "ca", 2);
    CHECK_OK(qc_tokenizer_encode(&t, "ccca", 4, false, false, &ids, &n, &e), e);
    /* " ","c","c","c","a": "cc" (+inf) merges leftmost first; "ccc" (-2e10) and "ca" (-1e10)
     * are at or below run.c's floor, so they never merge */
    CHECK(n == 4 && ids[1] == id_cc && ids[3] == qc_tokenizer_lookup(&t, "a", 1), "inf first, floor kept");
    CHECK(id_ca >= 0, "ca present");
    free(ids);
    ref_free(&r);
    qc_tokenizer_free(&t);
    vocab_free(&v);
}

/* Where the vocabulary repeats a piece, lookup and encode use the lowest id. */
static void test_duplicates(void) {
    qc_err e = { "" };
    vocab v;
    vocab_base(&v);
    vocab_add(&v, " ", 0);
    vocab_add(&v, "x", 0);
    vocab_add(&v, "xy", -3); /* id 261 */
    vocab_add(&v, "y", 0);
    vocab_add(&v, "xy", 5);  /* id 263, same text */
    qc_tokenizer t;
    CHECK_OK(vocab_load(&v, "dup.bin", &t, &e), e);
    CHECK(qc_tokenizer_lookup(&t, "xy", 2) == 261, "lowest id of a repeated piece");
    int32_t *ids;
    size_t n;
    CHECK_OK(qc_tokenizer_encode(&t, "xy", 2, false, false, &ids, &n, &e), e);
    CHECK(n == 2 && ids[0] == 258 + 1 && ids[1] == 261, "encode uses id 261");
    free(ids);
    qc_tokenizer_free(&t);
    vocab_free(&v);
}

/* Vocabularies lacking what run.c assumes: an error, never an id outside the vocabulary. */
static void test_encode_unsupported(void) {
    qc_err e = { "" };
    vocab v;
    vocab_base(&v);
    vocab_add(&v, "a", 0); /* no " " piece */
    qc_tokenizer t;
    CHECK_OK(vocab_load(&v, "nospace.bin", &t, &e), e);
    int32_t *ids;
    size_t n;
    CHECK_FAILS(qc_tokenizer_encode(&t, "a", 1, false, false, &ids, &n, &e), e, "dummy prefix");
    CHECK(ids == NULL && n == 0, "no output on failure");
    CHECK_OK(qc_tokenizer_encode(&t, "", 0, true, true, &ids, &n, &e), e);
    CHECK(n == 2, "empty text needs no dummy prefix");
    free(ids);
    qc_tokenizer_free(&t);
    vocab_free(&v);

    /* 100 pieces: byte fallback beyond 'a' (0x61 + 3 = 100) has no id */
    vocab_prefix(&v, 99);
    vocab_add(&v, " ", 0);
    CHECK_OK(vocab_load(&v, "small.bin", &t, &e), e);
    CHECK_OK(qc_tokenizer_encode(&t, "AB", 2, false, false, &ids, &n, &e), e);
    CHECK(n == 3 && ids[1] == 'A' + 3, "fallback ids inside the vocabulary");
    free(ids);
    CHECK_FAILS(qc_tokenizer_encode(&t, "Aa", 2, false, false, &ids, &n, &e), e, "byte 0x61");
    qc_tokenizer_free(&t);
    vocab_free(&v);

    /* 2 pieces: no EOS */
    vocab_prefix(&v, 2);
    CHECK_OK(vocab_load(&v, "tiny.bin", &t, &e), e);
    CHECK_FAILS(qc_tokenizer_encode(&t, "", 0, false, true, &ids, &n, &e), e, "beyond the vocabulary");
    CHECK_OK(qc_tokenizer_encode(&t, "", 0, true, false, &ids, &n, &e), e);
    CHECK(n == 1 && ids[0] == 1, "BOS alone");
    free(ids);
    qc_tokenizer_free(&t);
    vocab_free(&v);
}

/* run.c's decode rules, including its sscanf("<0x%02hhX>") on odd pieces. */
static void test_piece_and_decode(void) {
    qc_err e = { "" };
    const qc_tokenizer *t = &tok512;
    char byte[2];
    size_t len;
    const char *p = qc_tokenizer_piece(t, 1, 403, byte, &len);
    CHECK(len == 4 && memcmp(p, "Once", 4) == 0, "leading space stripped after BOS");
    p = qc_tokenizer_piece(t, 0, 403, byte, &len);
    CHECK(len == 5 && memcmp(p, " Once", 5) == 0, "kept otherwise");
    p = qc_tokenizer_piece(t, 5, 13, byte, &len);
    CHECK(len == 1 && p == byte && p[0] == '\n', "<0x0A> is a newline");
    p = qc_tokenizer_piece(t, 1, 3, byte, &len);
    CHECK(len == 1 && p[0] == '\0', "<0x00> is a NUL byte");
    p = qc_tokenizer_piece(t, 1, 1, byte, &len);
    CHECK(len == 5 && memcmp(p, "\n<s>\n", 5) == 0, "BOS piece as stored");
    CHECK(qc_tokenizer_piece(t, 1, -1, byte, &len) == NULL && len == 0, "id -1");
    CHECK(qc_tokenizer_piece(t, 1, 512, byte, &len) == NULL && len == 0, "id 512");
    int32_t ids[3] = { 403, 512, 2 };
    char *text;
    CHECK_FAILS_AT(qc_tokenizer_decode(t, 1, ids, 3, &text, &len, &e), e, t->path, "token 1 of 3 is id 512");
    CHECK(text == NULL, "no output on failure");
    CHECK_OK(qc_tokenizer_decode(t, 1, ids, 0, &text, &len, &e), e);
    CHECK(len == 0 && text && text[0] == '\0', "empty decode");
    free(text);

    vocab v;
    vocab_base(&v);
    vocab_add(&v, "<0x4>", 0);   /* sscanf reads "4": byte 0x04 */
    vocab_add(&v, "<0x41", 0);   /* no '>': still 'A' for sscanf */
    vocab_add(&v, " <0x41>", 0); /* only after BOS does it become 'A' */
    vocab_add(&v, "<0xZZ>", 0);  /* no hex digits: the piece itself */
    vocab_add(&v, "<0x6a>", 0);  /* lower-case hex: 'j' */
    qc_tokenizer s;
    CHECK_OK(vocab_load(&v, "odd.bin", &s, &e), e);
    if (s.index) {
        p = qc_tokenizer_piece(&s, 0, 259, byte, &len);
        CHECK(len == 1 && p[0] == 4, "<0x4>");
        p = qc_tokenizer_piece(&s, 0, 260, byte, &len);
        CHECK(len == 1 && p[0] == 'A', "<0x41");
        p = qc_tokenizer_piece(&s, 1, 261, byte, &len);
        CHECK(len == 1 && p[0] == 'A', "\" <0x41>\" after BOS");
        p = qc_tokenizer_piece(&s, 0, 261, byte, &len);
        CHECK(len == 7 && memcmp(p, " <0x41>", 7) == 0, "\" <0x41>\" otherwise");
        p = qc_tokenizer_piece(&s, 0, 262, byte, &len);
        CHECK(len == 6 && memcmp(p, "<0xZZ>", 6) == 0, "<0xZZ>");
        p = qc_tokenizer_piece(&s, 0, 263, byte, &len);
        CHECK(len == 1 && p[0] == 'j', "<0x6a>");
    }
    qc_tokenizer_free(&s);
    vocab_free(&v);
}

/* (c) decoding the reference generation reproduces its text. run.c's generate() prints
 * each piece with safe_printf (which would drop a lone non-printable, non-space byte; this
 * generation has none, else the comparison would fail) and then one "\n" after the loop:
 * the .txt is the decoded ids plus that final newline. */
static void test_decode_greedy(void) {
    qc_err e = { "" };
    char *ids_txt, *want;
    size_t ids_len, want_len;
    CHECK_OK(qc_read_file(shared_path("models/stories260K/greedy_from_bos_200.ids"), 1 << 20, &ids_txt,
                          &ids_len, &e), e);
    CHECK_OK(qc_read_file(shared_path("models/stories260K/greedy_from_bos_200.txt"), 1 << 20, &want,
                          &want_len, &e), e);
    if (!ids_txt || !want) {
        free(ids_txt);
        free(want);
        return;
    }
    int32_t ids[256];
    size_t n = 0;
    char *p = ids_txt, *end;
    for (long v = strtol(p, &end, 10); end != p && n < 256; v = strtol(p, &end, 10)) {
        ids[n++] = (int32_t)v;
        p = end;
    }
    CHECK(n == 200, "%zu ids", n);
    char *text;
    size_t len;
    CHECK_OK(qc_tokenizer_decode(&tok512, tok512.bos_id, ids, n, &text, &len, &e), e);
    CHECK(want_len > 0 && want[want_len - 1] == '\n', "run.c's final newline");
    CHECK(text && len + 1 == want_len && memcmp(text, want, len) == 0, "decoded: \"%s\"", text);
    free(text);
    free(ids_txt);
    free(want);
}

int main(void) {
    qc_err e = { "" };
    CHECK_OK(qc_tokenizer_load(&tok512, shared_path(TOK512), 512, &e), e);
    if (!tok512.index) return check_summary();
    load_texts();
    RUN(test_load_tok512);
    RUN(test_load_bad_files);
    RUN(test_round_trip);
    RUN(test_identity_real_slices);
    RUN(test_identity_stress);
    RUN(test_duplicates);
    RUN(test_encode_unsupported);
    RUN(test_piece_and_decode);
    RUN(test_decode_greedy);
    for (int i = 0; i < 4; i++) free(texts[i].data);
    qc_tokenizer_free(&tok512);
    return check_summary();
}
