/* jsonbuf.c — JSON files in (whole-file parse with a size limit) and out: a growable string
 * buffer and the JSON pieces the writers need, escaped string literals and floats printed as the shortest decimal that reads back as the same
 * float (so config.json says 1e-05, not 9.99999974737875e-06), and a buffer written as a file
 * of an output folder. */
#include "io/internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static bool reserve(qc_sb *b, size_t extra) {
    if (b->failed) return false;
    size_t need;
    if (!qc_add_size(b->len, extra, &need) || !qc_add_size(need, 1, &need)) {
        b->failed = true;
        return false;
    }
    if (need <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->failed = true;
        return false;
    }
    b->s = s;
    b->cap = cap;
    return true;
}

void qc_sb_append(qc_sb *b, const char *s, size_t n) {
    if (!reserve(b, n)) return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void qc_sb_printf(qc_sb *b, const char *fmt, ...) {
    if (b->failed) return;
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if ((size_t)n < sizeof small) {
        qc_sb_append(b, small, (size_t)n);
        return;
    }
    if (!reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void qc_sb_json_string(qc_sb *b, const char *s) {
    qc_sb_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char esc[2] = { '\\', (char)*p };
            qc_sb_append(b, esc, 2);
        } else if (*p < 0x20) {
            qc_sb_printf(b, "\\u%04x", *p);
        } else {
            qc_sb_append(b, (const char *)p, 1);
        }
    }
    qc_sb_append(b, "\"", 1);
}

void qc_sb_json_float(qc_sb *b, float f) {
    char buf[48];
    if (fabsf(f) < 1e15f && f == (float)(int64_t)f) { /* integral: 10000.0, as Python writes it */
        snprintf(buf, sizeof buf, "%.1f", (double)f);
    } else {
        for (int prec = 1; prec <= 9; prec++) {
            snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
            if (strtof(buf, NULL) == f) break;
        }
    }
    qc_sb_append(b, buf, strlen(buf));
}

void qc_sb_free(qc_sb *b) {
    if (!b) return;
    free(b->s);
    memset(b, 0, sizeof *b);
}

qc_status qc_sb_write_file(const qc_outdir *d, const char *name, const qc_sb *b, qc_err *e) {
    if (b->failed) return qc_fail(e, QC_ERR_NOMEM, "%s: out of memory", name);
    return qc_outdir_put(d, name, b->s, b->len, e);
}

qc_status qc_json_load(const char *path, size_t max_bytes, cJSON **root, uint64_t *hash, qc_err *e) {
    *root = NULL;
    char *text;
    size_t len;
    qc_status st = qc_read_file(path, max_bytes, &text, &len, e);
    if (st) return st;
    if (hash) *hash = qc_hash64(QC_HASH64_SEED, text, len);
    /* len + 1 takes in the NUL qc_read_file appends, which is what makes cJSON refuse
     * anything but whitespace after the value. */
    const char *end = NULL;
    *root = cJSON_ParseWithLengthOpts(text, len + 1, &end, true);
    if (!*root) {
        size_t at = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        st = qc_fail(e, QC_ERR_FORMAT, "%s: not valid JSON (at byte %zu)", path, at);
    }
    free(text);
    return st;
}

const char *qc_json_type(const cJSON *v) {
    return cJSON_IsString(v) ? "a string" : cJSON_IsBool(v) ? "a boolean" : cJSON_IsNumber(v) ? "a number"
           : cJSON_IsArray(v) ? "an array" : cJSON_IsObject(v) ? "an object" : "null";
}
