/* gptq.h — GPTQ (QUANT-SPEC §3; the IST-DASLab/gptq reference's fasterquant): columns are
 * quantized one at a time and each one's rounding error is spread over the columns not yet
 * quantized, weighted by the inverse Hessian of the layer's inputs. A pure function: no
 * files, no printing. */
#ifndef QC_GPTQ_H
#define QC_GPTQ_H

#include "quant/quant.h"

typedef struct qc_gptq_opts {
    float percdamp;     /* damping: percdamp * mean(diag H) added to the diagonal (0.01) */
    int blocksize;      /* columns per lazy-update block (128) */
    bool act_order;     /* process columns by decreasing diag(H) */
    bool static_groups; /* group parameters from the whole W before any update */
    int max_retries;    /* failed factorization: damping x10 (from 0: to 0.01), at most
                           this many times (4) */
} qc_gptq_opts;

qc_gptq_opts qc_gptq_defaults(void);

typedef struct qc_gptq_info {
    double loss;        /* Σ (w − q)² / d² / 2 over all weights, as the reference's `error`
                           (summed in double); 0 with the fallback */
    double damp;        /* the damping finally added, relative to mean(diag H) */
    int retries;        /* how often the damping was raised */
    bool fallback;      /* the factorization never succeeded: round-to-nearest was used */
    int dead;           /* inputs with H[i,i] == 0 (their weights were zeroed) */
} qc_gptq_info;

/* Quantizes w (rows, cols) given h (cols, cols), the inputs' Σ xᵀx in any positive scale
 * (damping is relative). w and h are used as scratch and overwritten; only h's upper
 * triangle is read. On success out (initialised here, as by qc_qweight_init) holds
 * codes, scales, zeros, g_idx and perm in original column order. A Hessian that cannot be
 * factorized even after max_retries is not an error: info->fallback is set and out holds
 * round-to-nearest of the original w. NaN/Inf in w or h is an error (QC_ERR_NUMERIC).
 * o NULL: the defaults; info may be NULL. The result does not depend on the thread count
 * below 1024 columns (and equals the reference bit for bit there); from 1024 on, OpenBLAS's
 * threaded factorizations may change last bits with the thread count. Uses OpenMP and
 * OpenBLAS threads: call it outside OpenMP regions. A K-quant spec (s->kquant) fits each
 * 256-column super-block's scales by s->kquant weighted by diag(H) (gptq.c says when), and
 * needs static groups with act-order. */
qc_status qc_gptq_quantize(float *w, float *h, int rows, int cols, const qc_quant_spec *s,
                           const qc_gptq_opts *o, qc_qweight *out, qc_gptq_info *info, qc_err *e);

#endif
