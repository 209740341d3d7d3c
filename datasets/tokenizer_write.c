/* tokenizer_write.c — a model's tokenizer written into an output folder in the form the
 * folder's consumer reads (qc_tokenizer_write_into):
 *
 *   Hugging Face-style folder (safetensors: GPTQ, AWQ, full precision) for transformers, vLLM
 *   and qcalib: tokenizer.json and tokenizer_config.json. A tokenizer read from a
 *   tokenizer.json is copied as it is, with the tokenizer_config.json beside it when there is
 *   one. A llama2.c vocabulary (a tokenizer.bin, or a GGUF file's "llama" vocabulary) is
 *   converted, as below.
 *   llama2.c folder, for run.c and qcalib: tokenizer.bin in llama2.c's layout (tokenizer.c),
 *   written from memory, so a tokenizer read from a tokenizer.bin gives back the same bytes and
 *   one carried by a GGUF file becomes a tokenizer.bin. A tokenizer.json tokenizer is copied
 *   as above (run.c cannot read it; qcalib can).
 *
 * The conversion writes Llama 2's tokenizer.json layout, SentencePiece-style BPE with byte
 * fallback, which encodes as llama2.c's run.c does:
 *   normalizer      Sequence [Prepend "▁", Replace " " -> "▁"]: SentencePiece's dummy prefix
 *                   (run.c's leading " " token) and its visible space.
 *   pre_tokenizer   none: BPE runs over the whole text, as run.c's encode does.
 *   model           BPE, byte_fallback (the "<0xXX>" pieces), fuse_unk, unk_token "<unk>".
 *                   vocab: every id's piece with " " written "▁"; id 0, BOS and EOS named
 *                   "<unk>", "<s>" and "</s>" (llama2.c's files spell BOS and EOS "\n<s>\n",
 *                   "\n</s>\n"). Left out: an id whose piece repeats an earlier id's (qcalib's
 *                   lookup, and so its llama2.c encoder, gives the lowest id), and one whose
 *                   piece is not valid UTF-8 (JSON cannot hold it; run.c's encode never
 *                   yields it, as it starts from whole code points).
 *                   merges: transformers' conversion of a SentencePiece BPE model
 *                   (convert_slow_tokenizer's generate_merges): every split of a vocabulary
 *                   piece at a code point boundary into two vocabulary pieces, ranked by the
 *                   merged piece's score (highest first), then the longer left part, the
 *                   longer right part (in code points), the merged piece's id, the left part's
 *                   id. Merging the lowest rank first is then run.c's merging of the pair of
 *                   highest score (tests/unit/datasets_tokenizer_write.c and vectors/datasets_hf_tokenizer.sh check
 *                   the ids on every shared text, by qcalib's reader and by Hugging Face's).
 *   added_tokens    <unk>, <s>, </s>: special and not normalized, as in Llama 2. A text that
 *                   spells one is that token here and spelled out by run.c's encode.
 *   post_processor  TemplateProcessing with <s> first (when the tokenizer adds BOS), as
 *                   Llama 2's, for users of the file on its own.
 *   decoder         Sequence [Replace "▁" -> " ", ByteFallback, Fuse, Strip one leading " "].
 * tokenizer_config.json: add_bos_token, add_eos_token false, the three tokens,
 * tokenizer_class LlamaTokenizer, legacy true (this normalizer is transformers' "legacy" Llama
 * layout), clean_up_tokenization_spaces false. */
#include "datasets/hf_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define COPY_MAX_BYTES ((size_t)1 << 30)

static const char spm_space[] = "\xE2\x96\x81"; /* U+2581, SentencePiece's visible space */

static qc_status copy_file(const qc_outdir *d, const char *src, const char *name, qc_err *e) {
    char *buf;
    size_t len;
    qc_status st = qc_read_file(src, COPY_MAX_BYTES, &buf, &len, e);
    if (st) return st;
    st = qc_outdir_put(d, name, buf, len, e);
    free(buf);
    return st;
}

/* tokenizer.json, and the tokenizer_config.json beside it when there is one (BOS/EOS). */
static qc_status copy_json(const qc_tokenizer *t, const qc_outdir *d, qc_err *e) {
    qc_status st = copy_file(d, t->path, "tokenizer.json", e);
    char *dir = qc_path_dirname(t->path), *cfg = dir ? qc_path_join(dir, "tokenizer_config.json") : NULL;
    if (!st && !cfg) st = qc_fail(e, QC_ERR_NOMEM, "out of memory");
    if (!st && qc_path_exists(cfg)) st = copy_file(d, cfg, "tokenizer_config.json", e);
    free(cfg);
    free(dir);
    return st;
}

/* ---- tokenizer.bin -------------------------------------------------------------------------- */

static void put_le32(unsigned char *p, uint32_t x) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(x >> 8 * i);
}

static qc_status write_llama2c(const qc_tokenizer *t, const qc_outdir *d, qc_err *e) {
    size_t size = 4;
    for (int i = 0; i < t->vocab_size; i++) size += 8 + (size_t)t->piece_len[i];
    unsigned char *buf = qc_malloc(size, 1, e, t->path), *p = buf + 4;
    if (!buf) return QC_ERR_NOMEM;
    put_le32(buf, (uint32_t)t->max_token_length);
    for (int i = 0; i < t->vocab_size; i++) {
        uint32_t bits;
        memcpy(&bits, &t->scores[i], 4);
        put_le32(p, bits);
        put_le32(p + 4, (uint32_t)t->piece_len[i]);
        memcpy(p + 8, t->pieces[i], (size_t)t->piece_len[i]);
        p += 8 + t->piece_len[i];
    }
    qc_status st = qc_outdir_put(d, "tokenizer.bin", buf, size, e);
    free(buf);
    return st;
}

/* ---- tokenizer.json from a llama2.c vocabulary ------------------------------------------------ */

typedef struct merge {
    float score;      /* the merged piece's */
    int id;           /* the merged piece */
    int left, right;  /* the two parts' ids */
    int left_cps, right_cps; /* their lengths in code points */
} merge;

/* generate_merges' order: score descending, longer left, longer right, then the order the
 * pieces were visited in (id, then left part's id). */
static int merge_cmp(const void *pa, const void *pb) {
    const merge *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    if (a->left_cps != b->left_cps) return a->left_cps > b->left_cps ? -1 : 1;
    if (a->right_cps != b->right_cps) return a->right_cps > b->right_cps ? -1 : 1;
    if (a->id != b->id) return a->id < b->id ? -1 : 1;
    return (a->left > b->left) - (a->left < b->left);
}

/* The vocabulary as tokenizer.json spells it (see the top of the file). */
typedef struct json_vocab {
    qc_tokenizer t;   /* the pieces so spelled, for lookups (lowest id of a string) */
    bool *in_vocab;   /* (vocab_size) written to model.vocab */
    merge *merges;
    size_t nmerges;
} json_vocab;

static void json_vocab_free(json_vocab *v) {
    qc_tokenizer_free(&v->t);
    free(v->in_vocab);
    free(v->merges);
}

static const char *special_name(const qc_tokenizer *t, int id) {
    return id == 0 ? "<unk>" : id == t->bos_id ? "<s>" : id == t->eos_id ? "</s>" : NULL;
}

/* The pieces respelled (" " as "▁", the special names), into v->t. */
static qc_status respell(const qc_tokenizer *t, json_vocab *v, qc_err *e) {
    int n = t->vocab_size;
    char **pieces = qc_calloc((size_t)n, sizeof *pieces, e, t->path);
    int *lens = qc_calloc((size_t)n, sizeof *lens, e, t->path);
    qc_status st = pieces && lens ? QC_OK : QC_ERR_NOMEM;
    for (int i = 0; !st && i < n; i++) {
        const char *name = special_name(t, i), *s = t->pieces[i];
        size_t len = (size_t)t->piece_len[i], spaces = 0;
        for (size_t k = 0; k < len; k++) spaces += s[k] == ' ';
        char *out = pieces[i] = malloc(name ? strlen(name) + 1 : len + 2 * spaces + 1);
        if (!out) {
            st = qc_fail(e, QC_ERR_NOMEM, "out of memory");
            break;
        }
        if (name) {
            strcpy(out, name);
        } else {
            char *o = out;
            for (size_t k = 0; k < len; k++) {
                if (s[k] != ' ') {
                    *o++ = s[k];
                } else {
                    memcpy(o, spm_space, 3);
                    o += 3;
                }
            }
            *o = '\0';
        }
        lens[i] = (int)strlen(out);
    }
    if (!st) st = qc_tokenizer_from_vocab(&v->t, n, (const char *const *)pieces, lens, t->scores, t->bos_id, t->eos_id,
                                          t->path, e);
    for (int i = 0; pieces && i < n; i++) free(pieces[i]);
    free(pieces);
    free(lens);
    return st;
}

static int code_points(const char *s, size_t n) {
    int count = 0;
    for (size_t i = 0; i < n; i += hf_utf8_len((unsigned char)s[i])) count++;
    return count;
}

qc_status qc_tokenizer_check_write(const qc_tokenizer *t, bool hf, qc_err *e) {
    if (t->hf || !hf) return QC_OK; /* a copy of the file read, or tokenizer.bin: anything loaded can be */
    if (t->bos_id < 1 || t->eos_id < 1 || t->bos_id == t->eos_id)
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: BOS id %d, EOS id %d and <unk> (id 0) are not three different tokens: "
                       "cannot write them as tokenizer.json's <s>, </s> and <unk>", t->path, t->bos_id, t->eos_id);
    for (int i = 0; i < t->vocab_size; i++)
        if (isnan(t->scores[i]))
            return qc_fail(e, QC_ERR_FORMAT, "%s: token %d has a NaN score: its merges cannot be ranked", t->path, i);
    return QC_OK;
}

/* Which ids are written, and the merges in rank order. */
static qc_status build_vocab(const qc_tokenizer *t, json_vocab *v, qc_err *e) {
    int n = t->vocab_size;
    qc_status st = qc_tokenizer_check_write(t, true, e);
    if (!st) st = respell(t, v, e);
    if (st) return st;
    const qc_tokenizer *j = &v->t;
    v->in_vocab = qc_calloc((size_t)n, sizeof *v->in_vocab, e, t->path);
    if (!v->in_vocab) return QC_ERR_NOMEM;
    size_t cap = 0;
    for (int i = 0; i < n; i++) {
        size_t len = (size_t)j->piece_len[i];
        v->in_vocab[i] = hf_utf8_invalid_at(j->pieces[i], len) == len && qc_tokenizer_lookup(j, j->pieces[i], len) == i;
        if (v->in_vocab[i]) cap += (size_t)code_points(j->pieces[i], len) - 1;
    }
    v->merges = qc_malloc(cap ? cap : 1, sizeof *v->merges, e, t->path);
    if (!v->merges) return QC_ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        if (!v->in_vocab[i]) continue;
        const char *s = j->pieces[i];
        size_t len = (size_t)j->piece_len[i];
        /* a split of valid UTF-8 at a code point boundary is valid: a part found is in the vocab */
        for (size_t k = hf_utf8_len((unsigned char)s[0]); k < len; k += hf_utf8_len((unsigned char)s[k])) {
            int l = qc_tokenizer_lookup(j, s, k), r = qc_tokenizer_lookup(j, s + k, len - k);
            if (l >= 0 && r >= 0)
                v->merges[v->nmerges++] = (merge){ t->scores[i], i, l, r, code_points(s, k), code_points(s + k, len - k) };
        }
    }
    qsort(v->merges, v->nmerges, sizeof *v->merges, merge_cmp);
    return QC_OK;
}

/* cJSON helpers that remember an allocation failure instead of returning it each time. */
static cJSON *add(bool *ok, cJSON *parent, const char *key, cJSON *item) {
    if (!item || !(key ? cJSON_AddItemToObject(parent, key, item) : cJSON_AddItemToArray(parent, item))) {
        cJSON_Delete(item);
        *ok = false;
        return NULL;
    }
    return item;
}

static cJSON *replace_pattern(bool *ok, const char *from, const char *to) {
    cJSON *r = cJSON_CreateObject();
    add(ok, r, "type", cJSON_CreateString("Replace"));
    add(ok, add(ok, r, "pattern", cJSON_CreateObject()), "String", cJSON_CreateString(from));
    add(ok, r, "content", cJSON_CreateString(to));
    return r;
}

static cJSON *special_token(bool *ok, int id, const char *content) {
    cJSON *s = cJSON_CreateObject();
    add(ok, s, "id", cJSON_CreateNumber(id));
    add(ok, s, "content", cJSON_CreateString(content));
    add(ok, s, "single_word", cJSON_CreateFalse());
    add(ok, s, "lstrip", cJSON_CreateFalse());
    add(ok, s, "rstrip", cJSON_CreateFalse());
    add(ok, s, "normalized", cJSON_CreateFalse());
    add(ok, s, "special", cJSON_CreateTrue());
    return s;
}

/* {"SpecialToken" or "Sequence": {"id": id, "type_id": type_id}} of a TemplateProcessing. */
static cJSON *template_piece(bool *ok, const char *kind, const char *id, int type_id) {
    cJSON *p = cJSON_CreateObject(), *in = add(ok, p, kind, cJSON_CreateObject());
    add(ok, in, "id", cJSON_CreateString(id));
    add(ok, in, "type_id", cJSON_CreateNumber(type_id));
    return p;
}

static cJSON *post_processor(bool *ok, int bos) {
    cJSON *pp = cJSON_CreateObject();
    add(ok, pp, "type", cJSON_CreateString("TemplateProcessing"));
    cJSON *single = add(ok, pp, "single", cJSON_CreateArray()), *pair = add(ok, pp, "pair", cJSON_CreateArray());
    add(ok, single, NULL, template_piece(ok, "SpecialToken", "<s>", 0));
    add(ok, single, NULL, template_piece(ok, "Sequence", "A", 0));
    add(ok, pair, NULL, template_piece(ok, "SpecialToken", "<s>", 0));
    add(ok, pair, NULL, template_piece(ok, "Sequence", "A", 0));
    add(ok, pair, NULL, template_piece(ok, "SpecialToken", "<s>", 1));
    add(ok, pair, NULL, template_piece(ok, "Sequence", "B", 1));
    cJSON *s = add(ok, add(ok, pp, "special_tokens", cJSON_CreateObject()), "<s>", cJSON_CreateObject());
    add(ok, s, "id", cJSON_CreateString("<s>"));
    add(ok, add(ok, s, "ids", cJSON_CreateArray()), NULL, cJSON_CreateNumber(bos));
    add(ok, add(ok, s, "tokens", cJSON_CreateArray()), NULL, cJSON_CreateString("<s>"));
    return pp;
}

static cJSON *tokenizer_json(const qc_tokenizer *t, const json_vocab *v, bool *ok) {
    const qc_tokenizer *j = &v->t;
    cJSON *root = cJSON_CreateObject();
    add(ok, root, "version", cJSON_CreateString("1.0"));
    add(ok, root, "truncation", cJSON_CreateNull());
    add(ok, root, "padding", cJSON_CreateNull());
    cJSON *added = add(ok, root, "added_tokens", cJSON_CreateArray());
    int specials[3] = { 0, t->bos_id, t->eos_id };
    for (int k = 0; k < 3; k++) add(ok, added, NULL, special_token(ok, specials[k], special_name(t, specials[k])));
    cJSON *norm = add(ok, root, "normalizer", cJSON_CreateObject());
    add(ok, norm, "type", cJSON_CreateString("Sequence"));
    cJSON *norms = add(ok, norm, "normalizers", cJSON_CreateArray());
    cJSON *prepend = add(ok, norms, NULL, cJSON_CreateObject());
    add(ok, prepend, "type", cJSON_CreateString("Prepend"));
    add(ok, prepend, "prepend", cJSON_CreateString(spm_space));
    add(ok, norms, NULL, replace_pattern(ok, " ", spm_space));
    add(ok, root, "pre_tokenizer", cJSON_CreateNull());
    add(ok, root, "post_processor", t->add_bos ? post_processor(ok, t->bos_id) : cJSON_CreateNull());
    cJSON *dec = add(ok, root, "decoder", cJSON_CreateObject());
    add(ok, dec, "type", cJSON_CreateString("Sequence"));
    cJSON *decs = add(ok, dec, "decoders", cJSON_CreateArray());
    add(ok, decs, NULL, replace_pattern(ok, spm_space, " "));
    add(ok, add(ok, decs, NULL, cJSON_CreateObject()), "type", cJSON_CreateString("ByteFallback"));
    add(ok, add(ok, decs, NULL, cJSON_CreateObject()), "type", cJSON_CreateString("Fuse"));
    cJSON *strip = add(ok, decs, NULL, cJSON_CreateObject());
    add(ok, strip, "type", cJSON_CreateString("Strip"));
    add(ok, strip, "content", cJSON_CreateString(" "));
    add(ok, strip, "start", cJSON_CreateNumber(1));
    add(ok, strip, "stop", cJSON_CreateNumber(0));
    cJSON *model = add(ok, root, "model", cJSON_CreateObject());
    add(ok, model, "type", cJSON_CreateString("BPE"));
    add(ok, model, "dropout", cJSON_CreateNull());
    add(ok, model, "unk_token", cJSON_CreateString("<unk>"));
    add(ok, model, "continuing_subword_prefix", cJSON_CreateNull());
    add(ok, model, "end_of_word_suffix", cJSON_CreateNull());
    add(ok, model, "fuse_unk", cJSON_CreateTrue());
    add(ok, model, "byte_fallback", cJSON_CreateTrue());
    cJSON *vocab = add(ok, model, "vocab", cJSON_CreateObject());
    for (int i = 0; *ok && i < j->vocab_size; i++)
        if (v->in_vocab[i]) add(ok, vocab, j->pieces[i], cJSON_CreateNumber(i));
    cJSON *merges = add(ok, model, "merges", cJSON_CreateArray());
    char *buf = malloc(2 * (size_t)j->max_token_length + 2);
    *ok = *ok && buf;
    for (size_t m = 0; *ok && m < v->nmerges; m++) {
        const merge *x = &v->merges[m];
        snprintf(buf, 2 * (size_t)j->max_token_length + 2, "%s %s", j->pieces[x->left], j->pieces[x->right]);
        add(ok, merges, NULL, cJSON_CreateString(buf));
    }
    free(buf);
    return root;
}

static cJSON *tokenizer_config(const qc_tokenizer *t, bool *ok) {
    cJSON *c = cJSON_CreateObject();
    add(ok, c, "add_bos_token", cJSON_CreateBool(t->add_bos));
    add(ok, c, "add_eos_token", cJSON_CreateFalse());
    add(ok, c, "bos_token", cJSON_CreateString("<s>"));
    add(ok, c, "eos_token", cJSON_CreateString("</s>"));
    add(ok, c, "unk_token", cJSON_CreateString("<unk>"));
    add(ok, c, "pad_token", cJSON_CreateNull());
    add(ok, c, "clean_up_tokenization_spaces", cJSON_CreateFalse());
    add(ok, c, "legacy", cJSON_CreateTrue());
    add(ok, c, "tokenizer_class", cJSON_CreateString("LlamaTokenizer"));
    return c;
}

static qc_status put_json(const qc_outdir *d, const char *name, cJSON *j, bool ok, bool formatted, qc_err *e) {
    char *text = ok ? (formatted ? cJSON_Print(j) : cJSON_PrintUnformatted(j)) : NULL;
    qc_status st = text ? qc_outdir_put(d, name, text, strlen(text), e) : qc_fail(e, QC_ERR_NOMEM, "out of memory");
    free(text);
    cJSON_Delete(j);
    return st;
}

static qc_status convert(const qc_tokenizer *t, const qc_outdir *d, qc_err *e) {
    json_vocab v = { 0 };
    qc_status st = build_vocab(t, &v, e);
    if (!st) {
        bool ok = true;
        cJSON *j = tokenizer_json(t, &v, &ok);
        st = put_json(d, "tokenizer.json", j, ok, false, e);
    }
    if (!st) {
        bool ok = true;
        cJSON *c = tokenizer_config(t, &ok);
        st = put_json(d, "tokenizer_config.json", c, ok, true, e);
    }
    json_vocab_free(&v);
    return st;
}

qc_status qc_tokenizer_write_into(const qc_tokenizer *t, const qc_outdir *d, bool hf, qc_err *e) {
    if (t->hf) return copy_json(t, d, e);
    return hf ? convert(t, d, e) : write_llama2c(t, d, e);
}
