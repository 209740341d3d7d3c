/* dtype.c — element types as safetensors names them, their sizes, and conversion of the
 * float types to and from fp32. Source bytes are little endian at any alignment (tensors
 * inside a safetensors file need not be aligned); conversion goes element by element
 * through base's half-precision functions (round to nearest even). */
#include "io/internal.h"

#include <math.h>
#include <string.h>

static const struct {
    const char *name;
    size_t size;
} dtypes[QC_DT_COUNT] = {
    [QC_DT_F32] = { "F32", 4 }, [QC_DT_F16] = { "F16", 2 }, [QC_DT_BF16] = { "BF16", 2 },
    [QC_DT_F64] = { "F64", 8 }, [QC_DT_I8] = { "I8", 1 },   [QC_DT_U8] = { "U8", 1 },
    [QC_DT_I16] = { "I16", 2 }, [QC_DT_I32] = { "I32", 4 }, [QC_DT_I64] = { "I64", 8 },
    [QC_DT_BOOL] = { "BOOL", 1 },
};

size_t qc_dtype_size(qc_dtype t) { return (unsigned)t < QC_DT_COUNT ? dtypes[t].size : 0; }

const char *qc_dtype_name(qc_dtype t) { return (unsigned)t < QC_DT_COUNT ? dtypes[t].name : "?"; }

bool qc_dtype_parse(const char *name, qc_dtype *t) {
    for (int i = 0; i < QC_DT_COUNT; i++)
        if (strcmp(name, dtypes[i].name) == 0) {
            *t = (qc_dtype)i;
            return true;
        }
    return false;
}

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> 8 * i);
}

void qc_convert_to_f32(qc_dtype t, const void *src, size_t n, float *dst) {
    const uint8_t *p = src;
    switch (t) {
    case QC_DT_F32:
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        memcpy(dst, p, n * sizeof *dst);
#else
        for (size_t i = 0; i < n; i++) dst[i] = qc_lef32(p + 4 * i);
#endif
        break;
    case QC_DT_F16:
        qc_f16_le_to_f32(p, n, dst);
        break;
    case QC_DT_BF16:
        for (size_t i = 0; i < n; i++) dst[i] = qc_bf16_to_f32(le16(p + 2 * i));
        break;
    case QC_DT_F64:
        for (size_t i = 0; i < n; i++) {
            union { uint64_t u; double d; } v = { qc_le64(p + 8 * i) };
            dst[i] = (float)v.d;
        }
        break;
    default: QC_ASSERT(!"qc_convert_to_f32: not a float type");
    }
}

void qc_convert_from_f32(qc_dtype t, const float *src, size_t n, void *dst) {
    uint8_t *p = dst;
    switch (t) {
    case QC_DT_F32:
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        memcpy(p, src, n * sizeof *src);
#else
        for (size_t i = 0; i < n; i++) {
            union { float f; uint32_t u; } v = { src[i] };
            put32(p + 4 * i, v.u);
        }
#endif
        break;
    case QC_DT_F16:
        for (size_t i = 0; i < n; i++) put16(p + 2 * i, qc_f32_to_f16(src[i]));
        break;
    case QC_DT_BF16:
        for (size_t i = 0; i < n; i++) put16(p + 2 * i, qc_f32_to_bf16(src[i]));
        break;
    case QC_DT_F64:
        for (size_t i = 0; i < n; i++) {
            union { double d; uint64_t u; } v = { src[i] };
            put32(p + 8 * i, (uint32_t)v.u);
            put32(p + 8 * i + 4, (uint32_t)(v.u >> 32));
        }
        break;
    default: QC_ASSERT(!"qc_convert_from_f32: not a float type");
    }
}

qc_status qc_check_dtype_range(qc_dtype t, const float *src, size_t n, size_t cols, const char *file,
                               const char *tensor, qc_err *e) {
    if (t != QC_DT_F16 && t != QC_DT_BF16) return QC_OK;
    for (size_t i = 0; i < n; i++) {
        float r = t == QC_DT_F16 ? qc_f16_to_f32(qc_f32_to_f16(src[i])) : qc_bf16_to_f32(qc_f32_to_bf16(src[i]));
        if (!isfinite(r)) {
            char at[64];
            if (cols > 1) snprintf(at, sizeof at, "row %zu, column %zu", i / cols, i % cols);
            else snprintf(at, sizeof at, "element %zu", i);
            return qc_fail(e, QC_ERR_NUMERIC, "%s: %s: %g at %s %s %s (store it as F32)", file, tensor, (double)src[i],
                           at, isfinite(src[i]) ? "is beyond the range of" : "cannot be stored as", qc_dtype_name(t));
        }
    }
    return QC_OK;
}
