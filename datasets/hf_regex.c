/* hf_regex.c — the split regexes of tokenizer.json pre-tokenizers, run by PCRE2 (UTF mode,
 * Unicode properties for \p{L}, \p{N}, ...), and JavaScript's white space.
 *
 * tokenizer.json stores Oniguruma patterns such as Qwen2's
 *     (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * PCRE2 reads them as they are, but for two constructs whose meaning depends on the engine;
 * both are rewritten to the reading of the reference the tests compare with (the JavaScript
 * tokenizers, whose own rewrite does the same):
 *   - \s, \S: JavaScript's white space (tab, LF, VT, FF, CR, space, U+00A0, U+1680,
 *     U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000, U+FEFF), written out as a class;
 *     PCRE2's Unicode \s would leave out U+FEFF;
 *   - (?i:...): ASCII letters only fold ('S' but not 'ſ' U+017F, which PCRE2's Unicode
 *     caseless matching would also take), written as [sS].
 * Anything else is passed to PCRE2 unchanged.
 *
 * Bounded work. A tokenizer.json is input, and a regex built to backtrack (such as
 * [^Z]{0,200}[^Z]{0,200}[^Z]{0,200}Z|.: 201^3 steps per position) would otherwise take hours
 * over a calibration text, with no error. Each match runs under PCRE2's match limit, first
 * FIRST_LIMIT steps: the split regexes of GPT-2, Llama 3 and GPT-4o (o200k) need at most 33
 * per match over the shared TinyStories, WikiText-2 and C4 texts (measured with and without
 * JIT), so real files never reach it. A real regex can need more only in proportion to the
 * word it matches (Llama 3's \s*[\r\n]+ walks back over a run of spaces: a run of r spaces
 * costs about r steps); so a match that hits the limit is run again with the limit doubled,
 * and the steps of such failed attempts, summed over one split, may come to STEPS_PER_BYTE
 * per byte of its text (a run of r spaces is charged less than 2r + 2 * FIRST_LIMIT). Past
 * that the split fails, naming the file's field and the pattern. So a split costs at most
 * about FIRST_LIMIT steps per start position tried plus STEPS_PER_BYTE per byte, and a retried
 * match gives the result an unlimited one would. The depth limit (DEPTH_LIMIT; the regexes
 * above need at most 4) bounds the interpreter's backtracking memory where JIT is unavailable;
 * JIT's own stack limit (32 KiB by default) is reported the same way. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "datasets/hf_internal.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#define JS_SPACE "\\t\\n\\x{0B}\\f\\r \\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}\\x{FEFF}"
#define MAX_GROUP_DEPTH 64
#define FIRST_LIMIT 1000u
#define STEPS_PER_BYTE 16u
#define DEPTH_LIMIT 1000u

/* A compiled split regex, with what messages name. */
typedef struct hf_regex {
    pcre2_code *code;
    char *pattern; /* as the file gives it */
    char *where;   /* the file and the field */
} hf_regex;

bool hf_is_js_space(const char *s, size_t n, size_t *len) {
    const unsigned char *u = (const unsigned char *)s;
    *len = hf_utf8_len(u[0]);
    if (*len > n) *len = n;
    if (*len == 1) return u[0] == ' ' || (u[0] >= '\t' && u[0] <= '\r');
    uint32_t cp = *len == 2 ? (uint32_t)(u[0] & 0x1F) << 6 | (u[1] & 0x3F)
                : *len == 3 ? (uint32_t)(u[0] & 0x0F) << 12 | (uint32_t)(u[1] & 0x3F) << 6 | (u[2] & 0x3F)
                            : 0x10000; /* 4-byte code points are never white space */
    return cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

static bool is_ascii_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* The rewritten pattern into out (see the file comment). */
static qc_status rewrite(const char *p, const char *where, hf_buf *out, qc_err *e) {
    bool fold_stack[MAX_GROUP_DEPTH], fold = false, in_class = false;
    int depth = 0;
    bool ok = true;
    for (size_t i = 0; p[i] && ok;) {
        char c = p[i];
        if (c == '\\') {
            char nx = p[i + 1];
            if (!nx) return qc_fail(e, QC_ERR_FORMAT, "%s: pattern ends with a lone backslash", where);
            if (nx == 's') {
                ok = in_class ? hf_buf_put(out, JS_SPACE, strlen(JS_SPACE))
                              : hf_buf_put(out, "[", 1) && hf_buf_put(out, JS_SPACE, strlen(JS_SPACE)) && hf_buf_put(out, "]", 1);
                i += 2;
                continue;
            }
            if (nx == 'S') {
                if (in_class) return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: \\S inside a character class is not supported", where);
                ok = hf_buf_put(out, "[^", 2) && hf_buf_put(out, JS_SPACE, strlen(JS_SPACE)) && hf_buf_put(out, "]", 1);
                i += 2;
                continue;
            }
            size_t n = 2;
            if ((nx == 'p' || nx == 'P' || nx == 'x') && p[i + 2] == '{') { /* \p{..}, \x{..} whole */
                const char *close = strchr(p + i, '}');
                if (!close) return qc_fail(e, QC_ERR_FORMAT, "%s: unterminated \\%c{", where, nx);
                n = (size_t)(close - (p + i)) + 1;
            }
            ok = hf_buf_put(out, p + i, n);
            i += n;
            continue;
        }
        if (in_class) {
            if (c == ']') in_class = false;
            if (fold && is_ascii_letter(c)) {
                if (p[i + 1] == '-') return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: a letter range in a case-insensitive class is not supported", where);
                char both[2] = { (char)(c | 0x20), (char)(c & ~0x20) };
                ok = hf_buf_put(out, both, 2);
            } else {
                ok = hf_buf_put(out, &c, 1);
            }
            i++;
            continue;
        }
        if (c == '[') {
            in_class = true;
            size_t n = p[i + 1] == '^' ? 2 : 1;
            if (p[i + n] == ']') n++; /* a leading ']' is a literal */
            ok = hf_buf_put(out, p + i, n);
            i += n;
            continue;
        }
        if (c == '(') {
            if (depth == MAX_GROUP_DEPTH) return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: groups nested deeper than %d", where, MAX_GROUP_DEPTH);
            fold_stack[depth++] = fold;
            if (strncmp(p + i, "(?i:", 4) == 0) {
                fold = true;
                ok = hf_buf_put(out, "(?:", 3);
                i += 4;
                continue;
            }
        } else if (c == ')' && depth > 0) {
            fold = fold_stack[--depth];
        }
        if (fold && is_ascii_letter(c)) {
            char cls[4] = { '[', (char)(c | 0x20), (char)(c & ~0x20), ']' };
            ok = hf_buf_put(out, cls, 4);
        } else {
            ok = hf_buf_put(out, &c, 1);
        }
        i++;
    }
    return ok ? QC_OK : qc_fail(e, QC_ERR_NOMEM, "%s: out of memory", where);
}

void *hf_regex_compile(const char *pattern, const char *where, qc_err *e) {
    hf_buf b = { 0 };
    if (rewrite(pattern, where, &b, e)) {
        free(b.p);
        return NULL;
    }
    int code;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)b.p, b.len, PCRE2_UTF | PCRE2_UCP, &code, &at, NULL);
    free(b.p);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        qc_err_escape(e, qc_fail(e, QC_ERR_FORMAT, "%s: regex /%s/ does not compile: %s (at offset %zu of the rewritten "
                                 "pattern)", where, pattern, (const char *)msg, (size_t)at));
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* where JIT is unavailable the interpreter runs */
    hf_regex *r = calloc(1, sizeof *r);
    if (r) r->pattern = strdup(pattern), r->where = strdup(where);
    if (!r || !r->pattern || !r->where) {
        hf_regex_free(r);
        pcre2_code_free(re);
        qc_fail(e, QC_ERR_NOMEM, "%s: out of memory", where);
        return NULL;
    }
    r->code = re;
    return r;
}

void hf_regex_free(void *re) {
    hf_regex *r = re;
    if (!r) return;
    pcre2_code_free(r->code);
    free(r->pattern);
    free(r->where);
    free(r);
}

/* One match from `start` under the bounds of the file comment: *spent counts the steps of
 * failed attempts, at most budget. */
static int bounded_match(const hf_regex *r, const char *s, size_t n, size_t start, pcre2_match_data *md,
                         pcre2_match_context *mc, uint64_t budget, uint64_t *spent) {
    for (uint32_t limit = FIRST_LIMIT;; limit = limit > UINT32_MAX / 2 ? UINT32_MAX : limit * 2) {
        pcre2_set_match_limit(mc, limit);
        int rc = pcre2_match(r->code, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK, md, mc);
        if (rc != PCRE2_ERROR_MATCHLIMIT) return rc;
        *spent += limit;
        if (*spent + 2 * (uint64_t)limit > budget || limit == UINT32_MAX) return rc;
    }
}

qc_status hf_regex_split(const void *re, const char *s, size_t n, bool keep_matches, bool keep_gaps,
                         hf_words *out, qc_err *e) {
    const hf_regex *r = re;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(r->code, NULL);
    pcre2_match_context *mc = pcre2_match_context_create(NULL);
    if (!md || !mc) {
        pcre2_match_data_free(md);
        pcre2_match_context_free(mc);
        return qc_fail(e, QC_ERR_NOMEM, "regex split: out of memory");
    }
    pcre2_set_depth_limit(mc, DEPTH_LIMIT);
    uint64_t budget = (uint64_t)STEPS_PER_BYTE * n + 2 * (uint64_t)FIRST_LIMIT, spent = 0;
    size_t prev = 0, start = 0;
    bool ok = true;
    qc_status st = QC_OK;
    while (ok && start <= n) {
        int rc = bounded_match(r, s, n, start, md, mc, budget, &spent);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            st = qc_err_escape(e, qc_fail(e, QC_ERR_UNSUPPORTED, "%s: the split regex /%.300s/ %s at byte %zu of a %zu-byte text (%s); "
                         "a regex that backtracks this much is refused (limits: %u steps per match, doubled while "
                         "retries stay within %u steps per byte of text; depth %u)", r->where, r->pattern,
                         rc == PCRE2_ERROR_MATCHLIMIT ? "needs too many backtracking steps" : "fails", start, n,
                         (const char *)msg, FIRST_LIMIT, STEPS_PER_BYTE, DEPTH_LIMIT));
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (keep_gaps && ms > prev) ok = hf_words_add(out, s + prev, ms - prev);
        if (ok && keep_matches && me > ms) ok = hf_words_add(out, s + ms, me - ms);
        prev = me;
        start = me > ms ? me : me < n ? me + hf_utf8_len((unsigned char)s[me]) : n + 1;
    }
    if (!st && ok && keep_gaps && prev < n) ok = hf_words_add(out, s + prev, n - prev);
    pcre2_match_data_free(md);
    pcre2_match_context_free(mc);
    if (!st && !ok) st = qc_fail(e, QC_ERR_NOMEM, "regex split: out of memory");
    return st;
}
