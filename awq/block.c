/* block.c — AWQ on one block in the reference's order (llm-awq's run_awq per layer): the
 * scales of every group searched on the unchanged block and its captured inputs, then all
 * applied at once — the norms and producing rows divided, the linears' columns multiplied,
 * the captured inputs divided — then the clipping search of every linear but q and k on its
 * scaled weights and inputs, and the clip applied. */
#include "awq/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The sites with a scaling group: v → o only without grouped-query attention. */
static bool has_group(const qc_config *c, qc_site site) {
    return site != QC_SITE_O || c->n_kv_heads == c->n_heads;
}

static qc_status clip_linear(const qc_config *c, qc_block *b, qc_linear lin, const float *x, int64_t ntok,
                             const qc_awq_share *sh, const qc_quant_spec *spec, qc_awq_block_result *r, qc_err *e) {
    int rows, cols;
    qc_weight_shape(c, qc_linear_weight(lin), &rows, &cols);
    int gs = qc_awq_clip_group(spec, cols), ng = (cols + gs - 1) / gs;
    float *clip = qc_malloc((size_t)rows, (size_t)ng * sizeof(float), e, "clip ranges");
    qc_status st = qc_dist_agree(sh ? sh->dist : NULL, clip ? QC_OK : QC_ERR_NOMEM, e);
    if (st) {
        free(clip);
        return st;
    }
    st = qc_awq_search_clip(b->w[lin], rows, cols, x, ntok, sh, spec, clip, e);
    if (!st) {
        double sum = 0.0;
        int n = 0;
        float min = 1.0f;
        for (int i = 0; i < rows; i++)
            for (int g = 0; g < ng; g++) {
                const float *w = b->w[lin] + (size_t)i * cols + (size_t)g * gs;
                int len = cols - g * gs < gs ? cols - g * gs : gs;
                float m = 0.0f;
                for (int j = 0; j < len; j++) m = fabsf(w[j]) > m ? fabsf(w[j]) : m;
                if (m == 0.0f) continue; /* an all-zero group (padding) has nothing to clip */
                float f = clip[(size_t)i * ng + g] / m;
                sum += f, n++;
                min = f < min ? f : min;
            }
        r->clipped[lin] = true;
        r->clip_mean[lin] = n ? (float)(sum / n) : 1.0f;
        r->clip_min[lin] = min;
        qc_awq_apply_clip(b->w[lin], rows, cols, gs, clip);
    }
    free(clip);
    return st;
}

qc_status qc_awq_block(const qc_config *c, qc_block *b, int layer, float *x[QC_SITE_COUNT], int nwin, int seqlen,
                       const qc_quant_spec *const spec[QC_LIN_COUNT], const bool skip[QC_LIN_COUNT],
                       const qc_awq_opts *o, qc_workspace *ws, qc_awq_block_result *r, qc_err *e) {
    memset(r, 0, sizeof *r);
    qc_status st = QC_OK;
    int64_t ntok = (int64_t)nwin * seqlen;
    for (int s = 0; s < QC_SITE_COUNT && !st; s++) {
        if (!has_group(c, (qc_site)s)) continue;
        int width = qc_site_width(c, (qc_site)s);
        if (!(r->s[s] = qc_malloc((size_t)width, sizeof(float), e, "AWQ scales"))) st = QC_ERR_NOMEM;
        st = qc_dist_agree(o->share.dist, st, e);
        if (!st) st = qc_awq_search_scale(c, b, layer, (qc_site)s, x[s], nwin, seqlen, spec, o, ws, r->s[s], &r->group[s], e);
    }
    if (!st) {
        qc_block_scale(c, b, (const float *const *)r->s);
        for (int s = 0; s < QC_SITE_COUNT; s++) {
            if (!r->s[s]) continue;
            int width = qc_site_width(c, (qc_site)s);
            for (int64_t t = 0; t < ntok; t++)
                for (int j = 0; j < width; j++) x[s][(size_t)t * width + j] /= r->s[s][j];
        }
    }
    for (int l = 0; l < QC_LIN_COUNT && !st && o->clip; l++) {
        if (l == QC_LIN_Q || l == QC_LIN_K || (skip && skip[l])) continue; /* q, k: the q·k product defeats a per-linear error */
        st = clip_linear(c, b, (qc_linear)l, x[qc_linear_site(l)], ntok, &o->share, spec[l], r, e);
    }
    if (st) qc_awq_block_result_free(r);
    return st;
}

void qc_awq_block_result_free(qc_awq_block_result *r) {
    if (!r) return;
    for (int s = 0; s < QC_SITE_COUNT; s++) free(r->s[s]);
    memset(r, 0, sizeof *r);
}
