/* smooth.h — SmoothQuant (QUANT-SPEC §5; the reference's smooth_ln_fcs_llama_like): the
 * activation outliers of an RMSNorm's output are moved into the weights of the linears it
 * feeds by per-channel scales s, the norm weight divided and the linears' columns
 * multiplied (model/'s qc_block_scale), an exact change of the fp32 function. Per Llama
 * block: the attention RMSNorm → {q, k, v}, the FFN RMSNorm → {gate, up}. A pure function:
 * no files, no printing. */
#ifndef QC_SMOOTH_H
#define QC_SMOOTH_H

#include "model/model.h"

/* s (n) from the inputs' per-channel max|x| (act_absmax, n) and the nw weights w[k]
 * (rows[k], n) that read them:
 *   s_j = max(act_j^α / max(max_k max_rows |w_k[:, j]|, 1e−5)^(1−α), 1e−5)
 * α and 1 − α rounded to fp32 (torch raises fp32 tensors to Python floats). */
void qc_smooth_scales(const float *act_absmax, int n, const float *const *w, const int *rows, int nw, float alpha,
                      float *s);

/* The scales of block b's two smoothed sites (qkv and gate_up, each dim wide) from the
 * max|x| of their inputs; other sites' entries are left NULL. s_qkv and s_gate_up are the
 * caller's. */
void qc_smooth_block(const qc_config *c, const qc_block *b, const float *absmax_qkv, const float *absmax_gate_up,
                     float alpha, float *s_qkv, float *s_gate_up);

#endif
