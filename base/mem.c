/* mem.c — allocation with overflow-checked sizes and messages that say what was wanted. */
#include "base/base.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

bool qc_mul_size(size_t a, size_t b, size_t *out) { return !__builtin_mul_overflow(a, b, out); }
bool qc_add_size(size_t a, size_t b, size_t *out) { return !__builtin_add_overflow(a, b, out); }

static void *alloc(size_t count, size_t size, bool zero, qc_err *e, const char *what) {
    size_t n;
    if (!qc_mul_size(count, size, &n) || n > QC_MAX_ALLOC) {
        qc_fail(e, QC_ERR_NOMEM, "%s: size %zu x %zu is beyond limits", what, count, size);
        return NULL;
    }
    if (n == 0) n = 1;
    void *p = zero ? calloc(1, n) : malloc(n);
    if (!p) qc_fail(e, QC_ERR_NOMEM, "%s: out of memory allocating %zu bytes", what, n);
    return p;
}

void *qc_calloc(size_t count, size_t size, qc_err *e, const char *what) {
    return alloc(count, size, true, e, what);
}

void *qc_malloc(size_t count, size_t size, qc_err *e, const char *what) {
    return alloc(count, size, false, e, what);
}

char *qc_strdup(const char *s, qc_err *e) {
    char *d = strdup(s);
    if (!d) qc_fail(e, QC_ERR_NOMEM, "out of memory");
    return d;
}

char *qc_strdupf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    return s;
}
