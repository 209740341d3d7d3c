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
