/* err.c — status codes, the messages that travel with them, and internal assertions. */
#include "base/base.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

qc_status qc_fail(qc_err *e, qc_status code, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

qc_status qc_fail_prefix(qc_err *e, qc_status code, const char *fmt, ...) {
    if (e) {
        char old[sizeof e->msg];
        memcpy(old, e->msg, sizeof old);
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        size_t used = n < 0 ? 0 : (size_t)n < sizeof e->msg ? (size_t)n : sizeof e->msg - 1;
        /* append ": old", truncating what does not fit */
        size_t room = sizeof e->msg - used;
        if (room > 2) {
            memcpy(e->msg + used, ": ", 2);
            size_t k = strnlen(old, sizeof old);
            if (k > room - 3) k = room - 3;
            memcpy(e->msg + used + 2, old, k);
            e->msg[used + 2 + k] = '\0';
        }
    }
    return code;
}

/* Length of the printable UTF-8 sequence at s (n bytes left), or 0 when its first byte is
 * to be escaped. */
static size_t printable_len(const unsigned char *s, size_t n) {
    if (s[0] >= 0x20 && s[0] < 0x7F) return 1;
    size_t len = s[0] >= 0xC2 && s[0] <= 0xDF ? 2 : s[0] >= 0xE0 && s[0] <= 0xEF ? 3 : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : 0;
    if (!len || len > n) return 0;
    uint32_t cp = s[0] & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    static const uint32_t lowest[5] = { 0, 0, 0x80, 0x800, 0x10000 };
    if (cp < lowest[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0; /* overlong, beyond, surrogate */
    if (cp < 0xA0 || cp == 0x200E || cp == 0x200F || (cp >= 0x2028 && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069))
        return 0;
    return len;
}

qc_status qc_err_escape(qc_err *e, qc_status code) {
    if (!e) return code;
    char old[sizeof e->msg];
    size_t n = strnlen(e->msg, sizeof e->msg - 1), at = 0;
    memcpy(old, e->msg, n);
    for (size_t i = 0; i < n;) {
        size_t k = printable_len((const unsigned char *)old + i, n - i);
        if (k ? at + k >= sizeof e->msg : at + 4 >= sizeof e->msg) break;
        if (k) memcpy(e->msg + at, old + i, k), at += k, i += k;
        else at += (size_t)snprintf(e->msg + at, 5, "\\x%02X", (unsigned char)old[i++]);
    }
    e->msg[at] = '\0';
    return code;
}

const char *qc_status_name(qc_status code) {
    switch (code) {
    case QC_OK: return "ok";
    case QC_ERR_IO: return "I/O error";
    case QC_ERR_FORMAT: return "malformed input";
    case QC_ERR_ARG: return "invalid argument";
    case QC_ERR_NOMEM: return "out of memory";
    case QC_ERR_NUMERIC: return "numerical failure";
    case QC_ERR_UNSUPPORTED: return "unsupported";
    }
    return "unknown error";
}

void qc_assert_fail(const char *what, const char *file, int line) {
    fprintf(stderr, "qcalib: internal error: assertion '%s' failed at %s:%d\n", what, file, line);
    abort();
}
