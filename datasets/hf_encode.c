/* hf_encode.c — the tokenizer.json pipeline for one text:
 *   1. the text must be valid UTF-8 (the reference tokenizers take Unicode strings);
 *   2. it is cut at the added tokens matched on raw text (leftmost, then longest), which
 *      become their ids; an added token with lstrip/rstrip trims white space beside it;
 *   3. every other section ("section index" = its place in that list) is normalized
 *      (Prepend, Replace, NFC/NFD/NFKC/NFKD by utf8proc, Strip), cut again at the added tokens
 *      matched on normalized text, and pre-tokenized into words (Split by regex, ByteLevel,
 *      Metaspace, in the file's sequence);
 *   4. each word goes through the BPE model (hf_bpe.c);
 *   5. BOS / EOS when asked.
 * This is the order of tokenizers' AddedVocabulary + Tokenizer::encode and of the JS port's
 * encode_text. White space for lstrip/rstrip/Strip is JavaScript's trim set (hf_regex.c). */
#include "datasets/hf_internal.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

bool hf_buf_put(hf_buf *b, const void *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return false;
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return true;
}

bool hf_words_add(hf_words *w, const char *s, size_t n) {
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        size_t *off = realloc(w->off, cap * sizeof *off);
        if (off) w->off = off;
        size_t *len = off ? realloc(w->len, cap * sizeof *len) : NULL;
        if (len) w->len = len;
        if (!off || !len) return false;
        w->cap = cap;
    }
    w->off[w->n] = w->text.len;
    w->len[w->n] = n;
    if (!hf_buf_put(&w->text, s, n)) return false;
    w->n++;
    return true;
}

void hf_words_free(hf_words *w) {
    free(w->text.p);
    free(w->off);
    free(w->len);
    memset(w, 0, sizeof *w);
}

size_t hf_utf8_invalid_at(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        size_t k = c < 0x80 ? 1 : (c >= 0xC2 && c < 0xE0) ? 2 : (c >= 0xE0 && c < 0xF0) ? 3 : (c >= 0xF0 && c < 0xF5) ? 4 : 0;
        if (!k || i + k > n) return i;
        for (size_t j = 1; j < k; j++)
            if ((u[i + j] & 0xC0) != 0x80) return i;
        if ((c == 0xE0 && u[i + 1] < 0xA0) || (c == 0xED && u[i + 1] >= 0xA0) || (c == 0xF0 && u[i + 1] < 0x90) ||
            (c == 0xF4 && u[i + 1] >= 0x90))
            return i; /* overlong, surrogate, beyond U+10FFFF */
        i += k;
    }
    return n;
}

/* ---- normalizers ------------------------------------------------------------------------------ */

static size_t trim_start(const char *s, size_t n) {
    size_t i = 0, k;
    while (i < n && hf_is_js_space(s + i, n - i, &k)) i += k;
    return i;
}

/* Length of s without its trailing white space. */
static size_t trim_end(const char *s, size_t n) {
    size_t keep = 0, k;
    for (size_t i = 0; i < n; i += k)
        if (!hf_is_js_space(s + i, n - i, &k)) keep = i + k;
    return keep;
}

static bool replace_all(const char *s, size_t n, const char *from, const char *to, hf_buf *out) {
    size_t fl = strlen(from), tl = strlen(to), i = 0;
    out->len = 0;
    if (!hf_buf_put(out, "", 0)) return false;
    while (i < n) {
        const char *hit = fl ? memmem(s + i, n - i, from, fl) : NULL;
        size_t stop = hit ? (size_t)(hit - s) : n;
        if (!hf_buf_put(out, s + i, stop - i)) return false;
        if (!hit) break;
        if (!hf_buf_put(out, to, tl)) return false;
        i = stop + fl;
    }
    return true;
}

qc_status hf_normalize(const hf_tok *h, const char *s, size_t n, hf_buf *out, qc_err *e) {
    hf_buf tmp = { 0 };
    out->len = 0;
    bool ok = hf_buf_put(out, s, n);
    for (int k = 0; ok && k < h->nnorms; k++) {
        const hf_norm *nm = &h->norms[k];
        switch (nm->kind) {
        case NORM_PREPEND:
            tmp.len = 0;
            ok = out->len == 0 || (hf_buf_put(&tmp, nm->to, strlen(nm->to)) && hf_buf_put(&tmp, out->p, out->len));
            if (ok && out->len) {
                hf_buf t = *out;
                *out = tmp, tmp = t;
            }
            break;
        case NORM_REPLACE:
            ok = replace_all(out->p, out->len, nm->from, nm->to, &tmp);
            if (ok) {
                hf_buf t = *out;
                *out = tmp, tmp = t;
            }
            break;
        case NORM_STRIP: {
            size_t a = nm->left ? trim_start(out->p, out->len) : 0;
            size_t b = nm->right ? trim_end(out->p, out->len) : out->len;
            if (b < a) b = a;
            memmove(out->p, out->p + a, b - a);
            out->len = b - a;
            out->p[out->len] = '\0';
            break;
        }
        default: {
            if (out->len == 0) break;
            int opt = UTF8PROC_STABLE | (nm->kind == NORM_NFC || nm->kind == NORM_NFKC ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE) |
                      (nm->kind == NORM_NFKC || nm->kind == NORM_NFKD ? UTF8PROC_COMPAT : 0);
            utf8proc_uint8_t *res = NULL;
            utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)out->p, (utf8proc_ssize_t)out->len, &res, opt);
            if (r < 0) {
                free(tmp.p);
                return qc_fail(e, QC_ERR_FORMAT, "Unicode normalization failed: %s", utf8proc_errmsg(r));
            }
            out->len = 0;
            ok = hf_buf_put(out, res, (size_t)r);
            free(res);
        }
        }
    }
    free(tmp.p);
    return ok ? QC_OK : qc_fail(e, QC_ERR_NOMEM, "normalizer: out of memory");
}

/* ---- pre-tokenizers --------------------------------------------------------------------------- */

static void byte_char(unsigned b, char buf[3], size_t *len) {
    /* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68
     * bytes are U+0100.. in byte order */
    unsigned cp = b;
    if (!((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE)) {
        unsigned k = 0;
        for (unsigned x = 0; x < b; x++) k += !((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE);
        cp = 0x100 + k;
    }
    if (cp < 0x80) {
        buf[0] = (char)cp;
        *len = 1;
    } else {
        buf[0] = (char)(0xC0 | cp >> 6);
        buf[1] = (char)(0x80 | (cp & 0x3F));
        *len = 2;
    }
}

static qc_status pre_one(const hf_pre *p, const char *s, size_t n, int section, hf_words *out, qc_err *e) {
    bool ok = true;
    switch (p->kind) {
    case PRE_SPLIT:
        return hf_regex_split(p->re, s, n, !p->removed, !p->invert, out, e);
    case PRE_BYTELEVEL: {
        hf_buf src = { 0 };
        ok = (p->add_prefix_space && (n == 0 || s[0] != ' ') ? hf_buf_put(&src, " ", 1) : true) && hf_buf_put(&src, s, n);
        hf_words parts = { 0 };
        qc_status st = !ok ? qc_fail(e, QC_ERR_NOMEM, "out of memory")
                       : p->re ? hf_regex_split(p->re, src.p, src.len, true, false, &parts, e)
                               : (hf_words_add(&parts, src.p, src.len) ? QC_OK : qc_fail(e, QC_ERR_NOMEM, "out of memory"));
        hf_buf w = { 0 };
        for (size_t i = 0; !st && ok && i < parts.n; i++) {
            w.len = 0;
            for (size_t j = 0; ok && j < parts.len[i]; j++) {
                char buf[3];
                size_t bl = 0;
                byte_char((unsigned char)parts.text.p[parts.off[i] + j], buf, &bl);
                ok = hf_buf_put(&w, buf, bl);
            }
            ok = ok && hf_words_add(out, w.p ? w.p : "", w.len);
        }
        free(w.p);
        free(src.p);
        hf_words_free(&parts);
        return st ? st : ok ? QC_OK : qc_fail(e, QC_ERR_NOMEM, "out of memory");
    }
    case PRE_METASPACE: {
        hf_buf b = { 0 };
        size_t rl = strlen(p->replacement);
        if (!replace_all(s, n, " ", p->replacement, &b)) return qc_fail(e, QC_ERR_NOMEM, "out of memory");
        if ((p->prepend == 2 || (p->prepend == 1 && section == 0)) && !(b.len >= rl && memcmp(b.p, p->replacement, rl) == 0)) {
            hf_buf c = { 0 };
            ok = hf_buf_put(&c, p->replacement, rl) && hf_buf_put(&c, b.p, b.len);
            free(b.p);
            b = c;
        }
        size_t start = 0;
        for (size_t i = 1; ok && p->split && i + rl <= b.len; i++) /* each word begins at a replacement */
            if (memcmp(b.p + i, p->replacement, rl) == 0) {
                ok = hf_words_add(out, b.p + start, i - start);
                start = i;
            }
        if (ok && b.len > start) ok = hf_words_add(out, b.p + start, b.len - start);
        free(b.p);
        return ok ? QC_OK : qc_fail(e, QC_ERR_NOMEM, "out of memory");
    }
    }
    return QC_OK;
}

/* Pre-tokenizes s and runs each word through the model. */
static qc_status model_section(const qc_tokenizer *t, const char *s, size_t n, int section, int32_t **ids, size_t *count,
                               size_t *cap, qc_err *e) {
    const hf_tok *h = t->hf;
    hf_words cur = { 0 }, next = { 0 };
    qc_status st = hf_words_add(&cur, s, n) ? QC_OK : qc_fail(e, QC_ERR_NOMEM, "out of memory");
    for (int k = 0; !st && k < h->npres; k++) {
        for (size_t i = 0; !st && i < cur.n; i++) st = pre_one(&h->pres[k], cur.text.p + cur.off[i], cur.len[i], section, &next, e);
        hf_words_free(&cur);
        cur = next;
        memset(&next, 0, sizeof next);
    }
    for (size_t i = 0; !st && i < cur.n; i++) st = hf_bpe_word(t, cur.text.p + cur.off[i], cur.len[i], ids, count, cap, e);
    hf_words_free(&cur);
    return st;
}

/* ---- added tokens ----------------------------------------------------------------------------- */

/* The added token (matched in normalized text or not) at s[0..n), longest first, or -1. */
static int added_at(const hf_tok *h, const char *s, size_t n, bool normalized) {
    int best = -1;
    for (int k = 0; k < h->nadded; k++) {
        const hf_added *a = &h->added[k];
        if (a->in_normalized == normalized && a->match_len <= n && (best < 0 || a->match_len > h->added[best].match_len) &&
            memcmp(s, a->match, a->match_len) == 0)
            best = k;
    }
    return best;
}

typedef struct seg {
    size_t off, len;
    int added; /* index into h->added, or -1 */
} seg;

/* Cuts s at the added tokens of one kind and applies their lstrip/rstrip. *segs is allocated. */
static qc_status cut(const hf_tok *h, const char *s, size_t n, bool normalized, seg **segs, size_t *nsegs, qc_err *e) {
    bool first[256] = { false };
    for (int k = 0; k < h->nadded; k++)
        if (h->added[k].in_normalized == normalized) first[(unsigned char)h->added[k].match[0]] = true;
    size_t cap = 16, m = 0, start = 0;
    seg *v = malloc(cap * sizeof *v);
    bool ok = v != NULL;
    for (size_t i = 0; ok && i < n;) {
        int k = first[(unsigned char)s[i]] ? added_at(h, s + i, n - i, normalized) : -1;
        if (k < 0) {
            i++;
            continue;
        }
        if (m + 2 > cap) {
            seg *p = realloc(v, (cap *= 2) * sizeof *v);
            if (!p) {
                ok = false;
                break;
            }
            v = p;
        }
        if (i > start) v[m++] = (seg){ start, i - start, -1 };
        v[m++] = (seg){ i, h->added[k].match_len, k };
        i += h->added[k].match_len;
        start = i;
    }
    if (ok && start < n) {
        seg *p = realloc(v, (m + 1) * sizeof *v);
        if (p) v = p, v[m++] = (seg){ start, n - start, -1 };
        else ok = false;
    }
    if (!ok) {
        free(v);
        return qc_fail(e, QC_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < m; i++) {
        if (v[i].added < 0) continue;
        const hf_added *a = &h->added[v[i].added];
        if (a->lstrip && i > 0 && v[i - 1].added < 0) v[i - 1].len = trim_end(s + v[i - 1].off, v[i - 1].len);
        if (a->rstrip && i + 1 < m && v[i + 1].added < 0) {
            size_t k = trim_start(s + v[i + 1].off, v[i + 1].len);
            v[i + 1].off += k;
            v[i + 1].len -= k;
        }
    }
    *segs = v;
    *nsegs = m;
    return QC_OK;
}

qc_status hf_encode(const qc_tokenizer *t, const char *text, size_t len, bool bos, bool eos, int32_t **ids,
                    size_t *n, qc_err *e) {
    const hf_tok *h = t->hf;
    *ids = NULL;
    *n = 0;
    if ((bos && t->bos_id < 0) || (eos && t->eos_id < 0))
        return qc_fail(e, QC_ERR_ARG, "%s: the tokenizer has no %s token (tokenizer_config.json %s_token)", t->path,
                       bos && t->bos_id < 0 ? "BOS" : "EOS", bos && t->bos_id < 0 ? "bos" : "eos");
    size_t bad = hf_utf8_invalid_at(text, len);
    if (bad < len)
        return qc_fail(e, QC_ERR_FORMAT, "the text is not valid UTF-8 at byte offset %zu (byte 0x%02X); "
                       "tokenizer.json tokenizers take Unicode text", bad, (unsigned char)text[bad]);
    int32_t *out = NULL;
    size_t count = 0, cap = 0;
    seg *top = NULL, *sub = NULL;
    size_t ntop = 0, nsub = 0;
    hf_buf norm = { 0 };
    qc_status st = bos && !hf_push_id(&out, &count, &cap, t->bos_id) ? qc_fail(e, QC_ERR_NOMEM, "out of memory") : QC_OK;
    if (!st) st = cut(h, text, len, false, &top, &ntop, e);
    for (size_t i = 0; !st && i < ntop; i++) {
        if (top[i].added >= 0) {
            if (!hf_push_id(&out, &count, &cap, h->added[top[i].added].id)) st = qc_fail(e, QC_ERR_NOMEM, "out of memory");
            continue;
        }
        if (top[i].len == 0) continue;
        if ((st = hf_normalize(h, text + top[i].off, top[i].len, &norm, e))) break;
        if (norm.len == 0) continue;
        if ((st = cut(h, norm.p, norm.len, true, &sub, &nsub, e))) break;
        for (size_t j = 0; !st && j < nsub; j++) {
            if (sub[j].added >= 0) {
                if (!hf_push_id(&out, &count, &cap, h->added[sub[j].added].id)) st = qc_fail(e, QC_ERR_NOMEM, "out of memory");
            } else if (sub[j].len) {
                st = model_section(t, norm.p + sub[j].off, sub[j].len, (int)i, &out, &count, &cap, e);
            }
        }
        free(sub);
        sub = NULL;
    }
    if (!st && eos && !hf_push_id(&out, &count, &cap, t->eos_id)) st = qc_fail(e, QC_ERR_NOMEM, "out of memory");
    free(top);
    free(norm.p);
    if (st) {
        free(out);
        return qc_fail_prefix(e, st, "%s", t->path);
    }
    if (!out) out = malloc(sizeof *out); /* an empty text: a valid, empty array */
    if (!out) return qc_fail(e, QC_ERR_NOMEM, "out of memory");
    *ids = out;
    *n = count;
    return QC_OK;
}
