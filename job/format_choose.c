/* format_choose.c — the file a quantize run writes: --format when given, else the rule below
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
 * GGUF's linear type: --gguf-type (a K-quant mix or type: its default type, settings given
 * must be the type's own), else from the settings given: 8 bits → q8_0; 4 bits (or
 * none given) → q4_1 when asymmetry was asked for explicitly (a recipe's "sym": false), else
 * q4_0, GGUF's usual type. A setting given explicitly that the chosen format or type cannot
 * hold is an error naming both (QC_ERR_ARG): --format gguf with --groupsize 128, --gguf-type
 * q4_1 with --sym, --gguf-type with --format gptq, --format gptq with --percdamp 0. The other
 * formats' own limits (awq, llama2c) are their rows' spec rules (formats.c); rule 3 reads the
 * gptq row (its bit widths, its embedding). */
#include "job/job.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How a setting was given, for messages: "--wbits 3", "--sym", "the recipe's sym false". */
static const char *given_text(const qc_given *g, bool boolean, char *buf, size_t size) {
    if (boolean && !strncmp(g->from, "--", 2)) snprintf(buf, size, "%s", g->from); /* a flag */
    else if (boolean) snprintf(buf, size, "%s %s", g->from, g->value ? "true" : "false");
    else snprintf(buf, size, "%s %d", g->from, g->value);
    return buf;
}

/* A K-quant --gguf-type (a mix, or a single type): the mix's default type; settings given must
 * be the type's own (bits Q<bits>_K, its sub-block as groupsize, its symmetry). */
static qc_status gguf_kquant(const qc_format_ask *a, const qc_gguf_mix *mix, qc_format_choice *c, qc_err *e) {
    char t[96];
    c->gguf_mix = mix;
    c->gguf_type = qc_gguf_mix_default(mix);
    int bits = qc_gguf_k_bits(c->gguf_type), sub = qc_kquant_sub(bits);
    bool sym = !qc_kquant_has_mins(bits);
    if (a->bits.from && a->bits.value != bits)
        return qc_fail(e, QC_ERR_ARG, "--gguf-type %s's linears are %s by default (a recipe rule's bits choose another "
                       "type per module): %s contradicts it", a->gguf_type, qc_gguf_type_name(c->gguf_type),
                       given_text(&a->bits, false, t, sizeof t));
    if (a->groupsize.from && a->groupsize.value != sub)
        return qc_fail(e, QC_ERR_ARG, "--gguf-type %s stores sub-blocks of %d in super-blocks of 256: %s contradicts it",
                       a->gguf_type, sub, given_text(&a->groupsize, false, t, sizeof t));
    if (a->sym.from && a->sym.value != sym)
        return qc_fail(e, QC_ERR_ARG, "--gguf-type %s is %s: %s contradicts it", a->gguf_type,
                       sym ? "symmetric" : "asymmetric (with mins)", given_text(&a->sym, true, t, sizeof t));
    return QC_OK;
}

/* GGUF's linear type for what was given; `how` names what chose GGUF ("--format gguf"). */
static qc_status gguf_type(const qc_format_ask *a, const char *how, qc_format_choice *c, qc_err *e) {
    char t[96];
    const qc_gguf_mix *mix = a->gguf_type ? qc_gguf_mix_find(a->gguf_type) : NULL;
    if (mix) return gguf_kquant(a, mix, c, e);
    if (a->groupsize.from && a->groupsize.value != qc_format_row_of(QC_FMT_GGUF)->groupsize)
        return qc_fail(e, QC_ERR_ARG, "%s stores blocks of 32: %s contradicts it", how,
                       given_text(&a->groupsize, false, t, sizeof t));
    if (a->gguf_type) {
        if (!qc_gguf_type_parse(a->gguf_type, &c->gguf_type) ||
            (c->gguf_type != QC_GGUF_Q4_0 && c->gguf_type != QC_GGUF_Q4_1 && c->gguf_type != QC_GGUF_Q8_0))
            return qc_fail(e, QC_ERR_ARG, "--gguf-type '%s': expected q4_0, q4_1, q8_0, a K-quant (q3_k, q4_k, q5_k) or "
                           "llama.cpp's mixes q2_k, q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k (for "
                           "f16/f32 files: qcalib convert --to gguf)", a->gguf_type);
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

/* Rule 3: what GPTQ cannot hold (its row's bit widths and embedding), said into why; false
 * when it holds everything. */
static bool gptq_refuses(const qc_format_ask *a, char *why, size_t size) {
    const qc_format_row *g = qc_format_row_of(QC_FMT_GPTQ);
    char t[96];
    if (a->embed_bits.from && !g->embed) {
        snprintf(why, size, "%s quantizes the token embedding, which GPTQ files keep in fp16",
                 given_text(&a->embed_bits, false, t, sizeof t));
        return true;
    }
    if (a->bits.from && !qc_format_holds_bits(g, a->bits.value)) {
        snprintf(why, size, "GPTQ files store %s bits, not %s", g->bits_text, given_text(&a->bits, false, t, sizeof t));
        return true;
    }
    if (a->percdamp_from && !(a->percdamp > 0 && a->percdamp < 1)) {
        snprintf(why, size, "GPTQ configs record a damping 0 < damp_percent < 1 (AutoGPTQ's rule), not %s %g",
                 a->percdamp_from, a->percdamp);
        return true;
    }
    for (int i = 0; a->recipe && i < a->recipe->nrules; i++) {
        const qc_recipe_rule *r = &a->recipe->rules[i];
        if (!r->skip && r->bits != QC_RECIPE_UNSET && !qc_format_holds_bits(g, r->bits)) {
            snprintf(why, size, "GPTQ files store %s bits, not the %d bits the recipe gives %s", g->bits_text, r->bits,
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

