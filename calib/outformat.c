/* outformat.c — the file a quantize run writes: --format when given, else the rule below
 * (README "Quantizing"), and for GGUF the linears' block type; with the reason, which the
 * console and summary.json show.
 *
 * The rule, when --format is not given:
 *   1. a --gguf-* option given: gguf (the user named GGUF's settings);
 *   2. no weight quantized (smoothquant without --wbits): fake, the fp32 weights;
 *   3. gptq when GPTQ safetensors hold every setting given: linears at 2, 3, 4 or 8 bits (the
 *      run's and every recipe rule's), any group size and symmetry, the token embedding not
 *      quantized, a damping its config can record (0 < damp_percent < 1, AutoGPTQ's rule);
 *   4. otherwise fake (the dequantized weights in the input's own format), which holds any
 *      setting; the reason names the setting GPTQ cannot hold.
 * The input's format plays no part: a llama2.c model gets GPTQ safetensors as a Hugging Face
 * one does. GGUF is never chosen unasked, since its block types would replace the group size
 * and symmetry asked for and quantize the embedding and the classifier besides.
 *
 * GGUF's linear type: --gguf-type, else from the settings given: 8 bits → q8_0; 4 bits (or
 * none given) → q4_1 when asymmetry was asked for explicitly (a recipe's "sym": false), else
 * q4_0, GGUF's usual type. A setting given explicitly that the chosen format or type cannot
 * hold is an error naming both (QC_ERR_ARG): --format gguf with --groupsize 128, --gguf-type
 * q4_1 with --sym, --gguf-type with --format gptq, --format gptq with --percdamp 0. The other formats' own limits (awq, llama2c)
 * are checked where their solver settings are made (cli/cmd_quantize.c).
 *
 * Once the model is open (and its FFN padded), qc_format_check_run asks the format's writer
 * everything it would refuse that does not depend on the solved weights — shapes, the
 * config, the vocabulary, which linears are quantized — so that a run the writer cannot
 * store is refused before calibrating, not after; the writers keep their own checks. */
#include "calib/calib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[] = { "fake", "gptq", "awq", "gguf", "llama2c" }; /* by qc_out_format */
#define NFORMATS ((int)(sizeof names / sizeof *names))

const char *qc_out_format_name(qc_out_format f) { return (int)f >= 0 && (int)f < NFORMATS ? names[f] : "?"; }

bool qc_out_format_parse(const char *name, qc_out_format *f) {
    for (int i = 0; i < NFORMATS; i++)
        if (!strcmp(name, names[i])) return *f = (qc_out_format)i, true;
    return false;
}

/* How a setting was given, for messages: "--wbits 3", "--sym", "the recipe's sym false". */
static const char *given_text(const qc_given *g, bool boolean, char *buf, size_t size) {
    if (boolean && !strncmp(g->from, "--", 2)) snprintf(buf, size, "%s", g->from); /* a flag */
    else if (boolean) snprintf(buf, size, "%s %s", g->from, g->value ? "true" : "false");
    else snprintf(buf, size, "%s %d", g->from, g->value);
    return buf;
}

/* GGUF's linear type for what was given; `how` names what chose GGUF ("--format gguf"). */
static qc_status gguf_type(const qc_format_ask *a, const char *how, qc_format_choice *c, qc_err *e) {
    char t[96];
    if (a->groupsize.from && a->groupsize.value != 32)
        return qc_fail(e, QC_ERR_ARG, "%s stores blocks of 32: %s contradicts it", how,
                       given_text(&a->groupsize, false, t, sizeof t));
    if (a->gguf_type) {
        if (!qc_gguf_type_parse(a->gguf_type, &c->gguf_type) ||
            (c->gguf_type != QC_GGUF_Q4_0 && c->gguf_type != QC_GGUF_Q4_1 && c->gguf_type != QC_GGUF_Q8_0))
            return qc_fail(e, QC_ERR_ARG, "--gguf-type '%s': expected q4_0, q4_1 or q8_0 (for f16/f32 files: qcalib "
                           "convert --to gguf)", a->gguf_type);
        int bits = c->gguf_type == QC_GGUF_Q8_0 ? 8 : 4;
        bool sym = c->gguf_type != QC_GGUF_Q4_1;
        if (a->bits.from && a->bits.value != bits)
            return qc_fail(e, QC_ERR_ARG, "--gguf-type %s is %d-bit: %s contradicts it", a->gguf_type, bits,
                           given_text(&a->bits, false, t, sizeof t));
        if (a->sym.from && a->sym.value != sym)
            return qc_fail(e, QC_ERR_ARG, "--gguf-type %s is %s: %s contradicts it", a->gguf_type,
                           sym ? "symmetric" : "asymmetric", given_text(&a->sym, true, t, sizeof t));
        return QC_OK;
    }
    int bits = a->bits.from ? a->bits.value : 4;
    if (bits != 4 && bits != 8)
        return qc_fail(e, QC_ERR_ARG, "%s stores 4 or 8 bits (q4_0, q4_1, q8_0): %s contradicts it", how,
                       given_text(&a->bits, false, t, sizeof t));
    if (bits == 8 && a->sym.from && !a->sym.value)
        return qc_fail(e, QC_ERR_ARG, "%s stores 8 bits as q8_0, which is symmetric: %s contradicts it", how,
                       given_text(&a->sym, true, t, sizeof t));
    c->gguf_type = bits == 8 ? QC_GGUF_Q8_0 : a->sym.from && !a->sym.value ? QC_GGUF_Q4_1 : QC_GGUF_Q4_0;
    return QC_OK;
}

/* Rule 3: what GPTQ cannot hold, said into why; false when it holds everything. */
static bool gptq_refuses(const qc_format_ask *a, char *why, size_t size) {
    char t[96];
    if (a->embed_bits.from) {
        snprintf(why, size, "%s quantizes the token embedding, which GPTQ files keep in fp16",
                 given_text(&a->embed_bits, false, t, sizeof t));
        return true;
    }
    if (a->bits.from && !qc_gptq_format_holds_bits(a->bits.value)) {
        snprintf(why, size, "GPTQ files store 2, 3, 4 or 8 bits, not %s", given_text(&a->bits, false, t, sizeof t));
        return true;
    }
    if (a->percdamp_from && !(a->percdamp > 0 && a->percdamp < 1)) {
        snprintf(why, size, "GPTQ configs record a damping 0 < damp_percent < 1 (AutoGPTQ's rule), not %s %g",
                 a->percdamp_from, a->percdamp);
        return true;
    }
    for (int i = 0; a->recipe && i < a->recipe->nrules; i++) {
        const qc_recipe_rule *r = &a->recipe->rules[i];
        if (!r->skip && r->bits != QC_RECIPE_UNSET && !qc_gptq_format_holds_bits(r->bits)) {
            snprintf(why, size, "GPTQ files store 2, 3, 4 or 8 bits, not the %d bits the recipe gives %s", r->bits,
                     r->pattern);
            return true;
        }
    }
    return false;
}

qc_status qc_format_choose(const qc_format_ask *a, qc_format_choice *c, qc_err *e) {
    *c = (qc_format_choice){ .format = QC_FMT_GPTQ, .gguf_type = QC_GGUF_Q4_0 };
    if (a->format) {
        if (!qc_out_format_parse(a->format, &c->format))
            return qc_fail(e, QC_ERR_ARG, "--format '%s': expected gptq, awq, gguf, llama2c or fake", a->format);
        if (a->gguf_option && c->format != QC_FMT_GGUF)
            return qc_fail(e, QC_ERR_ARG, "%s applies to --format gguf: --format %s contradicts it", a->gguf_option,
                           a->format);
        snprintf(c->reason, sizeof c->reason, "--format %s", a->format);
    } else if (a->gguf_option) {
        c->format = QC_FMT_GGUF;
        snprintf(c->reason, sizeof c->reason, "%s names GGUF's settings", a->gguf_option);
    } else if (a->no_quant) {
        c->format = QC_FMT_FAKE;
        snprintf(c->reason, sizeof c->reason, "no weight is quantized (--method smoothquant without --wbits): the "
                 "smoothed fp32 weights in the input's format");
    } else {
        char why[192];
        if (gptq_refuses(a, why, sizeof why)) {
            c->format = QC_FMT_FAKE;
            snprintf(c->reason, sizeof c->reason, "%s; fake holds every setting asked for, as dequantized weights in "
                     "the input's format (--format gguf or llama2c for a quantized file)", why);
        } else {
            snprintf(c->reason, sizeof c->reason, "the default: GPTQ safetensors hold every setting asked for "
                     "(--format gguf, awq, llama2c or fake for other runtimes)");
        }
    }
    if (c->format == QC_FMT_GPTQ && a->percdamp_from && !(a->percdamp > 0 && a->percdamp < 1))
        return qc_fail(e, QC_ERR_ARG, "--format gptq records the damping as damp_percent, which loaders require in "
                       "(0, 1): %s %g contradicts it", a->percdamp_from, a->percdamp);
    if (c->format == QC_FMT_GGUF) return gguf_type(a, a->format ? "--format gguf" : a->gguf_option, c, e);
    return QC_OK;
}

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
