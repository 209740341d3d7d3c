/* unit/datasets_tokenizer_write.c — datasets/tokenizer_write.c: the tokenizer files an output folder
 * gets. stories260K's tok512.bin written as a Hugging Face tokenizer.json, read back by
 * qcalib's tokenizer.json reader: the same ids as the llama2.c encoder on every shared text
 * (each C4 document, each other file whole) and the text back on decoding; its layout (the
 * three special tokens, every merge the vocabulary allows, counted here by brute force over
 * all pairs of pieces, in score order); tokenizer.bin byte for byte; tokenizer.json copied
 * as it is; and the vocabularies it refuses or trims. (tests/vectors/datasets_hf_tokenizer.sh checks the
 * same file with Hugging Face's own tokenizers.) */
#include "datasets/datasets.h"
#include "tests/check.h"

#define TOK512 "models/stories260K/tok512.bin"
#define HF656K "models/tinystories-656K"

static qc_tokenizer tok512, json512;

/* t's files written into the folder tmp_path(name) as for a Hugging Face-style folder (hf)
 * or a llama2.c one. */
static qc_status write_folder(const qc_tokenizer *t, const char *name, bool hf, qc_err *e) {
    qc_outdir d;
    qc_status st = qc_outdir_open(&d, tmp_path(name), true, e);
    if (!st) st = qc_tokenizer_write_into(t, &d, hf, e);
    if (!st) st = qc_outdir_commit(&d, e);
    else qc_outdir_abort(&d);
    return st;
}


/* The same ids from both tokenizers on every document of the shared texts, and the
 * document back from the tokenizer.json's decoder. */
static void test_same_ids(void) {
    const char *texts[4] = { "data/tinystories/tinystories_calib.txt", "data/tinystories/tinystories_eval.txt",
                             "data/wikitext2/wiki.test.raw", "data/c4/c4-validation-2k.json.gz" };
    qc_err e = { "" };
    for (int k = 0; k < 4; k++) {
        qc_corpus c;
        CHECK_OK(qc_corpus_load(&c, shared_path(texts[k]), &e), e);
        size_t same = 0, back = 0, tokens = 0;
        for (size_t d = 0; d < c.ndocs; d++) {
            const char *doc = c.text + c.doc_off[d];
            int32_t *a = NULL, *b = NULL;
            size_t na = 0, nb = 0, len = 0;
            char *text = NULL;
            CHECK_OK(qc_tokenizer_encode(&tok512, doc, c.doc_len[d], false, false, &a, &na, &e), e);
            CHECK_OK(qc_tokenizer_encode(&json512, doc, c.doc_len[d], false, false, &b, &nb, &e), e);
            same += a && b && na == nb && memcmp(a, b, na * sizeof *a) == 0;
            tokens += na;
            CHECK_OK(qc_tokenizer_decode(&json512, json512.bos_id, b, nb, &text, &len, &e), e);
            back += text && len == c.doc_len[d] && memcmp(text, doc, len) == 0;
            free(a);
            free(b);
            free(text);
        }
        printf("    %-34s %4zu documents, %8zu tokens: %zu with the same ids, %zu decoded back\n", texts[k] + 5, c.ndocs,
               tokens, same, back);
        CHECK(c.ndocs > 0 && tokens > 0 && same == c.ndocs && back == c.ndocs, "%s", texts[k]);
        qc_corpus_free(&c);
    }
}

/* Specials, BOS/EOS from tokenizer_config.json, types, and the merges: every pair of pieces
 * whose concatenation is a piece, each once, ranked by that piece's score (highest first),
 * the longer left part first among equal scores. */
static void test_layout(void) {
    const qc_tokenizer *j = &json512;
    CHECK(j->vocab_size == 512 && j->bos_id == 1 && j->eos_id == 2 && j->add_bos && qc_tokenizer_unk_id(j) == 0,
          "vocab %d, BOS %d, EOS %d, add_bos %d, unk %d", j->vocab_size, j->bos_id, j->eos_id, j->add_bos,
          qc_tokenizer_unk_id(j));
    CHECK(strcmp(j->pieces[0], "<unk>") == 0 && strcmp(j->pieces[1], "<s>") == 0 && strcmp(j->pieces[2], "</s>") == 0,
          "specials \"%s\" \"%s\" \"%s\"", j->pieces[0], j->pieces[1], j->pieces[2]);
    CHECK(qc_tokenizer_token_type(j, 1) == QC_TOKEN_CONTROL && qc_tokenizer_token_type(j, 3) == QC_TOKEN_BYTE &&
          qc_tokenizer_token_type(j, 300) == QC_TOKEN_NORMAL, "token types");
    int spaced = 0; /* pieces of tok512 with a space: written with "▁" */
    for (int i = 3; i < 512; i++) {
        char want[64];
        size_t o = 0;
        for (int k = 0; k < tok512.piece_len[i] && o < 60; k++) {
            if (tok512.pieces[i][k] != ' ') {
                want[o++] = tok512.pieces[i][k];
            } else {
                memcpy(want + o, "\xE2\x96\x81", 3);
                o += 3;
            }
        }
        want[o] = '\0';
        spaced += strchr(tok512.pieces[i], ' ') != NULL;
        CHECK(strcmp(j->pieces[i], want) == 0, "piece %d: \"%s\", wanted \"%s\"", i, j->pieces[i], want);
    }
    int expected = 0;
    char cat[160];
    for (int a = 0; a < 512; a++)
        for (int b = 0; b < 512; b++) {
            size_t la = (size_t)j->piece_len[a], lb = (size_t)j->piece_len[b];
            if (la + lb >= sizeof cat) continue;
            memcpy(cat, j->pieces[a], la);
            memcpy(cat + la, j->pieces[b], lb);
            expected += qc_tokenizer_lookup(j, cat, la + lb) >= 0;
        }
    int n = qc_tokenizer_merge_count(j), ordered = 0;
    float prev_score = INFINITY;
    size_t prev_left = 0;
    for (int m = 0; m < n; m++) {
        int32_t l, r;
        qc_tokenizer_merge(j, m, &l, &r);
        size_t ll = (size_t)j->piece_len[l], lr = (size_t)j->piece_len[r];
        memcpy(cat, j->pieces[l], ll);
        memcpy(cat + ll, j->pieces[r], lr);
        int id = qc_tokenizer_lookup(j, cat, ll + lr);
        float s = id >= 0 ? tok512.scores[id] : NAN;
        ordered += s < prev_score || (s == prev_score && ll <= prev_left);
        prev_score = s;
        prev_left = ll;
    }
    printf("    %d pieces with a space, %d merges (%d pairs of pieces make a piece), %d in rank order\n", spaced, n,
           expected, ordered);
    CHECK(spaced > 0 && n == expected && n > 0 && ordered == n, "%d merges, %d pairs, %d in order", n, expected, ordered);
}

/* A llama2.c folder: tokenizer.bin, the bytes of tok512.bin. A tokenizer.json tokenizer:
 * its tokenizer.json and tokenizer_config.json copied as they are, into either kind. */
static void test_bin_and_copies(void) {
    qc_err e = { "" };
    CHECK_OK(write_folder(&tok512, "tok512_llama2c", false, &e), e);
    CHECK(same_file(tmp_path("tok512_llama2c/tokenizer.bin"), shared_path(TOK512)), "tokenizer.bin differs from tok512.bin");
    CHECK(!qc_path_exists(tmp_path("tok512_llama2c/tokenizer.json")), "a llama2.c folder got tokenizer.json");
    CHECK(!qc_path_exists(tmp_path("tok512_hf/tokenizer.bin")), "a Hugging Face folder got tokenizer.bin");
    qc_tokenizer hf;
    CHECK_OK(qc_tokenizer_load_json(&hf, shared_path(HF656K "/tokenizer.json"), &e), e);
    for (int k = 0; k < 2 && hf.hf; k++) {
        const char *dir = k ? "656k_llama2c" : "656k_hf";
        char json[64], cfg[64];
        snprintf(json, sizeof json, "%s/tokenizer.json", dir);
        snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", dir);
        CHECK_OK(write_folder(&hf, dir, k == 0, &e), e);
        CHECK(same_file(tmp_path(json), shared_path(HF656K "/tokenizer.json")) &&
              same_file(tmp_path(cfg), shared_path(HF656K "/tokenizer_config.json")), "%s: not copies", dir);
    }
    qc_tokenizer_free(&hf);
}

/* A vocabulary from memory: pieces "<unk>", "\n<s>\n", "\n</s>\n", the 256 byte tokens, then
 * `extra` (NULL-terminated), scores falling with the id unless `nan_at` (>= 0) is NaN. */
static qc_status small_vocab(qc_tokenizer *t, const char *const *extra, int bos, int eos, int nan_at, qc_err *e) {
    const char *pieces[300];
    int lens[300], n = 0;
    float scores[300];
    char bytes[256][8];
    pieces[n++] = "<unk>", pieces[n++] = "\n<s>\n", pieces[n++] = "\n</s>\n";
    for (int b = 0; b < 256; b++) snprintf(bytes[b], 8, "<0x%02X>", b), pieces[n++] = bytes[b];
    for (int k = 0; extra[k]; k++) pieces[n++] = extra[k];
    for (int i = 0; i < n; i++) lens[i] = (int)strlen(pieces[i]), scores[i] = i == nan_at ? NAN : -(float)i;
    return qc_tokenizer_from_vocab(t, n, pieces, lens, scores, bos, eos, "small vocabulary", e);
}

/* Left out of model.vocab: a piece repeating an earlier one and a piece that is not UTF-8;
 * refused: BOS = EOS, a NaN score. */
static void test_trimmed_and_refused(void) {
    qc_err e = { "" };
    const char *extra[] = { "a", "b", "ab", "\xff", "ab", " ", " a", NULL };
    qc_tokenizer t, back;
    CHECK_OK(small_vocab(&t, extra, 1, 2, -1, &e), e);
    CHECK_OK(write_folder(&t, "small_hf", true, &e), e);
    CHECK_OK(qc_tokenizer_load_json(&back, tmp_path("small_hf/tokenizer.json"), &e), e);
    if (back.hf) {
        int first = 259; /* "a" */
        CHECK(back.vocab_size == first + 7 && qc_tokenizer_token_type(&back, first + 3) == QC_TOKEN_UNUSED &&
              qc_tokenizer_token_type(&back, first + 4) == QC_TOKEN_UNUSED &&
              qc_tokenizer_lookup(&back, "ab", 2) == first + 2 &&
              qc_tokenizer_lookup(&back, "\xE2\x96\x81" "a", 4) == first + 6,
              "vocab %d: the repeated \"ab\" and \"\\xff\" left out, \" a\" as \"▁a\"", back.vocab_size);
        CHECK(qc_tokenizer_merge_count(&back) == 2, "merges: a b, ▁ a; got %d", qc_tokenizer_merge_count(&back));
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(qc_tokenizer_encode(&back, "ab a", 4, true, false, &ids, &n, &e), e);
        CHECK(n == 4 && ids[0] == 1 && ids[1] == first + 5 && ids[2] == first + 2 && ids[3] == first + 6,
              "\"ab a\": <s> ▁ ab ▁a");
        free(ids);
    }
    qc_tokenizer_free(&back);
    qc_tokenizer_free(&t);
    CHECK_OK(small_vocab(&t, extra, 1, 1, -1, &e), e);
    CHECK_FAILS(write_folder(&t, "small_bos_eos", true, &e), e,
                "BOS id 1, EOS id 1 and <unk> (id 0) are not three different tokens");
    qc_tokenizer_free(&t);
    CHECK_OK(small_vocab(&t, extra, 1, 2, 261, &e), e);
    CHECK_FAILS(write_folder(&t, "small_nan", true, &e), e, "small vocabulary: token 261 has a NaN score");
    CHECK(!qc_path_exists(tmp_path("small_nan")), "a failed write left its folder");
    qc_tokenizer_free(&t);
}

int main(void) {
    qc_err e = { "" };
    CHECK_OK(qc_tokenizer_load(&tok512, shared_path(TOK512), 512, &e), e);
    CHECK_OK(write_folder(&tok512, "tok512_hf", true, &e), e);
    CHECK_OK(qc_tokenizer_load_json(&json512, tmp_path("tok512_hf/tokenizer.json"), &e), e);
    if (!tok512.index || !json512.hf) return check_summary();
    RUN(test_same_ids);
    RUN(test_layout);
    RUN(test_bin_and_copies);
    RUN(test_trimmed_and_refused);
    qc_tokenizer_free(&json512);
    qc_tokenizer_free(&tok512);
    return check_summary();
}
