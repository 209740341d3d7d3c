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

/* Every quantized linear against the format: AWQ's packing, GGUF's 32-blocks; *quantized counts them. */
static qc_status check_linears(const qc_format_run *r, int *quantized, qc_err *e) {
    const qc_config *c = r->cfg;
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
            if (r->format == QC_FMT_AWQ) {
                qc_status st = qc_awq_check_shape(name, rows, cols, s->groupsize, e);
                if (st) return st;
            }
            if (r->format == QC_FMT_GGUF && (s->groupsize != 32 || cols % 32 != 0))
                return qc_fail(e, QC_ERR_UNSUPPORTED,
                               "%s: rows of %d values in groups of %d are not whole 32-wide blocks (%s)", name, cols,
                               s->groupsize, cols % 32 ? "--gguf-no-pad keeps such linears F16" : "groups of 32 only");
        }
    return QC_OK;
}

/* Whether the writer stores weight w of block l as F16 as it reads it (nothing solved it):
 * GPTQ and AWQ every weight that is not a quantized linear; GGUF its F16 embedding or output,
 * and the linears it keeps (as F16). A run that rescales its blocks changes their norms,
 * biases and linears before they are written: only the embedding and classifier are checked. */
static bool stored_f16(const qc_format_run *r, qc_weight w, int l) {
    bool global = w == QC_W_EMBED || w == QC_W_CLASSIFIER;
    if (!global && qc_calib_rescales(r->opts)) return false;
    bool kept = false;
    for (int lin = 0; lin < QC_LIN_COUNT; lin++)
        if (qc_linear_weight((qc_linear)lin) == w) kept = r->opts->no_quant || qc_calib_keeps(r->opts, l, (qc_linear)lin);
    if (w == QC_W_CLASSIFIER && r->cfg->tied_classifier && r->format != QC_FMT_GGUF) return false;
    if (r->format == QC_FMT_GPTQ || r->format == QC_FMT_AWQ)
        return !qc_weight_is_linear(w) ? w != QC_W_EMBED || r->opts->embed.bits == 0 : kept;
    if (r->format != QC_FMT_GGUF) return false;
    if (w == QC_W_EMBED) return r->opts->embed.bits == 0 && r->gguf->embed_type == QC_GGUF_F16;
    if (w == QC_W_CLASSIFIER) return r->gguf->output_type == QC_GGUF_F16;
    return qc_weight_is_linear(w) && kept;
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
    int quantized;
    qc_status st = QC_OK;
    if (r->format == QC_FMT_GGUF) st = qc_gguf_check_export(r->cfg, r->gguf, r->model, e);
    if (!st && r->format == QC_FMT_LLAMA2C) st = qc_llama2c_q8_check(r->cfg, r->model, r->opts->spec.groupsize, e);
    if (!st) st = check_linears(r, &quantized, e);
    if (!st && r->format == QC_FMT_GPTQ && !quantized)
        st = qc_fail(e, QC_ERR_ARG, "no linear is quantized (the recipe skips them all): a GPTQ checkpoint needs at "
                     "least one; --format fake writes the model as it is");
    if (!st) st = check_f16_range(r, e); /* last: it reads weights */
    return st ? qc_fail_prefix(e, st, "--format %s", qc_out_format_name(r->format)) : QC_OK;
}
