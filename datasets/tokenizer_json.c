/* tokenizer_json.c — reading a Hugging Face tokenizer.json (with tokenizer_config.json and
 * config.json beside it) into a qc_tokenizer.
 *
 * Supported: model.type "BPE" (vocab, merges as "a b" strings or [a, b] pairs, unk_token,
 * byte_fallback, fuse_unk, ignore_merges); added_tokens; normalizers Sequence, Prepend,
 * Replace (string pattern), NFC, NFD, NFKC, NFKD, Strip; pre-tokenizers Sequence, Split
 * (Isolated or Removed, regex or string), ByteLevel, Metaspace; decoders Sequence, ByteLevel,
 * Replace, ByteFallback, Fuse, Strip, Metaspace. That covers the SentencePiece-style BPE files
 * (Llama 2, Mistral, TinyLlama) and the byte-level BPE ones (Llama 3, Qwen2/3, SmolLM, GPT-2).
 * Anything else is refused with the field that names it.
 *
 * The qc_tokenizer's pieces are the vocabulary strings as the file stores them ("▁the",
 * "Ġthe"), added tokens at their ids, "[PAD<id>]" for ids the file leaves out; scores are 0.
 * BOS: tokenizer_config.json's bos_token, else config.json's bos_token_id, else the special
 * token the post-processor's template starts with; add_bos: tokenizer_config.json's
 * add_bos_token, else whether that template starts with a special token. EOS likewise. */
#include "datasets/hf_internal.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_BYTES ((size_t)1 << 30)
#define VOCAB_LIMIT (1 << 22)

typedef struct loader {
    const char *path;
    qc_err *e;
} loader;

static bool flag(const cJSON *o, const char *key, bool dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static const char *str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static qc_status read_json(const char *path, bool required, cJSON **out, qc_err *e) {
    *out = NULL;
    if (!required && !qc_path_exists(path)) return QC_OK;
    char *buf;
    size_t len;
    qc_status st = qc_read_file(path, JSON_MAX_BYTES, &buf, &len, e);
    if (st) return st;
    *out = cJSON_ParseWithLength(buf, len);
    if (!*out) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= buf && at <= buf + len ? (size_t)(at - buf) : 0;
        free(buf);
        return qc_fail(e, QC_ERR_FORMAT, "%s: not valid JSON (error near byte %zu)", path, off);
    }
    free(buf);
    if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return qc_fail(e, QC_ERR_FORMAT, "%s: not a JSON object", path);
    }
    return QC_OK;
}

/* ---- normalizer, pre-tokenizer ---------------------------------------------------------------- */

static qc_status add_norm(loader *L, hf_tok *h, const cJSON *n, const char *field) {
    const char *type = str(n, "type");
    if (!type) return qc_fail(L->e, QC_ERR_FORMAT, "%s: %s has no \"type\"", L->path, field);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers"), *x;
        if (!cJSON_IsArray(list)) return qc_fail(L->e, QC_ERR_FORMAT, "%s: %s.normalizers is not an array", L->path, field);
        cJSON_ArrayForEach(x, list) {
            qc_status st = add_norm(L, h, x, field);
            if (st) return st;
        }
        return QC_OK;
    }
    hf_norm nm = { 0 };
    if (strcmp(type, "Prepend") == 0) {
        nm.kind = NORM_PREPEND;
        if (!str(n, "prepend")) return qc_fail(L->e, QC_ERR_FORMAT, "%s: %s Prepend has no \"prepend\" string", L->path, field);
        nm.to = strdup(str(n, "prepend"));
    } else if (strcmp(type, "Replace") == 0) {
        nm.kind = NORM_REPLACE;
        const char *from = str(cJSON_GetObjectItemCaseSensitive(n, "pattern"), "String"), *to = str(n, "content");
        if (!from || !to || !*from)
            return qc_fail(L->e, QC_ERR_UNSUPPORTED, "%s: %s Replace: only a non-empty {\"String\": ...} pattern and a "
                           "\"content\" string are supported", L->path, field);
        nm.from = strdup(from);
        nm.to = strdup(to);
    } else if (strcmp(type, "NFC") == 0) nm.kind = NORM_NFC;
    else if (strcmp(type, "NFD") == 0) nm.kind = NORM_NFD;
    else if (strcmp(type, "NFKC") == 0) nm.kind = NORM_NFKC;
    else if (strcmp(type, "NFKD") == 0) nm.kind = NORM_NFKD;
    else if (strcmp(type, "Strip") == 0) {
        nm.kind = NORM_STRIP;
        nm.left = flag(n, "strip_left", false);
        nm.right = flag(n, "strip_right", false);
    } else {
        return qc_fail(L->e, QC_ERR_UNSUPPORTED, "%s: %s.type \"%s\" is not supported (Sequence, Prepend, Replace, NFC, "
                       "NFD, NFKC, NFKD, Strip)", L->path, field, type);
    }
    if ((nm.kind == NORM_PREPEND && !nm.to) || (nm.kind == NORM_REPLACE && (!nm.from || !nm.to))) {
        free(nm.from), free(nm.to);
        return qc_fail(L->e, QC_ERR_NOMEM, "out of memory");
    }
    hf_norm *v = realloc(h->norms, (size_t)(h->nnorms + 1) * sizeof *v);
    if (!v) {
        free(nm.from), free(nm.to);
        return qc_fail(L->e, QC_ERR_NOMEM, "out of memory");
    }
    h->norms = v;
    h->norms[h->nnorms++] = nm;
    return QC_OK;
}

/* llama.cpp's name (tokenizer.ggml.pre) for the split regexes of the families it knows; its
 * converter identifies them the same way, by the pre-tokenizer's behaviour. */
static const char *ggml_pre_name(const char *regex) {
    static const char *const known[][2] = {
        { "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
          "llama-bpe" },
        { "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
          "qwen2" },
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(regex, known[i][0]) == 0) return known[i][1];
    return NULL;
}

/* A regex that matches the literal s. */
static char *escape_literal(const char *s) {
    char *out = malloc(2 * strlen(s) + 1), *o = out;
    if (!out) return NULL;
    for (; *s; s++) {
        if (strchr("\\^$.|?*+()[]{}", *s)) *o++ = '\\';
        *o++ = *s;
    }
    *o = '\0';
    return out;
}

static qc_status add_pre(loader *L, hf_tok *h, const cJSON *p, const char *field) {
    const char *type = str(p, "type");
    if (!type) return qc_fail(L->e, QC_ERR_FORMAT, "%s: %s has no \"type\"", L->path, field);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers"), *x;
        if (!cJSON_IsArray(list)) return qc_fail(L->e, QC_ERR_FORMAT, "%s: %s.pretokenizers is not an array", L->path, field);
        cJSON_ArrayForEach(x, list) {
            qc_status st = add_pre(L, h, x, field);
            if (st) return st;
        }
        return QC_OK;
    }
    hf_pre pr = { 0 };
    char where[512];
    snprintf(where, sizeof where, "%s: %s (%s)", L->path, field, type);
    if (strcmp(type, "Split") == 0) {
        pr.kind = PRE_SPLIT;
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const char *behavior = str(p, "behavior"), *rx = str(pat, "Regex"), *lit = str(pat, "String");
        if (rx) h->ggml_pre = ggml_pre_name(rx);
        if (!behavior || (strcmp(behavior, "Isolated") && strcmp(behavior, "Removed")))
            return qc_fail(L->e, QC_ERR_UNSUPPORTED, "%s: behavior \"%s\" is not supported (Isolated, Removed)", where,
                           behavior ? behavior : "(missing)");
        if (!rx && !lit) return qc_fail(L->e, QC_ERR_FORMAT, "%s: pattern is neither {\"Regex\": ...} nor {\"String\": ...}", where);
        pr.removed = strcmp(behavior, "Removed") == 0;
        pr.invert = flag(p, "invert", false);
        char *esc = lit ? escape_literal(lit) : NULL;
        if (lit && !esc) return qc_fail(L->e, QC_ERR_NOMEM, "out of memory");
        pr.re = hf_regex_compile(rx ? rx : esc, where, L->e);
        free(esc);
        if (!pr.re) return QC_ERR_FORMAT;
    } else if (strcmp(type, "ByteLevel") == 0) {
        pr.kind = PRE_BYTELEVEL;
        h->byte_level = true;
        pr.add_prefix_space = flag(p, "add_prefix_space", false);
        if (flag(p, "use_regex", true)) { /* GPT-2's own split */
            pr.re = hf_regex_compile("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", where, L->e);
            if (!pr.re) return QC_ERR_FORMAT;
            if (!h->ggml_pre) h->ggml_pre = "gpt-2";
        }
    } else if (strcmp(type, "Metaspace") == 0) {
        pr.kind = PRE_METASPACE;
        const char *rep = str(p, "replacement"), *scheme = str(p, "prepend_scheme");
        pr.replacement = strdup(rep && *rep ? rep : "\xE2\x96\x81");
        pr.split = flag(p, "split", true);
        pr.prepend = scheme ? (strcmp(scheme, "first") == 0 ? 1 : strcmp(scheme, "never") == 0 ? 0 : 2)
                            : flag(p, "add_prefix_space", true) ? 2 : 0;
        if (!pr.replacement) return qc_fail(L->e, QC_ERR_NOMEM, "out of memory");
    } else {
        return qc_fail(L->e, QC_ERR_UNSUPPORTED, "%s: %s.type \"%s\" is not supported (Sequence, Split, ByteLevel, "
                       "Metaspace)", L->path, field, type);
    }
    hf_pre *v = realloc(h->pres, (size_t)(h->npres + 1) * sizeof *v);
    if (!v) {
        hf_regex_free(pr.re);
        free(pr.replacement);
        return qc_fail(L->e, QC_ERR_NOMEM, "out of memory");
    }
    h->pres = v;
    h->pres[h->npres++] = pr;
    return QC_OK;
}

/* ---- decoder ------------------------------------------------------------------------------------ */

typedef struct dec_flags {
    bool byte_level, byte_fallback, metaspace;
} dec_flags;

static qc_status read_decoder(loader *L, hf_tok *h, const cJSON *d, dec_flags *f) {
    const char *type = str(d, "type");
    if (!type) return qc_fail(L->e, QC_ERR_FORMAT, "%s: decoder has no \"type\"", L->path);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(d, "decoders"), *x;
        if (!cJSON_IsArray(list)) return qc_fail(L->e, QC_ERR_FORMAT, "%s: decoder.decoders is not an array", L->path);
        cJSON_ArrayForEach(x, list) {
            qc_status st = read_decoder(L, h, x, f);
            if (st) return st;
        }
    } else if (strcmp(type, "ByteLevel") == 0) {
        f->byte_level = true;
    } else if (strcmp(type, "ByteFallback") == 0) {
        f->byte_fallback = true;
    } else if (strcmp(type, "Replace") == 0) {
        const char *from = str(cJSON_GetObjectItemCaseSensitive(d, "pattern"), "String"), *to = str(d, "content");
        if (!from || !to || strcmp(from, "\xE2\x96\x81") || strcmp(to, " "))
            return qc_fail(L->e, QC_ERR_UNSUPPORTED, "%s: decoder Replace: only \"▁\" -> \" \" is supported", L->path);
        f->metaspace = true;
    } else if (strcmp(type, "Metaspace") == 0) {
        const char *scheme = str(d, "prepend_scheme");
        f->metaspace = true;
        h->strip_first_space = scheme ? strcmp(scheme, "never") != 0 : flag(d, "add_prefix_space", true);
    } else if (strcmp(type, "Strip") == 0) {
        const char *content = str(d, "content");
        const cJSON *start = cJSON_GetObjectItemCaseSensitive(d, "start");
        if (!content || strcmp(content, " ") || !cJSON_IsNumber(start) || start->valueint > 1 ||
            cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(d, "stop")) != 0)
            return qc_fail(L->e, QC_ERR_UNSUPPORTED, "%s: decoder Strip: only stripping one leading \" \" is supported", L->path);
        h->strip_first_space = start->valueint == 1;
    } else if (strcmp(type, "Fuse") != 0) {
        return qc_fail(L->e, QC_ERR_UNSUPPORTED, "%s: decoder.type \"%s\" is not supported (Sequence, ByteLevel, "
                       "ByteFallback, Replace, Metaspace, Strip, Fuse)", L->path, type);
    }
    return QC_OK;
}

/* GPT-2's byte-to-unicode map inverted: byte_of[cp] for code points below 0x144, 256 where none. */
static void byte_map(unsigned byte_of[0x144]) {
    for (unsigned cp = 0; cp < 0x144; cp++) byte_of[cp] = 256;
    for (unsigned b = 0, k = 0; b < 256; b++) {
        bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        byte_of[printable ? b : 0x100 + k++] = b;
    }
}

/* The bytes a vocabulary string stands for, by the decoder's rules, appended to b. */
static bool decode_piece(const char *p, size_t n, const dec_flags *f, const unsigned byte_of[0x144], hf_buf *b) {
    unsigned v;
    if (f->byte_fallback && n == 6 && strncmp(p, "<0x", 3) == 0 && p[5] == '>' && sscanf(p + 3, "%2X", &v) == 1) {
        char c = (char)v;
        return hf_buf_put(b, &c, 1);
    }
    for (size_t i = 0; i < n;) {
        size_t cl = hf_utf8_len((unsigned char)p[i]);
        if (cl > n - i) cl = n - i;
        const unsigned char *u = (const unsigned char *)p + i;
        unsigned cp = cl == 1 ? u[0] : cl == 2 ? (unsigned)(u[0] & 0x1F) << 6 | (u[1] & 0x3F) : 0x144;
        bool ok;
        if (f->byte_level && cp < 0x144 && byte_of[cp] < 256) {
            char c = (char)byte_of[cp];
            ok = hf_buf_put(b, &c, 1);
        } else if (f->metaspace && cl == 3 && memcmp(u, "\xE2\x96\x81", 3) == 0) {
            ok = hf_buf_put(b, " ", 1);
        } else {
            ok = hf_buf_put(b, p + i, cl);
        }
        if (!ok) return false;
        i += cl;
    }
    return true;
}

/* ---- special tokens ------------------------------------------------------------------------------- */

/* The id of a tokenizer_config.json token entry (a string or {"content": ...}), or -1. */
static int config_token(const qc_tokenizer *t, const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    const char *s = cJSON_IsString(v) ? v->valuestring : str(v, "content");
    return s ? qc_tokenizer_lookup(t, s, strlen(s)) : -1;
}

static int config_id(const cJSON *cfg, const char *key, int vocab) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsArray(v)) v = cJSON_GetArrayItem(v, 0);
    return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < vocab ? v->valueint : -1;
}

/* The id of the special token the post-processor's single-sequence template starts with. */
static int template_first(const qc_tokenizer *t, const cJSON *pp) {
    const char *type = str(pp, "type");
    if (type && strcmp(type, "Sequence") == 0) {
        const cJSON *x;
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(pp, "processors")) {
            int id = template_first(t, x);
            if (id >= 0) return id;
        }
        return -1;
    }
    if (!type || strcmp(type, "TemplateProcessing")) return -1;
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(pp, "single"), 0);
    const char *name = str(cJSON_GetObjectItemCaseSensitive(first, "SpecialToken"), "id");
    return name ? qc_tokenizer_lookup(t, name, strlen(name)) : -1;
}

/* ---- the whole file ---------------------------------------------------------------------------------- */

static qc_status read_vocab(loader *L, const cJSON *root, hf_tok *h, char ***pieces_out, int *nvocab) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const char *type = str(model, "type");
    if (!type || strcmp(type, "BPE"))
        return qc_fail(L->e, QC_ERR_UNSUPPORTED, "%s: model.type \"%s\" is not supported (BPE only)", L->path,
                       type ? type : "(missing)");
    const cJSON *drop = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (cJSON_IsNumber(drop) && drop->valuedouble != 0)
        return qc_fail(L->e, QC_ERR_UNSUPPORTED, "%s: model.dropout %g is not supported (encoding would be random)", L->path,
                       drop->valuedouble);
    const char *keys[2] = { "continuing_subword_prefix", "end_of_word_suffix" };
    for (int i = 0; i < 2; i++)
        if (str(model, keys[i]) && *str(model, keys[i]))
            return qc_fail(L->e, QC_ERR_UNSUPPORTED, "%s: model.%s \"%s\" is not supported", L->path, keys[i], str(model, keys[i]));
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab"), *x;
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!cJSON_IsObject(vocab)) return qc_fail(L->e, QC_ERR_FORMAT, "%s: model.vocab is not an object", L->path);
    if (added && !cJSON_IsArray(added) && !cJSON_IsNull(added))
        return qc_fail(L->e, QC_ERR_FORMAT, "%s: added_tokens is not an array", L->path);
    int n = 0;
    cJSON_ArrayForEach(x, vocab) {
        if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble >= VOCAB_LIMIT || x->valuedouble != (double)x->valueint)
            return qc_fail(L->e, QC_ERR_FORMAT, "%s: model.vocab[\"%s\"] is not an id in 0..%d", L->path, x->string, VOCAB_LIMIT - 1);
        if (x->valueint >= n) n = x->valueint + 1;
    }
    int nadded = cJSON_GetArraySize(added);
    cJSON_ArrayForEach(x, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(x, "id");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= VOCAB_LIMIT || !str(x, "content") || !*str(x, "content"))
            return qc_fail(L->e, QC_ERR_FORMAT, "%s: added_tokens: an entry without a valid \"id\" and non-empty \"content\"", L->path);
        if (flag(x, "single_word", false))
            return qc_fail(L->e, QC_ERR_UNSUPPORTED, "%s: added_tokens \"%s\": single_word is not supported", L->path, str(x, "content"));
        if (id->valueint >= n) n = id->valueint + 1;
    }
    if (n == 0) return qc_fail(L->e, QC_ERR_FORMAT, "%s: model.vocab is empty", L->path);
    char **pieces = calloc((size_t)n, sizeof *pieces);
    h->added = calloc((size_t)nadded + 1, sizeof *h->added);
    if (!pieces || !h->added) {
        free(pieces);
        return qc_fail(L->e, QC_ERR_NOMEM, "out of memory");
    }
    *pieces_out = pieces;
    *nvocab = n;
    cJSON_ArrayForEach(x, vocab) {
        if (pieces[x->valueint])
            return qc_fail(L->e, QC_ERR_FORMAT, "%s: model.vocab: id %d is given to both \"%s\" and \"%s\"", L->path, x->valueint,
                           pieces[x->valueint], x->string);
        if (!*x->string) return qc_fail(L->e, QC_ERR_FORMAT, "%s: model.vocab: id %d is an empty string", L->path, x->valueint);
        if (!(pieces[x->valueint] = strdup(x->string))) return qc_fail(L->e, QC_ERR_NOMEM, "out of memory");
    }
    cJSON_ArrayForEach(x, added) {
        hf_added *a = &h->added[h->nadded++];
        a->id = cJSON_GetObjectItemCaseSensitive(x, "id")->valueint;
        a->special = flag(x, "special", false);
        a->lstrip = flag(x, "lstrip", false);
        a->rstrip = flag(x, "rstrip", false);
        a->normalized = flag(x, "normalized", !a->special);
        a->content = strdup(str(x, "content"));
        if (!a->content) return qc_fail(L->e, QC_ERR_NOMEM, "out of memory");
        a->len = strlen(a->content);
        if (pieces[a->id] && strcmp(pieces[a->id], a->content))
            return qc_fail(L->e, QC_ERR_FORMAT, "%s: added_tokens: id %d is \"%s\" there and \"%s\" in model.vocab", L->path,
                           a->id, a->content, pieces[a->id]);
        if (!pieces[a->id] && !(pieces[a->id] = strdup(a->content))) return qc_fail(L->e, QC_ERR_NOMEM, "out of memory");
    }
    if (!(h->unused = calloc((size_t)n, sizeof *h->unused))) return qc_fail(L->e, QC_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        if (!pieces[i] && (h->unused[i] = true) && !(pieces[i] = qc_strdupf("[PAD%d]", i)))
            return qc_fail(L->e, QC_ERR_NOMEM, "out of memory");
    h->byte_fallback = flag(model, "byte_fallback", false);
    h->ignore_merges = flag(model, "ignore_merges", false);
    h->fuse_unk = flag(model, "fuse_unk", false);
    return QC_OK;
}

/* Splits a merges entry ("a b" or ["a", "b"]) into its two parts (a points into buf). */
static bool merge_parts(const cJSON *m, char *buf, size_t cap, const char **a, const char **b) {
    if (cJSON_IsString(m)) {
        const char *sp = strchr(m->valuestring, ' ');
        size_t len = strlen(m->valuestring);
        if (!sp || len + 1 > cap) return false;
        memcpy(buf, m->valuestring, len + 1);
        buf[sp - m->valuestring] = '\0';
        *a = buf;
        *b = buf + (sp - m->valuestring) + 1;
        return true;
    }
    if (cJSON_GetArraySize(m) != 2) return false;
    *a = cJSON_GetStringValue(cJSON_GetArrayItem(m, 0));
    *b = cJSON_GetStringValue(cJSON_GetArrayItem(m, 1));
    return *a && *b;
}

static qc_status read_merges(loader *L, const cJSON *root, qc_tokenizer *t, hf_tok *h) {
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "model"), "merges"), *m;
    if (!cJSON_IsArray(merges)) return qc_fail(L->e, QC_ERR_FORMAT, "%s: model.merges is not an array", L->path);
    size_t count = (size_t)cJSON_GetArraySize(merges), size = 16;
    while (size < 2 * count + 2) size *= 2;
    h->merges = calloc(size, sizeof *h->merges);
    h->merge_mask = size - 1;
    h->merge_list = malloc((count ? count : 1) * sizeof *h->merge_list);
    char *buf = malloc((size_t)t->max_token_length * 2 + 2), *cat = malloc((size_t)t->max_token_length * 2 + 2);
    qc_status st = h->merges && h->merge_list && buf && cat ? QC_OK : qc_fail(L->e, QC_ERR_NOMEM, "out of memory");
    int32_t rank = 0;
    cJSON_ArrayForEach(m, merges) {
        if (st) break;
        const char *a, *b;
        if (!merge_parts(m, buf, (size_t)t->max_token_length * 2 + 2, &a, &b)) {
            st = qc_fail(L->e, QC_ERR_FORMAT, "%s: model.merges[%d] is not \"a b\" or [\"a\", \"b\"] of vocabulary pieces",
                         L->path, rank);
            break;
        }
        size_t la = strlen(a), lb = strlen(b);
        int32_t l = qc_tokenizer_lookup(t, a, la), r = qc_tokenizer_lookup(t, b, lb), id = -1;
        if (l >= 0 && r >= 0) {
            memcpy(cat, a, la);
            memcpy(cat + la, b, lb);
            id = qc_tokenizer_lookup(t, cat, la + lb);
        }
        if (id < 0) {
            st = qc_fail(L->e, QC_ERR_FORMAT, "%s: model.merges[%d] (\"%s\", \"%s\"): %s is not in model.vocab", L->path, rank,
                         a, b, l < 0 ? "the left part" : r < 0 ? "the right part" : "the merged piece");
            break;
        }
        uint64_t key = ((uint64_t)(uint32_t)l << 32 | (uint32_t)r) + 1;
        size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & h->merge_mask;
        while (h->merges[i].key && h->merges[i].key != key) i = (i + 1) & h->merge_mask;
        h->merges[i] = (hf_merge_slot){ key, rank, id }; /* a repeated pair keeps its last rank, as the references */
        if (t->scores[id] == 0) t->scores[id] = -(float)(rank + 1); /* GGUF "llama": merge order as scores */
        h->merge_list[rank][0] = l;
        h->merge_list[rank][1] = r;
        h->nmerges = ++rank;
    }
    free(buf);
    free(cat);
    return st;
}

static qc_status read_added_matches(loader *L, hf_tok *h) {
    hf_buf b = { 0 };
    for (int i = 0; i < h->nadded; i++) {
        hf_added *a = &h->added[i];
        a->in_normalized = a->normalized && h->nnorms > 0;
        qc_status st = a->in_normalized ? hf_normalize(h, a->content, a->len, &b, L->e) : QC_OK;
        if (st) {
            free(b.p);
            return st;
        }
        a->match = a->in_normalized ? strndup(b.p, b.len) : strdup(a->content);
        a->match_len = a->in_normalized ? b.len : a->len;
        if (!a->match || !a->match_len) {
            free(b.p);
            return qc_fail(L->e, QC_ERR_FORMAT, "%s: added token \"%s\" normalizes to nothing", L->path, a->content);
        }
    }
    free(b.p);
    return QC_OK;
}

static qc_status read_decoded(loader *L, const cJSON *root, qc_tokenizer *t, hf_tok *h) {
    dec_flags f = { 0 };
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    qc_status st = d && !cJSON_IsNull(d) ? read_decoder(L, h, d, &f) : QC_OK;
    if (st) return st;
    unsigned byte_of[0x144];
    byte_map(byte_of);
    hf_buf all = { 0 };
    size_t *off = malloc((size_t)t->vocab_size * sizeof *off);
    h->decoded = calloc((size_t)t->vocab_size, sizeof *h->decoded);
    h->decoded_len = calloc((size_t)t->vocab_size, sizeof *h->decoded_len);
    bool ok = off && h->decoded && h->decoded_len;
    for (int i = 0; ok && i < t->vocab_size; i++) {
        off[i] = all.len;
        int k;
        for (k = 0; k < h->nadded && h->added[k].id != i; k++) {}
        ok = k < h->nadded ? hf_buf_put(&all, h->added[k].content, h->added[k].len)
                           : decode_piece(t->pieces[i], (size_t)t->piece_len[i], &f, byte_of, &all);
        h->decoded_len[i] = (int)(all.len - off[i]);
    }
    if (ok && !all.p) ok = hf_buf_put(&all, "", 0);
    for (int i = 0; ok && i < t->vocab_size; i++) h->decoded[i] = all.p + off[i];
    h->decoded_arena = all.p;
    free(off);
    return ok ? QC_OK : qc_fail(L->e, QC_ERR_NOMEM, "out of memory");
}

static qc_status read_specials(loader *L, const cJSON *root, qc_tokenizer *t) {
    char *dir = qc_path_dirname(L->path);
    char *tc_path = dir ? qc_path_join(dir, "tokenizer_config.json") : NULL, *c_path = dir ? qc_path_join(dir, "config.json") : NULL;
    cJSON *tc = NULL, *cfg = NULL;
    qc_status st = tc_path && c_path ? QC_OK : qc_fail(L->e, QC_ERR_NOMEM, "out of memory");
    if (!st) st = read_json(tc_path, false, &tc, L->e);
    if (!st) st = read_json(c_path, false, &cfg, L->e);
    if (!st) {
        const cJSON *pp = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
        int tmpl = template_first(t, pp);
        t->bos_id = config_token(t, tc, "bos_token");
        if (t->bos_id < 0) t->bos_id = config_id(cfg, "bos_token_id", t->vocab_size);
        if (t->bos_id < 0) t->bos_id = tmpl;
        t->eos_id = config_token(t, tc, "eos_token");
        if (t->eos_id < 0) t->eos_id = config_id(cfg, "eos_token_id", t->vocab_size);
        t->add_bos = flag(tc, "add_bos_token", tmpl >= 0);
        if (t->add_bos && t->bos_id < 0)
            st = qc_fail(L->e, QC_ERR_FORMAT, "%s: add_bos_token is set but no BOS token is named (bos_token in %s)", L->path,
                         tc_path);
    }
    cJSON_Delete(tc);
    cJSON_Delete(cfg);
    free(tc_path);
    free(c_path);
    free(dir);
    return st;
}

void hf_tok_free(hf_tok *h) {
    if (!h) return;
    for (int i = 0; i < h->nnorms; i++) free(h->norms[i].from), free(h->norms[i].to);
    for (int i = 0; i < h->npres; i++) hf_regex_free(h->pres[i].re), free(h->pres[i].replacement);
    for (int i = 0; i < h->nadded; i++) free(h->added[i].content), free(h->added[i].match);
    free(h->norms);
    free(h->pres);
    free(h->added);
    free(h->merges);
    free(h->merge_list);
    free(h->unused);
    free(h->decoded);
    free(h->decoded_len);
    free(h->decoded_arena);
    hf_bpe_cache_free(h->cache);
    free(h);
}

qc_status qc_tokenizer_load_json(qc_tokenizer *t, const char *path, qc_err *e) {
    memset(t, 0, sizeof *t);
    loader L = { path, e };
    cJSON *root;
    qc_status st = read_json(path, true, &root, e);
    if (st) return st;
    hf_tok *h = calloc(1, sizeof *h);
    char **pieces = NULL;
    int *lens = NULL, n = 0;
    if (!h) st = qc_fail(e, QC_ERR_NOMEM, "out of memory");
    if (!st) st = read_vocab(&L, root, h, &pieces, &n);
    if (!st && !(lens = malloc((size_t)n * sizeof *lens))) st = qc_fail(e, QC_ERR_NOMEM, "out of memory");
    for (int i = 0; !st && i < n; i++) lens[i] = (int)strlen(pieces[i]);
    if (!st) st = qc_tokenizer_from_vocab(t, n, (const char *const *)pieces, lens, NULL, 0, 0, path, e);
    for (int i = 0; pieces && i < n; i++) free(pieces[i]);
    free(pieces);
    free(lens);
    if (!st) {
        t->hf = h;
        h->unk_id = -1;
        const char *unk = str(cJSON_GetObjectItemCaseSensitive(root, "model"), "unk_token");
        if (unk && (h->unk_id = qc_tokenizer_lookup(t, unk, strlen(unk))) < 0)
            st = qc_fail(e, QC_ERR_FORMAT, "%s: model.unk_token \"%s\" is not in the vocabulary", path, unk);
        for (int b = 0; b < 256; b++) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            h->byte_ids[b] = qc_tokenizer_lookup(t, name, 6);
        }
    }
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (!st && norm && !cJSON_IsNull(norm)) st = add_norm(&L, h, norm, "normalizer");
    if (!st && pre && !cJSON_IsNull(pre)) st = add_pre(&L, h, pre, "pre_tokenizer");
    if (!st) st = read_merges(&L, root, t, h);
    if (!st) st = read_added_matches(&L, h);
    if (!st) st = read_decoded(&L, root, t, h);
    if (!st) st = read_specials(&L, root, t);
    cJSON_Delete(root);
    if (st) {
        if (!t->hf) hf_tok_free(h);
        qc_tokenizer_free(t);
    }
    return st;
}
