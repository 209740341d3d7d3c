/* awq.h — AWQ, activation-aware weight quantization (QUANT-SPEC §4; the llm-awq reference's
 * auto_scale.py and auto_clip.py): per Llama block, each group of linears sharing an input is
 * given per-input-channel scales s searched on a grid so that quantizing W·s (the input
 * divided by s, 1/s folded into what produces it) loses the least on the block's
 * calibration inputs; then each linear but q and k gets per-group clipping ranges searched
 * the same way. The weights are then quantized by whichever solver follows (round-to-
 * nearest with AWQ-style parameters, or GPTQ). The searches simulate each linear's own
 * spec, so K-quant mixes get AWQ too: a K-quant's Q is llama.cpp's reference quantizer, and
 * its clip ranges are per super-block (docs/kquant-gptq.md, "AWQ into K-quants"). Pure
 * functions of weights and activations: no files, no printing.
 *
 * The four scaling groups of a block, by the site whose input they share:
 *   qkv      attention RMSNorm → {q, k, v}; loss on the whole attention's output
 *   o        v → {o}, only when v's rows are o's columns (no grouped-query attention, as
 *            the reference: stories260K has GQA, so it has no such group); loss on o's output
 *   gate_up  FFN RMSNorm → {gate, up}; loss on the whole MLP's output
 *   down     up → {down}; loss on down's output */
#ifndef QC_AWQ_H
#define QC_AWQ_H

#include "dist/dist.h"
#include "model/model.h"
#include "quant/quant.h"

#define QC_AWQ_GRID 20        /* scale exponents r / 20, r = 0..19 */
#define QC_AWQ_CLIP_GRID 10   /* clip factors 1 − i / 20, i = 0..9 */
#define QC_AWQ_CLIP_TOKENS 512 /* the clip search's tokens: every (ntok / 512)-th */

/* Which tokens the searches' x holds: in a distributed run, this rank's [first, first + n) of
 * total, and every sum over tokens (mean|x|, the losses) runs over every rank's, so each rank
 * chooses the same scales and clips as one process would, but for the order of the sums.
 * Zeroed (or NULL where a function takes it): x holds all the tokens. */
typedef struct qc_awq_share {
    const qc_dist *dist;
    int64_t first, total;
} qc_awq_share;

typedef struct qc_awq_opts {
    bool duo_scaling;   /* AutoAWQ's variant: s = mean|x|^r / (wmean^(1−r) + 1e−4), wmean the
                           mean over the group's rows of |w| / max|w| of its quantization group */
    bool clip;          /* the clipping search (not for q, k) */
    int chunk_windows;  /* windows per sub-block forward; the workspace must hold them */
    qc_awq_share share; /* the ranks' share of the tokens */
} qc_awq_opts;

/* What one group's scale search found. */
typedef struct qc_awq_group {
    int best;                  /* the grid point chosen: exponent best / 20 */
    double loss[QC_AWQ_GRID];  /* mean squared output error of every grid point; loss[0] is
                                  the unscaled candidate (s = 1) */
} qc_awq_group;

/* x_mean (cols) = mean |x| over the ntok rows of x (ntok, cols), and the other ranks' (sh):
 * AWQ's statistic. */
qc_status qc_awq_mean_abs(const float *x, int64_t ntok, int cols, const qc_awq_share *sh, float *x_mean, qc_err *e);

/* The candidate scales of grid point r (0..19): mean|x|^(r/20) (duo: divided by
 * wmean^(1 − r/20) + 1e−4), at least 1e−4, divided by sqrt(max(s)·min(s)). Channels with
 * mean|x| == 0 (zero padding, inputs never active) are left out of max and min, so padding a
 * layer does not change the others' scales. wmean may be NULL without duo. */
void qc_awq_candidate(const float *x_mean, const float *wmean, int n, int r, bool duo, float *s);

/* The scale search of the group at `site` of block b (weights as they are, unchanged): x
 * (nwin*seqlen, width of the site) is the site's input. Tries every grid point — each
 * scaled linear l replaced by Q(W·s)/s, Q = round-to-nearest by spec[l], the spec it will be
 * quantized with (a recipe's or a K-quant mix's own; NULL: kept unquantized, left as it is) —
 * and keeps the first with the least loss; s (site width) receives its scales. The duo
 * variant's weight means take a kept linear's rows as one group each. */
qc_status qc_awq_search_scale(const qc_config *c, const qc_block *b, int layer, qc_site site, const float *x,
                              int nwin, int seqlen, const qc_quant_spec *const spec[QC_LIN_COUNT],
                              const qc_awq_opts *o, qc_workspace *ws, float *s, qc_awq_group *g, qc_err *e);

/* The columns one clip range covers under spec: its quantization group, or for a K-quant
 * its super-block of QC_KQ_SUPER (the unit its fitter sees: the sub-blocks share the
 * super-block's fp16 factors, so clipping one changes how the others are stored). */
int qc_awq_clip_group(const qc_quant_spec *spec, int cols);

/* The clip search of one linear w (rows, cols) on its inputs x (ntok, cols), both already
 * scaled: for every row and clip group (qc_awq_clip_group), the clip range ±max|w|·(1 − i/20)
 * (i = 0..9) whose quantized group's partial outputs Σ_group x·w differ least (mean squared,
 * over every (ntok/512)-th token, counted over every rank's tokens with sh) from the
 * unclipped; strict improvements only. clip_max (rows, ceil(cols / clip group)). */
qc_status qc_awq_search_clip(const float *w, int rows, int cols, const float *x, int64_t ntok,
                             const qc_awq_share *sh, const qc_quant_spec *spec, float *clip_max, qc_err *e);

/* Clamps every clip group (of `group` columns) of w (rows, cols) to ±clip_max of its row and
 * group. */
void qc_awq_apply_clip(float *w, int rows, int cols, int group, const float *clip_max);

/* What AWQ did to one block. */
typedef struct qc_awq_block_result {
    float *s[QC_SITE_COUNT];         /* owned; NULL: the site has no scaling group */
    qc_awq_group group[QC_SITE_COUNT];
    bool clipped[QC_LIN_COUNT];
    float clip_mean[QC_LIN_COUNT];   /* clip_max / max|w| over the linear's groups */
    float clip_min[QC_LIN_COUNT];
} qc_awq_block_result;

/* AWQ on block b, in the reference's order: every group's scales searched on the unchanged
 * block; all applied (qc_block_scale) and each site's captured input x[site] (nwin*seqlen,
 * site width) divided by its scales; then each linear but q, k and those in `skip` clipped
 * on its scaled input. Linear l is quantized with spec[l] (NULL where skip[l]: kept). b and x
 * are modified in place; r is initialised here. */
qc_status qc_awq_block(const qc_config *c, qc_block *b, int layer, float *x[QC_SITE_COUNT], int nwin, int seqlen,
                       const qc_quant_spec *const spec[QC_LIN_COUNT], const bool skip[QC_LIN_COUNT],
                       const qc_awq_opts *o, qc_workspace *ws, qc_awq_block_result *r, qc_err *e);
void qc_awq_block_result_free(qc_awq_block_result *r); /* NULL or zeroed: no-op */

#endif
