/* format_check.c — whether the output format can hold a run on its model, asked before calibrating.
 *
 * Once the model is open (and its FFN padded), qc_format_check_run asks the format's writer
 * everything it would refuse that does not depend on the solved weights — shapes, the
 * config, the vocabulary, which linears are quantized — so that a run the writer cannot
 * store is refused before calibrating, not after; the writers keep their own checks. */
#include "job/job.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "model.layers.L.self_attn.q_proj" for messages. */
static void linear_name(int layer, qc_linear lin, char *buf, size_t size) {
    qc_weight_hf_name(qc_linear_weight(lin), layer, buf, size);
    char *dot = strrchr(buf, '.');
    if (dot) *dot = '\0';
}

/* Every quantized linear against the format (its row's check_linear: AWQ's packing, GGUF's
 * 32-blocks); *quantized counts them. */
static qc_status check_linears(const qc_format_run *r, int *quantized, qc_err *e) {
    const qc_config *c = r->cfg;
    const qc_format_row *f = qc_format_row_of(r->format);
    *quantized = 0;
    for (int l = 0; l < c->n_layers; l++)
        for (int lin = 0; lin < QC_LIN_COUNT; lin++) {
            if (r->opts->no_quant || qc_calib_keeps(r->opts, l, (qc_linear)lin)) continue;
            ++*quantized;
            const qc_quant_spec *s = qc_calib_spec(r->opts, l, (qc_linear)lin);
            int rows, cols;
            qc_weight_shape(c, qc_linear_weight((qc_linear)lin), &rows, &cols);
            char name[128];
            linear_name(l, (qc_linear)lin, name, sizeof name);
            qc_status st = f->check_linear ? f->check_linear(name, rows, cols, s, e) : QC_OK;
            if (st) return st;
        }
    return QC_OK;
}

/* Whether the writer stores weight w of block l as F16 as it reads it (nothing solved it): the
 * row's stored_f16 says, for a weight that is not a quantized linear. A run that rescales its
 * blocks changes their norms, biases and linears before they are written: only the embedding
 * and classifier are checked. */
static bool stored_f16(const qc_format_run *r, qc_weight w, int l) {
    const qc_format_row *f = qc_format_row_of(r->format);
    bool global = w == QC_W_EMBED || w == QC_W_CLASSIFIER;
    if (!f->stored_f16 || (!global && qc_calib_rescales(r->opts))) return false;
    bool kept = false;
    for (int lin = 0; lin < QC_LIN_COUNT; lin++)
        if (qc_linear_weight((qc_linear)lin) == w) kept = r->opts->no_quant || qc_calib_keeps(r->opts, l, (qc_linear)lin);
    return f->stored_f16(r, w, kept);
}

#define F16_CHUNK ((size_t)1 << 20) /* floats read at a time */

/* The weights stored_f16 names, against fp16's range: the writer would refuse a value beyond
 * it (it would become Inf) after calibrating. */
static qc_status check_f16_range(const qc_format_run *r, qc_err *e) {
    const qc_config *c = r->cfg;
    float *buf = NULL;
    size_t cap = 0;
    qc_status st = QC_OK;
    for (int w = 0; w < QC_W_COUNT && !st; w++) {
        if (!qc_weight_present(c, (qc_weight)w)) continue;
        int rows, cols;
        qc_weight_shape(c, (qc_weight)w, &rows, &cols);
        bool global = qc_weight_is_global((qc_weight)w);
        int chunk = !global ? rows : (size_t)cols >= F16_CHUNK ? 1 : (int)(F16_CHUNK / (size_t)cols);
        if (chunk > rows) chunk = rows;
        if ((size_t)chunk * cols > cap) {
            free(buf);
            cap = (size_t)chunk * cols;
            if (!(buf = qc_malloc(cap, sizeof(float), e, "the F16 range check"))) return QC_ERR_NOMEM;
        }
        for (int l = 0; l < (global ? 1 : c->n_layers) && !st; l++) {
            if (!stored_f16(r, (qc_weight)w, l)) continue;
            for (int r0 = 0; r0 < rows && !st; r0 += chunk) {
                int n = rows - r0 < chunk ? rows - r0 : chunk;
                st = global ? qc_checkpoint_read_rows(r->ck, (qc_weight)w, r0, n, buf, e)
                            : qc_checkpoint_read(r->ck, (qc_weight)w, l, buf, e);
                for (size_t i = 0; !st && i < (size_t)n * cols; i++) {
                    if (isfinite(qc_f16_to_f32(qc_f32_to_f16(buf[i])))) continue;
                    char name[128], at[64];
                    qc_weight_hf_name((qc_weight)w, l, name, sizeof name);
                    if (cols > 1) snprintf(at, sizeof at, "row %zu, column %zu", r0 + i / cols, i % cols);
                    else snprintf(at, sizeof at, "element %zu", i);
                    st = qc_fail(e, QC_ERR_NUMERIC, "%s: %s: %g at %s is beyond the range of F16, which this format "
                                 "stores it in (--format fake keeps F32)", r->model, name, (double)buf[i], at);
                }
            }
        }
    }
    free(buf);
    return st;
}

qc_status qc_format_check_run(const qc_format_run *r, qc_err *e) {
    const qc_format_row *f = qc_format_row_of(r->format);
    int quantized;
    qc_status st = f->check_model ? f->check_model(r, e) : QC_OK;
    if (!st) st = check_linears(r, &quantized, e);
    if (!st && f->needs_quantized && !quantized)
        st = qc_fail(e, QC_ERR_ARG, "no linear is quantized (the recipe skips them all): a %s checkpoint needs at "
                     "least one; --format fake writes the model as it is", f->label);
    if (!st) st = check_f16_range(r, e); /* last: it reads weights */
    return st ? qc_fail_prefix(e, st, "--format %s", qc_out_format_name(r->format)) : QC_OK;
}
