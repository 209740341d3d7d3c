/* qpack.c — what the GPTQ and AWQ safetensors formats share: packing integer codes into
 * 32-bit little-endian words, the HF row order of Q/K, and the checks every quantized linear
 * must pass before it is written.
 *
 * Packing (qc_qpack_get/put): a packed tensor is viewed as a stream of bits per column (GPTQ
 * qweight, packed along the input dimension: consecutive words are one row of the tensor
 * apart) or per row (GPTQ qzeros, packed along the output dimension: consecutive words are
 * adjacent). Code k sits at stream bits [k·bits, (k+1)·bits), lowest bits first, word w
 * holding stream bits [32w, 32w+32). For 2, 4 and 8 bits that is "32/bits codes per word,
 * code j of the word at bit bits·j"; for 3 bits it reproduces AutoGPTQ's pattern (32 codes in
 * 3 words; code 10 is word 0 bits 30-31 plus word 1 bit 0, code 21 is word 1 bit 31 plus
 * word 2 bits 0-1), which the tests check against that piecewise description. */
#include "io/qformat.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const int qc_awq_order[8] = { 0, 2, 4, 6, 1, 3, 5, 7 };
const int qc_awq_nibble[8] = { 0, 4, 1, 5, 2, 6, 3, 7 };

static void store_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> 8 * i);
}

uint32_t qc_qpack_get(const uint8_t *base, size_t stride, int bits, int64_t k) {
    uint64_t bit = (uint64_t)k * (uint64_t)bits;
    size_t w = (size_t)(bit >> 5);
    unsigned sh = (unsigned)(bit & 31);
    uint64_t v = qc_le32(base + w * stride) >> sh;
    if (sh + (unsigned)bits > 32) v |= (uint64_t)qc_le32(base + (w + 1) * stride) << (32 - sh);
    return (uint32_t)v & ((1u << bits) - 1);
}

void qc_qpack_put(uint8_t *base, size_t stride, int bits, int64_t k, uint32_t v) {
    QC_ASSERT(v < (1u << bits));
    uint64_t bit = (uint64_t)k * (uint64_t)bits;
    size_t w = (size_t)(bit >> 5);
    unsigned sh = (unsigned)(bit & 31);
    uint8_t *p = base + w * stride;
    store_le32(p, qc_le32(p) | (uint32_t)((uint64_t)v << sh));
    if (sh + (unsigned)bits > 32) {
        p += stride;
        store_le32(p, qc_le32(p) | (uint32_t)(v >> (32 - sh)));
    }
}

int64_t qc_qpack_words(int64_t n, int bits) {
    int64_t block = bits == 3 ? 32 : 32 / bits; /* codes per whole block of words */
    return (n + block - 1) / block * block * bits / 32;
}

int64_t qc_qpack_min_words(int64_t n, int bits) { return (n * bits + 31) / 32; }

int qc_qfmt_src_row(int hf_row, int heads, int head_dim) {
    if (heads <= 0) return hf_row;
    int half = head_dim / 2, h = hf_row / head_dim, k = hf_row % head_dim;
    return h * head_dim + 2 * (k % half) + k / half; /* HF j*half + i <- interleaved 2i + j */
}

bool qc_qfmt_scales_fp16(const qc_qweight *q, int *row, int *group) {
    for (int r = 0; r < q->rows; r++)
        for (int g = 0; g < q->ngroups; g++) {
            float s = q->scales[(size_t)r * q->ngroups + g];
            if (!isfinite(s) || qc_f16_to_f32(qc_f32_to_f16(s)) != s) {
                *row = r, *group = g;
                return false;
            }
        }
    return true;
}

bool qc_qfmt_gidx_trivial(const qc_qweight *q) {
    for (int c = 0; c < q->cols; c++)
        if (q->g_idx[c] != (q->groupsize > 0 ? c / q->groupsize : 0)) return false;
    return true;
}

qc_status qc_qfmt_check_qweight(const qc_qweight *q, const char *name, int rows, int cols, float zmin,
                                float zmax, const char *how, qc_err *e) {
    if (q->rows != rows || q->cols != cols)
        return qc_fail(e, QC_ERR_ARG, "%s: quantized weight is (%d, %d); the config implies (%d, %d)", name,
                       q->rows, q->cols, rows, cols);
    if (q->bits < 2 || q->bits > 8) return qc_fail(e, QC_ERR_ARG, "%s: %d bits", name, q->bits);
    if (q->mins)
        return qc_fail(e, QC_ERR_UNSUPPORTED,
                       "%s: groups with a min (value = scale·q + min) cannot be stored in %s, which stores "
                       "integer zero points", name, how);
    int want = q->groupsize > 0 ? (cols + q->groupsize - 1) / q->groupsize : 1;
    if (q->ngroups != want)
        return qc_fail(e, QC_ERR_ARG, "%s: %d groups; group size %d over %d columns gives %d", name, q->ngroups,
                       q->groupsize, cols, want);
    for (int c = 0; c < cols; c++)
        if (q->g_idx[c] < 0 || q->g_idx[c] >= q->ngroups)
            return qc_fail(e, QC_ERR_ARG, "%s: g_idx[%d] = %d is outside [0, %d)", name, c, (int)q->g_idx[c],
                           q->ngroups);
    unsigned maxq = (1u << q->bits) - 1;
    size_t n = (size_t)rows * cols;
    for (size_t i = 0; i < n; i++)
        if (q->codes[i] > maxq)
            return qc_fail(e, QC_ERR_ARG, "%s: code %u at row %zu, column %zu exceeds %u (%d bits)", name,
                           (unsigned)q->codes[i], i / (size_t)cols, i % (size_t)cols, maxq, q->bits);
    int r, g;
    if (!qc_qfmt_scales_fp16(q, &r, &g))
        return qc_fail(e, QC_ERR_UNSUPPORTED,
                       "%s: scale %.9g (row %d, group %d) is not exactly an fp16 value; %s stores fp16 scales, "
                       "so the solver must round its scales to fp16 (and quantize with them) for the file to "
                       "hold the weights it compensated for",
                       name, (double)q->scales[(size_t)r * q->ngroups + g], r, g, how);
    for (size_t i = 0; i < (size_t)rows * q->ngroups; i++) {
        float z = q->zeros[i];
        if (!(z >= zmin && z <= zmax) || z != floorf(z))
            return qc_fail(e, QC_ERR_UNSUPPORTED,
                           "%s: zero point %g (row %zu, group %zu) cannot be stored in %s (integers %g..%g)", name,
                           (double)z, i / (size_t)q->ngroups, i % (size_t)q->ngroups, how, (double)zmin,
                           (double)zmax);
    }
    return QC_OK;
}
