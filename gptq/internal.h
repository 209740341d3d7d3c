/* internal.h — gptq/'s test hooks; not part of the public interface (gptq.h). */
#ifndef QC_GPTQ_INTERNAL_H
#define QC_GPTQ_INTERNAL_H

/* The number of columns from which U is computed by the fast route (potrf + trtri on the
 * reversed Hessian, with OpenBLAS's threads) instead of the reference's own chain (potrf,
 * potri, potrf, on one thread). Default 1024. Returns the previous value. Not thread-safe:
 * for tests, which use it to run every test vector through both routes. */
int qc_gptq_set_fast_route_min(int cols);

#endif
