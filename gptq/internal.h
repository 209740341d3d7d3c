/* internal.h — gptq/'s test hooks and what its files share; not part of the public
 * interface (gptq.h). */
#ifndef QC_GPTQ_INTERNAL_H
#define QC_GPTQ_INTERNAL_H

#include "quant/quant.h"

/* K-quants: every super-block's stored scales refitted, given GPTQ's codes, to the original
 * weights w0 (rows, cols) under the output error with h (cols, cols; its upper triangle is
 * read and mirrored in place; dead[i]: input i is dead, its H[i,i] is set back to 0), each
 * kept only where it lowers the row's error (kquant_refit.c). Codes are unchanged. Without
 * memory, out stays as is. */
void qc_gptq_kquant_refit(const float *w0, float *h, const uint8_t *dead, qc_qweight *out);

/* The number of columns from which U is computed by the fast route (potrf + trtri on the
 * reversed Hessian, with OpenBLAS's threads) instead of the reference's own chain (potrf,
 * potri, potrf, on one thread). Default 1024. Returns the previous value. Not thread-safe:
 * for tests, which use it to run every test vector through both routes. */
int qc_gptq_set_fast_route_min(int cols);

#endif
