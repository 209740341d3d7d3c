/* gptq_exact.h — one GPTQ case's recurrence in exact arithmetic (double), given a run's
 * discrete choices, and the rounding an fp32 run of it can carry. For vectors/gptq.c, whose
 * agreement bounds follow from it.
 *
 * GPTQ quantizes column j of a row (j in processing order) to q_j from its compensated value
 *     w_j = w0_j − Σ_{k<j} e_k U[k,j],    e_j = (w_j − q_j) / U[j,j],
 * with U the upper Cholesky factor of the damped H⁻¹ (testvectors README §2). Stacked over j,
 * w0 − q = Uᵀe, so
 *     e = U⁻ᵀ (w0 − q)                                                                 (1)
 * and the loss Σ e²/2 equals (w0 − q)ᵀ H (w0 − q) / 2, since UᵀU = H⁻¹. From a run's final
 * codes (1) recovers, in double, its exact e and every exact w_j, and so every value a
 * group's parameters were computed from: a dynamic group starting in the block at column b
 * sees the lazily updated w_j^(b) = w0_j − Σ_{k<b} e_k U[k,j].
 *
 * Rounding, to first order and in Higham & Mary's probabilistic model (check.h's
 * fp32_gamma_prob: independent, mean-zero rounding errors; λ = 8). An fp32 run gets
 * w_j^(b) wrong by at most
 *     δ_j^(b) = sqrt( (γ̃(b + 3n)·M_j^(b))² + Σ_{k<b} (δ_k U[k,j] / U[k,k])² ),
 *     M_j^(b) = |w0_j| + Σ_{k<b} |e_k U[k,j]|,     δ_k = δ_k^(k):
 * the sum of b products is off by γ̃_b of its absolute terms (any order or blocking); each
 * entry of U, from three factorizations of n×n (potrf, potri, potrf, or potrf and trtri),
 * by γ̃_3n of itself (through their inner products: the rounding, not the conditioning of
 * H); each earlier e_k by δ_k / U[k,k] through w_k, those errors adding as independent
 * ones do. The worst-case analog (γ_n, and the δ_k added in absolute value) compounds
 * over the 172 columns of down_proj into a bound larger than the loss itself. */
#ifndef QC_TESTS_GPTQ_EXACT_H
#define QC_TESTS_GPTQ_EXACT_H

#include "tests/check.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct gptq_exact {
    int rows, n;
    double *u;  /* (n, n) upper: the Cholesky factor of the damped H⁻¹, processing order */
    double *w0; /* (rows, n) W after the dead-column fix, processing order */
    double *e;  /* (rows, n) e of (1) */
    double *w;  /* (rows, n) exact compensated w_j */
    double *d;  /* (rows, n) δ_j */
} gptq_exact;

static inline void gptq_exact_free(gptq_exact *x) {
    free(x->u), free(x->w0), free(x->e), free(x->w), free(x->d);
    memset(x, 0, sizeof *x);
}

/* U from h (n, n) as the reference makes it: dead columns (h[i,i] == 0) get 1 on the
 * diagonal and zero weights, rows and columns permuted by perm, percdamp·mean(diag) added
 * to the diagonal, then U = chol(chol_inverse(chol(H))). False if H is not positive definite. */
static inline bool gptq_exact_init(gptq_exact *x, const float *w, const float *h, int rows, int n, const int32_t *perm,
                                   double percdamp) {
    memset(x, 0, sizeof *x);
    x->rows = rows, x->n = n;
    x->u = calloc((size_t)n * n, sizeof *x->u);
    x->w0 = calloc((size_t)rows * n, sizeof *x->w0);
    x->e = calloc((size_t)rows * n, sizeof *x->e);
    x->w = calloc((size_t)rows * n, sizeof *x->w);
    x->d = calloc((size_t)rows * n, sizeof *x->d);
    if (!x->u || !x->w0 || !x->e || !x->w || !x->d) return false;
    double mean = 0;
    for (int i = 0; i < n; i++) {
        int pi = perm[i];
        bool dead = h[(size_t)pi * n + pi] == 0;
        for (int j = i; j < n; j++) x->u[(size_t)i * n + j] = h[(size_t)pi * n + perm[j]];
        if (dead) x->u[(size_t)i * n + i] = 1;
        mean += x->u[(size_t)i * n + i] / n;
        for (int r = 0; r < rows; r++) x->w0[(size_t)r * n + i] = dead ? 0 : w[(size_t)r * n + pi];
    }
    for (int i = 0; i < n; i++) x->u[(size_t)i * n + i] += percdamp * mean;
    return LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', n, x->u, n) == 0 &&
           LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'U', n, x->u, n) == 0 &&
           LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', n, x->u, n) == 0;
}

/* e, w and δ of (1) for a run's final weights q (rows, n), original column order. */
static inline void gptq_exact_solve(gptq_exact *x, const float *q, const int32_t *perm) {
    int n = x->n;
    for (int r = 0; r < x->rows; r++) {
        const double *w0 = x->w0 + (size_t)r * n;
        double *e = x->e + (size_t)r * n, *w = x->w + (size_t)r * n, *d = x->d + (size_t)r * n;
        for (int j = 0; j < n; j++) {
            double s = w0[j], m = fabs(w0[j]), prop = 0;
            for (int k = 0; k < j; k++) {
                double ukj = x->u[(size_t)k * n + j], p = d[k] * ukj / x->u[(size_t)k * n + k];
                s -= e[k] * ukj;
                m += fabs(e[k] * ukj);
                prop += p * p;
            }
            w[j] = s;
            d[j] = hypot(fp32_gamma_prob(j + 3.0 * n) * m, sqrt(prop));
            e[j] = (s - q[(size_t)r * n + perm[j]]) / x->u[(size_t)j * n + j];
        }
    }
}

/* w_j^(b) of row r and its bound δ_j^(b) (header comment). */
static inline double gptq_exact_lazy(const gptq_exact *x, int r, int j, int b, double *bound) {
    int n = x->n;
    const double *e = x->e + (size_t)r * n, *d = x->d + (size_t)r * n;
    double s = x->w0[(size_t)r * n + j], m = fabs(s), prop = 0;
    for (int k = 0; k < b; k++) {
        double ukj = x->u[(size_t)k * n + j], p = d[k] * ukj / x->u[(size_t)k * n + k];
        s -= e[k] * ukj;
        m += fabs(e[k] * ukj);
        prop += p * p;
    }
    *bound = hypot(fp32_gamma_prob(b + 3.0 * n) * m, sqrt(prop));
    return s;
}

/* Σ e²/2 over all rows: the run's loss in exact arithmetic; *bound receives how far the sum
 * of an fp32 run's terms can be off, the sum's own rounding aside: each term e²/2 moves by
 * e·Δe, with Δe_j ≤ δ_j/U[j,j] + γ̃_(3n+2)|e_j| (through w_j and U, and the term's own
 * division, square and halving), the moves adding as independent ones. */
static inline double gptq_exact_loss(const gptq_exact *x, double *bound) {
    int n = x->n;
    double l = 0, b = 0;
    for (int r = 0; r < x->rows; r++)
        for (int j = 0; j < n; j++) {
            double e = x->e[(size_t)r * n + j], ujj = x->u[(size_t)j * n + j];
            l += e * e / 2;
            double t = e * (x->d[(size_t)r * n + j] / ujj + fp32_gamma_prob(3.0 * n + 2) * fabs(e));
            b += t * t;
        }
    *bound = sqrt(b);
    return l;
}

#endif
