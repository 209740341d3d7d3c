/* qfmt_read.c — what the GPTQ and AWQ readers (gptq_format.c, awq_format.c) share: looking up
 * a quantized linear's packed tensors with their dtype and shape checked against what
 * config.json implies, and the row-tiled, parallel decode loop that calls each format's
 * tile decoder.
 *
 * Decoding is asked for a few rows at a time (a block's forward pass) or a whole weight
 * (convert, inspect): rows go in tiles of QC_QFMT_TILE, one tile per loop iteration, in
 * parallel when the weight is large enough to pay for the threads. */
#include "io/qformat.h"

#include <stdlib.h>

#define DECODE_PAR_MIN ((int64_t)1 << 14) /* below this many values a decode runs on one thread */

/* "[a, b]" of a tensor's shape. */
static void shape_str(const qc_safetensors_tensor *t, char *buf, size_t size) {
    size_t n = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < t->ndim && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (n < size) snprintf(buf + n, size - n, "]");
}

qc_status qc_qfmt_find_tensor(qc_hfq_find find, const void *files, const qc_checkpoint *ck, const char *prefix,
                              const char *suffix, bool optional, bool is_float, int64_t r_lo, int64_t r_hi,
                              int64_t c_lo, int64_t c_hi, const char *why, const qc_safetensors_tensor **out, qc_err *e) {
    char name[160];
    snprintf(name, sizeof name, "%s.%s", prefix, suffix);
    const char *where = NULL;
    const qc_safetensors_tensor *t;
    qc_status st = find(files, ck, name, &t, &where, e);
    *out = t;
    if (st) return st;
    if (!t) {
        if (optional) return QC_OK;
        return qc_fail(e, QC_ERR_FORMAT, "%s: missing tensor '%s' (%s)", where, name, why);
    }
    bool dt_ok = is_float ? t->dtype == QC_DT_F16 || t->dtype == QC_DT_BF16 || t->dtype == QC_DT_F32
                          : t->dtype == QC_DT_I32;
    if (!dt_ok)
        return qc_fail(e, QC_ERR_FORMAT, "%s: tensor '%s': dtype %s, %s expected", where, name,
                       qc_dtype_name(t->dtype), is_float ? "F16" : "I32");
    bool ok = c_hi < 0 ? t->ndim == 1 && t->shape[0] >= r_lo && t->shape[0] <= r_hi
                       : t->ndim == 2 && t->shape[0] >= r_lo && t->shape[0] <= r_hi && t->shape[1] >= c_lo &&
                             t->shape[1] <= c_hi;
    if (!ok) {
        char got[96], want[96];
        shape_str(t, got, sizeof got);
        if (c_hi < 0) snprintf(want, sizeof want, "[%lld]", (long long)r_lo);
        else snprintf(want, sizeof want, "[%lld, %lld]", (long long)r_lo, (long long)c_lo);
        return qc_fail(e, QC_ERR_FORMAT, "%s: tensor '%s': shape %s, but config.json implies %s (%s)", where, name,
                       got, want, why);
    }
    return QC_OK;
}

qc_status qc_qfmt_decode(const qc_checkpoint *ck, const void *aux, const char *qtype, qc_qfmt_tile tile,
                         size_t scratch_floats, int64_t row0, int nrows, int cols, float *out, qc_err *e) {
    int ntiles = (nrows + QC_QFMT_TILE - 1) / QC_QFMT_TILE, failed = 0;
#pragma omp parallel if ((int64_t)nrows * cols > DECODE_PAR_MIN)
    {
        float *scratch = scratch_floats ? malloc(scratch_floats * sizeof(float)) : NULL;
        if (scratch_floats && !scratch) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int t = 0; t < ntiles; t++) {
            if (scratch_floats && !scratch) continue;
            int r1 = t * QC_QFMT_TILE, n = nrows - r1 < QC_QFMT_TILE ? nrows - r1 : QC_QFMT_TILE;
            tile(aux, row0 + r1, n, scratch, out + (size_t)r1 * cols);
        }
        free(scratch);
    }
    if (failed) return qc_fail(e, QC_ERR_NOMEM, "%s: out of memory decoding a %s weight", ck->path, qtype);
    return QC_OK;
}
