/* pad.c — a model widened with zeros so that every matrix's input width (GGUF's ne[0]) is a
 * multiple of N, computing the same function: a weight source wrapping another one
 * (`qcalib convert --pad-to N`; llama.cpp's K-quants need ne[0] a multiple of 256).
 *
 * Widths, each rounded up (d → d', f → f', n_kv → n_kv'):
 *   residual width d  → d'  = the next multiple of N
 *   FFN width f       → f'  = the next multiple of N
 *   attention width n_heads·hd → n_heads'·hd, a multiple of N, by whole extra heads: head_dim
 *     hd stays (RoPE's frequencies and the 1/sqrt(hd) score scale with it), and so does the
 *     GQA ratio r = n_heads / n_kv_heads, by appending whole groups (r query heads per extra kv
 *     head): n_kv' is the least multiple of N / gcd(N, r·hd) at or above n_kv, n_heads' = r·n_kv'.
 *     Query head h keeps kv head h / r; the new heads use only the new kv heads.
 * Every matrix is the original in its top-left corner, zeros elsewhere (new rows and columns
 * are appended after the old ones, so no index moves):
 *   token_embd, classifier   zero columns d..d'      → the new residual channels start at 0
 *   q, k, v                  zero columns d..d' (they read only the old channels) and zero
 *                            rows for the new heads (their biases, if any, zero there too)
 *   o                        zero columns for the new heads, zero rows d..d' (+ zero bias)
 *   gate, up                 zero columns d..d', zero rows f..f'
 *   down                     zero columns f..f', zero rows d..d'
 * so, by induction over the blocks, channels d..d' of the residual stream stay exactly 0:
 * nothing writes them (o's and down's new rows are zero) and nothing reads them (every
 * reader's new columns are zero). A new head's q and k are 0, so its scores are 0, its softmax
 * uniform, and its output Σ p·v = 0 (v is 0 there); o's zero columns drop it anyway. A new FFN
 * channel has gate = up = 0, silu(0)·0 = 0, and down's zero column drops it.
 *
 * RMSNorm is the one place a width enters the arithmetic: y_i = w_i·x_i / sqrt(Σx²/d + eps).
 * Over d' channels with the same nonzero x (the rest 0) the sum Σx² is the same, so with
 *   eps' = eps·d/d'   and   w'_i = w_i·sqrt(d/d')   (w'_i = 0 past d, as x is)
 * the padded norm gives
 *   w'_i·x_i / sqrt(Σx²/d' + eps·d/d') = w_i·sqrt(d/d')·x_i / (sqrt(d/d')·sqrt(Σx²/d + eps)) = y_i,
 * exactly in real arithmetic. All norms (attention, FFN, final) are over the residual width, so
 * the one eps GGUF and config.json store serves them all.
 *
 * In fp32: the zeros change nothing (a zero product adds exactly 0 to any partial sum, in any
 * order; only the order in which a kernel adds the old terms may differ with the length, within
 * the usual gamma_n bound of a sum). When d/d' is a power of 4 (stories260K: 64 → 256) the norm
 * is exact too: eps', w' and Σx²/d' are the originals scaled by a power of 2, sqrt halves the
 * exponent, and a power-of-2 scaling commutes with every rounding (outside the subnormal
 * range). Otherwise (tinystories-656K: 128 → 256, sqrt(1/2)) w' and eps' are each one rounding
 * (to nearest, from double) off the exact values, and Σx²/d' + eps' rounds differently from
 * Σx²/d + eps: a few units of roundoff in each norm's output, of the size the model's own fp32
 * arithmetic makes anyway. */
#include "io/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int round_up(int x, int n) { return (x + n - 1) / n * n; }

static int gcd(int a, int b) {
    while (b) {
        int t = a % b;
        a = b;
        b = t;
    }
    return a;
}

qc_status qc_pad_init(qc_pad *p, const qc_weight_source *in, int multiple, qc_err *e) {
    memset(p, 0, sizeof *p);
    if (multiple <= 0 || multiple % 32 != 0)
        return qc_fail(e, QC_ERR_ARG, "--pad-to %d: expected a positive multiple of 32 (256 for K-quants)", multiple);
    const qc_config *c = in->cfg;
    qc_config *o = &p->cfg;
    *o = *c;
    o->dim = round_up(c->dim, multiple);
    o->hidden_dim = round_up(c->hidden_dim, multiple);
    int r = c->n_heads / c->n_kv_heads, step = multiple / gcd(multiple, r * c->head_dim);
    o->n_kv_heads = round_up(c->n_kv_heads, step);
    o->n_heads = r * o->n_kv_heads;
    if (o->n_heads > QC_MAX_HEADS || (int64_t)o->n_heads * o->head_dim > QC_MAX_DIM)
        return qc_fail(e, QC_ERR_UNSUPPORTED,
                       "--pad-to %d: the attention width n_heads·head_dim = %d·%d cannot be padded by whole groups "
                       "of %d heads within %d heads and width %d", multiple, c->n_heads, c->head_dim, r,
                       QC_MAX_HEADS, QC_MAX_DIM);
    o->norm_eps = (float)((double)c->norm_eps * c->dim / o->dim); /* eps·d exact in double */
    p->norm_scale = sqrt((double)c->dim / o->dim);
    p->in = in;
    return qc_config_validate(o, "the padded model", e);
}

static bool is_norm(qc_weight w) { return w == QC_W_ATTN_NORM || w == QC_W_FFN_NORM || w == QC_W_FINAL_NORM; }

/* The original weight into the top-left corner of out (rows, cols of the padded config), zeros
 * elsewhere; a norm's values scaled by sqrt(d/d'). */
static qc_status pad_read(void *ctx, qc_weight w, int layer, float *out, qc_err *e) {
    const qc_pad *p = ctx;
    int r0, c0, rows, cols;
    qc_weight_shape(p->in->cfg, w, &r0, &c0);
    qc_weight_shape(&p->cfg, w, &rows, &cols);
    float *tmp = qc_malloc((size_t)r0 * (size_t)c0, sizeof(float), e, qc_weight_short_name(w));
    if (!tmp) return QC_ERR_NOMEM;
    qc_status st = p->in->read(p->in->ctx, w, layer, tmp, e);
    if (!st) {
        memset(out, 0, (size_t)rows * (size_t)cols * sizeof(float));
        for (int r = 0; r < r0; r++) memcpy(out + (size_t)r * cols, tmp + (size_t)r * c0, (size_t)c0 * sizeof(float));
        if (is_norm(w))
            for (int i = 0; i < r0; i++) out[i] = (float)((double)out[i] * p->norm_scale);
    }
    free(tmp);
    return st;
}

qc_weight_source qc_pad_source(const qc_pad *p) {
    return (qc_weight_source){ .cfg = &p->cfg, .read = pad_read, .ctx = (void *)p };
}
