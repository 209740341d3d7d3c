/* internal.h — internal to model/: the workspace layout shared by workspace.c and
 * forward.c. Other folders use model/model.h only. */
#ifndef QC_MODEL_INTERNAL_H
#define QC_MODEL_INTERNAL_H

#include "model/model.h"

/* Queries per block of the attention (forward.c): a block's queries see keys up to its last
 * one only, so most of the masked half of the score square is never computed, and a head's
 * scores need QUERY_BLOCK rows at most. */
#define QUERY_BLOCK 256

struct qc_workspace {
    int max_tokens, max_ctx;
    float *xb;       /* (max_tokens, dim) normalised input of a site */
    float *out;      /* (max_tokens, dim) output of o / down before the residual add */
    float *q;        /* (max_tokens, n_heads*head_dim) */
    float *k, *v;    /* (max_tokens, n_kv_heads*head_dim) */
    float *att;      /* (max_tokens, n_heads*head_dim) attention output */
    float *h1, *h3;  /* (max_tokens, hidden_dim) gate and up outputs */
    float *scores;   /* (threads, min(max_tokens, QUERY_BLOCK), max_ctx) attention weights, one
                        head per thread */
    float *rope_cos; /* (max_ctx, head_dim/2) */
    float *rope_sin; /* (max_ctx, head_dim/2) */
    qc_matmul_scratch conv; /* the linears' bf16 operands under --compute bf16, kept between
                               products (grown by the first, counted by qc_workspace_bytes) */
};

/* out (ntok, dim) = weight ⊙ x / sqrt(mean(x²) + eps), row by row; out may be x. */
void qc_rmsnorm(const float *x, const float *weight, int ntok, int dim, float eps, float *out);

#endif
