/* npy.c — calibration windows saved by Python pipelines as a NumPy array: an int32 or
 * int64 array of shape (nsamples, seqlen), little endian, C order. The .npy layout:
 *   "\x93NUMPY", u8 major (1..3), u8 minor, header length (u16 for version 1, u32 after),
 *   an ASCII Python dict {'descr': '<i8', 'fortran_order': False, 'shape': (128, 2048), },
 *   then the data, whose size must match the shape exactly. */
#include "datasets/datasets.h"

#include <stdlib.h>
#include <string.h>

/* The text after "'key':" in the header dict, skipping spaces; NULL if absent. */
static const char *dict_value(const char *h, const char *key) {
    char pat[32];
    snprintf(pat, sizeof pat, "'%s':", key);
    const char *p = strstr(h, pat);
    if (!p) return NULL;
    p += strlen(pat);
    while (*p == ' ') p++;
    return p;
}

static qc_status parse_header(const char *h, const char *path, int *itemsize, int64_t shape[2], qc_err *e) {
    const char *d = dict_value(h, "descr"), *f = dict_value(h, "fortran_order"), *s = dict_value(h, "shape");
    if (!d || !f || !s) return qc_fail(e, QC_ERR_FORMAT, "%s: .npy header lacks descr, fortran_order or shape", path);
    if (strncmp(d, "'<i4'", 5) == 0) *itemsize = 4;
    else if (strncmp(d, "'<i8'", 5) == 0) *itemsize = 8;
    else return qc_fail(e, QC_ERR_FORMAT, "%s: dtype %.6s; token windows must be int32 ('<i4') or int64 ('<i8')", path, d);
    if (strncmp(f, "False", 5) != 0) return qc_fail(e, QC_ERR_FORMAT, "%s: Fortran-ordered arrays are not supported", path);
    char *end;
    if (*s++ != '(') return qc_fail(e, QC_ERR_FORMAT, "%s: malformed shape in the .npy header", path);
    for (int i = 0; i < 2; i++) {
        while (*s == ' ') s++;
        long long v = strtoll(s, &end, 10);
        if (end == s || v < 1 || v > INT32_MAX)
            return qc_fail(e, QC_ERR_FORMAT, "%s: shape must be (nsamples, seqlen) with positive sizes", path);
        shape[i] = v;
        s = end;
        while (*s == ' ') s++;
        if (*s == ',') s++;
        while (*s == ' ') s++;
    }
    if (*s != ')') return qc_fail(e, QC_ERR_FORMAT, "%s: token windows must be a 2-D array (nsamples, seqlen)", path);
    return QC_OK;
}

qc_status qc_windows_load_npy(const char *path, qc_windows *w, qc_err *e) {
    memset(w, 0, sizeof *w);
    qc_map m;
    qc_status st = qc_map_open(&m, path, e);
    if (st) return st;
    const uint8_t *p = m.data;
    size_t hl = 0, off = 0;
    if (m.size < 10 || memcmp(p, "\x93NUMPY", 6) != 0) {
        st = qc_fail(e, QC_ERR_FORMAT, "%s: not a NumPy .npy file", path);
    } else if (p[6] == 1) {
        hl = (size_t)p[8] | (size_t)p[9] << 8, off = 10;
    } else if ((p[6] == 2 || p[6] == 3) && m.size >= 12) {
        hl = qc_le32(p + 8), off = 12;
    } else {
        st = qc_fail(e, QC_ERR_FORMAT, "%s: unsupported .npy version %d", path, p[6]);
    }
    if (!st && hl > m.size - off) st = qc_fail(e, QC_ERR_FORMAT, "%s: .npy header runs past the end of the file", path);
    char *h = st ? NULL : strndup((const char *)p + off, hl);
    int itemsize = 0;
    int64_t shape[2] = { 0, 0 };
    if (!st && !h) st = qc_fail(e, QC_ERR_NOMEM, "out of memory");
    if (!st) st = parse_header(h, path, &itemsize, shape, e);
    free(h);
    size_t count = (size_t)shape[0] * (size_t)shape[1], data = off + hl, bytes = 0;
    if (!st && (!qc_mul_size(count, (size_t)itemsize, &bytes) || m.size - data != bytes))
        st = qc_fail(e, QC_ERR_FORMAT, "%s: %zu data bytes, but shape (%lld, %lld) needs %zu", path, m.size - data,
                     (long long)shape[0], (long long)shape[1], count * (size_t)itemsize);
    if (!st && !(w->tokens = qc_malloc(count, sizeof(int32_t), e, path))) st = QC_ERR_NOMEM;
    for (size_t i = 0; !st && i < count; i++) {
        const uint8_t *v = p + data + i * (size_t)itemsize;
        int64_t x = itemsize == 4 ? (int64_t)(int32_t)qc_le32(v) : (int64_t)qc_le64(v);
        if (x < 0 || x > INT32_MAX)
            st = qc_fail(e, QC_ERR_FORMAT, "%s: token id %lld at window %zu, position %zu is not a valid id", path,
                         (long long)x, i / (size_t)shape[1], i % (size_t)shape[1]);
        else w->tokens[i] = (int32_t)x;
    }
    if (!st && !(w->source_hash = qc_malloc(1, sizeof *w->source_hash, e, path))) st = QC_ERR_NOMEM;
    if (!st) w->source_hash[0] = qc_hash64(QC_HASH64_SEED, m.data, m.size), w->nsources = 1;
    qc_map_close(&m);
    if (st) {
        qc_windows_free(w);
        return st;
    }
    w->n = (int)shape[0];
    w->seqlen = (int)shape[1];
    return QC_OK;
}
