/* bounds.h — rounding bounds on the fp32 forward pass, for tests that compare two fp32
 * evaluations of the same logits (batched against one window at a time, padded against
 * unpadded, sgemm against loops, a file against memory through another route) or one
 * against a double-precision reference.
 *
 * Every value on the way to a logit comes out of a chain of reductions: per block, RMSNorm's
 * sum of squares (dim), the q/k/v projections (dim), the attention scores (head_dim), the
 * softmax denominator and the weighted sum of values (up to seqlen each), o_proj (heads ×
 * head_dim), RMSNorm again, gate/up (dim) and down (hidden); then the final norm and the
 * classifier (dim). To first order in u, each reduction of n terms adds at most gamma_n of the
 * magnitudes it sums (check.h), and the residual stream carries those errors to the logits at
 * the logits' scale. So a logit of the fp32 pass is within gamma_K * scale of the exact one,
 * K the sum of the chain's lengths, scale the largest |logit|; two fp32 routes are within
 * twice that of each other. K runs to thousands, so gamma is check.h's probabilistic one. It
 * does not depend on the kernel, and a real fault (a wrong position, mask, window offset or
 * weight) moves logits by O(1), far beyond it. */
#ifndef QC_TEST_BOUNDS_H
#define QC_TEST_BOUNDS_H

#include "io/io.h"
#include "tests/check.h"

/* K: the reductions along the longest path to a logit, at context length seqlen. */
static inline double forward_chain_length(const qc_config *c, int seqlen) {
    double block = 2.0 * c->dim                 /* RMSNorm, q/k/v */
                   + c->head_dim + 2.0 * seqlen /* scores, softmax sum, weighted values */
                   + (double)c->n_heads * c->head_dim /* o_proj */
                   + 2.0 * c->dim + c->hidden_dim;   /* RMSNorm, gate/up, down */
    return c->n_layers * block + 2.0 * c->dim;        /* final norm, classifier */
}

/* The largest |x| of n values. */
static inline double max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)x[i]));
    return m;
}

/* How far two fp32 evaluations of the same n logits may lie apart (see above). */
static inline double fp32_logits_bound(const qc_config *c, int seqlen, const float *logits, size_t n) {
    return 2 * fp32_gamma_prob(forward_chain_length(c, seqlen)) * max_abs(logits, n);
}

#endif
