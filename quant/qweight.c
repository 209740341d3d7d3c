/* qweight.c — the groupwise-quantized weight every solver produces and every quantized
 * format stores: allocation and dequantization. */
#include "quant/quant.h"

#include <stdlib.h>
#include <string.h>

/* Below this many weights a loop runs on one thread. */
#define PAR_MIN_WORK (1 << 15)

qc_status qc_qweight_init(qc_qweight *q, int rows, int cols, int bits, int groupsize, bool sym, qc_err *e) {
    memset(q, 0, sizeof *q);
    if (rows <= 0 || cols <= 0) return qc_fail(e, QC_ERR_ARG, "weight shape (%d, %d): both must be positive", rows, cols);
    if (bits < 2 || bits > 8) return qc_fail(e, QC_ERR_ARG, "%d bits: 2..8 are supported", bits);
    q->rows = rows, q->cols = cols, q->bits = bits, q->groupsize = groupsize > 0 ? groupsize : 0, q->sym = sym;
    q->ngroups = groupsize > 0 ? (cols + groupsize - 1) / groupsize : 1;
    size_t n = (size_t)rows * cols, ng = (size_t)rows * q->ngroups;
    q->codes = qc_calloc(n, 1, e, "quantized codes");
    q->scales = q->codes ? qc_calloc(ng, sizeof(float), e, "quantization scales") : NULL;
    q->zeros = q->scales ? qc_calloc(ng, sizeof(float), e, "quantization zero points") : NULL;
    q->g_idx = q->zeros ? qc_calloc((size_t)cols, sizeof(int32_t), e, "g_idx") : NULL;
    q->perm = q->g_idx ? qc_calloc((size_t)cols, sizeof(int32_t), e, "column order") : NULL;
    if (!q->perm) {
        qc_qweight_free(q);
        return QC_ERR_NOMEM;
    }
    for (int c = 0; c < cols; c++) {
        q->g_idx[c] = groupsize > 0 ? c / groupsize : 0;
        q->perm[c] = c;
    }
    return QC_OK;
}

void qc_qweight_free(qc_qweight *q) {
    if (!q) return;
    free(q->codes);
    free(q->scales);
    free(q->zeros);
    free(q->mins);
    free(q->g_idx);
    free(q->perm);
    free(q->super);
    memset(q, 0, sizeof *q);
}

void qc_qweight_dequantize(const qc_qweight *q, float *w) {
    int cols = q->cols, ng = q->ngroups;
#pragma omp parallel for schedule(static) if ((int64_t)q->rows * cols > PAR_MIN_WORK)
    for (int i = 0; i < q->rows; i++) {
        const uint8_t *c = q->codes + (size_t)i * cols;
        const float *sc = q->scales + (size_t)i * ng, *zp = q->zeros + (size_t)i * ng;
        const float *mn = q->mins ? q->mins + (size_t)i * ng : NULL;
        float *o = w + (size_t)i * cols;
        if (mn)
            for (int k = 0; k < cols; k++) o[k] = sc[q->g_idx[k]] * (float)c[k] + mn[q->g_idx[k]];
        else
            for (int k = 0; k < cols; k++) o[k] = qc_qvalue((float)c[k], sc[q->g_idx[k]], zp[q->g_idx[k]]);
    }
}
