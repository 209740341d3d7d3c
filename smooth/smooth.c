/* smooth.c — SmoothQuant's scales (smooth_ln_fcs_llama_like): the weights' per-column
 * max|w| over every linear of the group, then act^α / wmax^(1−α), both clamped at 1e−5 as
 * the reference does, in fp32 with the exponents rounded to fp32. */
#include "smooth/smooth.h"

#include <math.h>

void qc_smooth_scales(const float *act_absmax, int n, const float *const *w, const int *rows, int nw, float alpha,
                      float *s) {
    float a = alpha, b = (float)(1.0 - (double)alpha);
    for (int j = 0; j < n; j++) {
        float wmax = 0.0f;
        for (int k = 0; k < nw; k++)
            for (int r = 0; r < rows[k]; r++) {
                float v = fabsf(w[k][(size_t)r * n + j]);
                wmax = v > wmax ? v : wmax;
            }
        wmax = wmax > 1e-5f ? wmax : 1e-5f;
        float v = powf(act_absmax[j], a) / powf(wmax, b);
        s[j] = v > 1e-5f ? v : 1e-5f;
    }
}

void qc_smooth_block(const qc_config *c, const qc_block *b, const float *absmax_qkv, const float *absmax_gate_up,
                     float alpha, float *s_qkv, float *s_gate_up) {
    int qdim = c->n_heads * c->head_dim, kvdim = c->n_kv_heads * c->head_dim;
    const float *qkv[3] = { b->w[QC_LIN_Q], b->w[QC_LIN_K], b->w[QC_LIN_V] };
    const int qkv_rows[3] = { qdim, kvdim, kvdim };
    qc_smooth_scales(absmax_qkv, c->dim, qkv, qkv_rows, 3, alpha, s_qkv);
    const float *gu[2] = { b->w[QC_LIN_GATE], b->w[QC_LIN_UP] };
    const int gu_rows[2] = { c->hidden_dim, c->hidden_dim };
    qc_smooth_scales(absmax_gate_up, c->dim, gu, gu_rows, 2, alpha, s_gate_up);
}
