/* formats.c — the table of output formats: one row per format a run writes (gptq, awq, gguf,
 * llama2c, fake) and the one convert writes (hf), each saying which quantizer settings the
 * format holds (bits, group sizes, symmetry, how its scales are stored), its defaults,
 * whether it holds a quantized embedding or biases, its padding rule, its writer and what
 * reads it back, how its file's bits per weight are counted, and for the formats convert
 * writes (hf, gguf, llama2c) the full-precision writer and the types it stores. The rules that cannot be a
 * field are the row's functions, defined above the table in the row's order; a new format is
 * a new row and nothing else (GGUF's K-quants are types of the gguf row: its functions ask
 * io/gguf_mix.c's table which type each tensor of a mix gets).
 *
 * The spec rules (README "Output formats"): explicit settings the format cannot hold are
 * QC_ERR_ARG naming both; the solver quantizes with exactly what the file stores (fp16
 * scales, GGUF's fp16 d and m, GPTQ v1's zero points >= 1), so the file holds the weights the
 * solver compensated for. */
#include "job/internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- what every format shares ---- */

/* The settings as given, made a spec for a format storing any group size: bits (default 4),
 * groupsize (default 128; -1 or 0: one group per row), sym, mse. */
static qc_quant_spec given_spec(const qc_job *j) {
    const qc_job_settings *s = &j->s;
    int gs = s->groupsize == QC_JOB_UNSET ? j->fmt->default_groupsize : s->groupsize > 0 ? (int)s->groupsize : 0;
    return (qc_quant_spec){ .bits = s->wbits != QC_JOB_UNSET ? (int)s->wbits : j->fmt->default_bits, .groupsize = gs,
                            .sym = s->sym, .mse = s->mse, .f16_scales = j->fmt->f16_scales };
}

/* A linear's own spec in a format that stores any of its bit widths in any group (gptq, fake):
 * the run's spec with (bits, groupsize, sym) replaced. */
static qc_status any_module_spec(const qc_job *j, int bits, int gs, bool sym, qc_quant_spec *out, qc_err *e) {
    if (!j->fmt->per_linear)
        return qc_fail(e, QC_ERR_ARG, "--format %s holds one setting for every linear; per-module settings need --format "
                       "gptq, gguf or fake", j->fmt->name);
    if (!qc_format_holds_bits(j->fmt, bits))
        return qc_fail(e, QC_ERR_ARG, "--format %s stores %s bits, not %d", j->fmt->name, j->fmt->bits_text, bits);
    *out = j->base_spec;
    out->bits = bits, out->groupsize = gs > 0 ? gs : 0, out->sym = sym;
    return QC_OK;
}

/* The embedding in a format that holds any quantized one (fake): symmetric, bits as given. */
static qc_status any_embed_spec(qc_job *j, const qc_quant_spec *lin, qc_quant_spec *es, qc_err *e) {
    int gs = j->s.embed_groupsize == QC_JOB_UNSET ? 0 : (int)j->s.embed_groupsize;
    *es = (qc_quant_spec){ .bits = (int)j->s.embed_bits, .groupsize = gs, .sym = true };
    return QC_OK;
}

/* The embedding in a format that keeps it in fp16 (gptq, awq). */
static qc_status f16_embed_spec(qc_job *j, const qc_quant_spec *lin, qc_quant_spec *es, qc_err *e) {
    return qc_fail(e, QC_ERR_ARG, "--embed-bits: %s checkpoints keep the token embedding in fp16 (transformers and vLLM "
                   "load it so); --format gguf, llama2c or fake can hold a quantized one", j->fmt->label);
}

/* The model file in the folder being built; NULL: out of memory (said in e). */
static char *model_file(const qc_format_write *w, const char *name, qc_err *e) {
    char *path = qc_outdir_file(w->d, name);
    if (!path) qc_fail(e, QC_ERR_NOMEM, "out of memory");
    return path;
}

/* GPTQ and AWQ files: every weight that is not a quantized linear is F16 as read (the
 * embedding unless quantized; a tied classifier is not stored). */
static bool float_f16(const qc_format_run *r, qc_weight w, bool kept) {
    if (w == QC_W_CLASSIFIER && r->cfg->tied_classifier) return false;
    return !qc_weight_is_linear(w) ? w != QC_W_EMBED || r->opts->embed.bits == 0 : kept;
}

/* ---- gptq ---- */

static qc_status gptq_spec(qc_job *j, qc_quant_spec *sp, qc_err *e) {
    *sp = given_spec(j);
    sp->zero_from_one = strcmp(j->s.checkpoint_format, "v1") == 0;
    if (!qc_format_holds_bits(j->fmt, sp->bits))
        return qc_fail(e, QC_ERR_ARG, "--format gptq stores 2, 3, 4 or 8 bits; --wbits %d needs --format fake", sp->bits);
    return QC_OK;
}

static void gptq_describe(const qc_run_desc *d, cJSON *s) {
    cJSON_AddStringToObject(s, "checkpoint_format", d->checkpoint_format == 2 ? "v2" : "v1");
}

static qc_status gptq_write(const qc_format_write *w, qc_err *e) {
    const qc_calib_opts *o = &w->job->o;
    qc_gptq_export_opts go = { strcmp(w->job->s.checkpoint_format, "v2") == 0 ? 2 : 1, o->gptq.percdamp,
                               o->gptq.act_order, o->gptq.static_groups, o->true_sequential };
    return qc_gptq_export_into(w->src, w->d, &go, w->log, e);
}

/* The linears' bits in a GPTQ model.safetensors: their qweight, qzeros and scales tensors'
 * bytes (*with_index: with g_idx too), over the weights of the quantized linears. */
static qc_status gptq_bpw(const qc_outdir *d, const qc_config *c, const qc_module_quant *mods, double *bpw,
                          double *with_index, qc_err *e);

/* ---- awq ---- */

/* A folder with config.json (gptq, awq; fake unless the input is llama2.c's): what it can
 * describe of the model. */
static qc_status hf_config_check_model(const qc_format_run *r, qc_err *e) {
    return qc_hf_check_config(r->cfg, r->model, e);
}

static qc_status fake_check_model(const qc_format_run *r, qc_err *e) {
    return strcmp(qc_checkpoint_format(r->ck), "llama2.c") == 0 ? QC_OK : hf_config_check_model(r, e);
}

static qc_status awq_check_linear(const char *name, int rows, int cols, const qc_quant_spec *s, qc_err *e) {
    return qc_awq_check_shape(name, rows, cols, s->groupsize, e);
}

static qc_status awq_spec(qc_job *j, qc_quant_spec *sp, qc_err *e) {
    *sp = given_spec(j);
    if (sp->bits != 4) return qc_fail(e, QC_ERR_ARG, "--format awq is 4-bit only (AutoAWQ's GEMM layout)");
    if (j->s.act_order) return qc_fail(e, QC_ERR_ARG, "--format awq has no g_idx: --act-order results cannot be stored");
    return QC_OK;
}

/* Groups must tile rows of 8 packed codes: the group, or 8 groups when it is not a multiple of 8. */
static int awq_pad(const qc_quant_spec *s) {
    int g = s->groupsize > 0 ? s->groupsize : 1;
    return g % 8 ? g * 8 : g;
}

static qc_status awq_write(const qc_format_write *w, qc_err *e) { return qc_awq_export_into(w->src, w->d, w->log, e); }

/* ---- gguf ---- */

/* The solver settings whose results GGUF stores as block type t: q4_0, q4_1, q8_0, or the
 * K-quants' fallbacks q5_0, q5_1 (groups of 32; signed scales for q4_0 and q5_0), or a
 * K-quant Q<bits>_K (sub-blocks of 16 or 32 in super-blocks of 256, fitted by io/'s K-quant
 * fitter: round-to-nearest runs llama.cpp's reference quantizer, GPTQ its importance-weighted
 * one on the compensated weights, docs/kquant-gptq.md). */
static qc_quant_spec gguf_block_spec(qc_gguf_type t, bool mse) {
    if (qc_gguf_type_is_k(t)) {
        int bits = qc_gguf_k_bits(t);
        bool mins = qc_kquant_has_mins(bits);
        return (qc_quant_spec){ .bits = bits, .groupsize = qc_kquant_sub(bits), .sym = !mins,
                                .f16_scales = true, .store_min = mins, .kquant = qc_gguf_kquant_fit };
    }
    bool mins = t == QC_GGUF_Q4_1 || t == QC_GGUF_Q5_1;
    return (qc_quant_spec){ .bits = t == QC_GGUF_Q8_0 ? 8 : t == QC_GGUF_Q5_0 || t == QC_GGUF_Q5_1 ? 5 : 4, .groupsize = 32,
                            .sym = !mins, .mse = mse, .f16_scales = true, .store_min = mins,
                            .signed_scale = t == QC_GGUF_Q4_0 || t == QC_GGUF_Q5_0 };
}

/* The block type: qc_format_choose's, which checked it against the options. A K-quant mix's
 * embedding and output types depend on the model's width; qc_job_gguf_mix sets them once it
 * is open. */
static qc_status gguf_spec(qc_job *j, qc_quant_spec *sp, qc_err *e) {
    j->gguf_linear = j->chosen.gguf_type, j->gguf_embed = j->gguf_linear, j->gguf_mix = j->chosen.gguf_mix;
    if (j->s.gguf_embed_type && !qc_gguf_type_parse(j->s.gguf_embed_type, &j->gguf_embed))
        return qc_fail(e, QC_ERR_ARG, "--gguf-embed-type '%s': expected q4_0, q4_1, q8_0, q2_k..q6_k, f16 or f32",
                       j->s.gguf_embed_type);
    if (!qc_gguf_type_parse(j->s.gguf_output_type, &j->gguf_output))
        return qc_fail(e, QC_ERR_ARG, "--gguf-output-type '%s': expected q4_0, q4_1, q8_0, q2_k..q6_k, f16 or f32",
                       j->s.gguf_output_type);
    *sp = gguf_block_spec(j->gguf_linear, j->s.mse);
    if (j->gguf_mix && j->s.mse)
        return qc_fail(e, QC_ERR_ARG, "--gguf-type %s: K-quants choose their scales by llama.cpp's own search; --mse "
                       "does not apply", j->s.gguf_type);
    if (j->s.act_order && !j->s.static_groups)
        return qc_fail(e, QC_ERR_ARG, "--format gguf stores contiguous %s: --act-order needs --static-groups",
                       j->gguf_mix ? "256-wide K-quant super-blocks" : "32-wide blocks");
    return QC_OK;
}

/* A linear's own type. In a K-quant run a recipe rule's bits choose the type (2..6: Q<bits>_K,
 * 8: Q8_0; its groupsize and sym are then the type's own); else blocks of 32 as before. */
static qc_status gguf_module_spec(const qc_job *j, int bits, int gs, bool sym, qc_quant_spec *out, qc_err *e) {
    if (j->gguf_mix) {
        if ((bits < 2 || bits > 6) && bits != 8)
            return qc_fail(e, QC_ERR_ARG, "--gguf-type %s: a module's bits choose its type, 2..6 (Q2_K..Q6_K) or 8 "
                           "(Q8_0), not %d", j->s.gguf_type, bits);
        *out = gguf_block_spec(bits == 8 ? QC_GGUF_Q8_0 : (qc_gguf_type)(QC_GGUF_Q2_K + bits - 2), false);
        return QC_OK;
    }
    if (gs != j->fmt->groupsize || !qc_format_holds_bits(j->fmt, bits) || (bits == 8 && !sym))
        return qc_fail(e, QC_ERR_ARG, "--format gguf stores blocks of 32 as q4_0 (4-bit symmetric), q4_1 (4-bit) or "
                       "q8_0 (8-bit symmetric): %d bits in groups of %d%s cannot be stored", bits, gs,
                       sym ? " symmetric" : "");
    *out = gguf_block_spec(bits == 8 ? QC_GGUF_Q8_0 : sym ? QC_GGUF_Q4_0 : QC_GGUF_Q4_1, j->base_spec.mse);
    return QC_OK;
}

/* The type of a spec GGUF stores (the inverse of gguf_block_spec). */
static qc_gguf_type spec_type(const qc_quant_spec *s) {
    if (s->kquant) return (qc_gguf_type)(QC_GGUF_Q2_K + s->bits - 2);
    if (s->bits == 5) return s->store_min ? QC_GGUF_Q5_1 : QC_GGUF_Q5_0;
    return s->bits == 8 ? QC_GGUF_Q8_0 : s->store_min ? QC_GGUF_Q4_1 : QC_GGUF_Q4_0;
}

/* Where a tensor whose rows are not whole blocks of its type goes: llama.cpp's fallback
 * (reported: the console and summary.json), or, when not even that fits (llama.cpp would
 * write F16), an error naming the tensor and the widening that makes it fit. */
static qc_status gguf_fit(qc_job *j, const char *tensor, int cols, qc_gguf_type *t, qc_err *e) {
    const char *fb_name = NULL;
    int fb = qc_gguf_fallback(*t, cols, &fb_name);
    if (fb == (int)*t) return QC_OK;
    if (fb < 0)
        return qc_fail(e, QC_ERR_ARG, "%s: rows of %d values are not whole %d-value blocks of %s, and %s "
                       "(llama.cpp's fallback for it) does not fit either; widen the model first: qcalib convert "
                       "--pad-to 256", tensor, cols, qc_gguf_type_block(*t), qc_gguf_type_name(*t), fb_name);
    qc_logf(j->log, QC_LOG_WARN, "%s: rows of %d are not whole %d-blocks of %s: %s instead (llama.cpp's fallback)", tensor,
            cols, qc_gguf_type_block(*t), qc_gguf_type_name(*t), fb_name);
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "tensor", tensor) ||
        !cJSON_AddStringToObject(o, "type", qc_gguf_type_name(*t)) || !cJSON_AddStringToObject(o, "fallback", fb_name) ||
        !cJSON_AddItemToArray(j->gguf_fallbacks, o)) {
        cJSON_Delete(o);
        return qc_fail(e, QC_ERR_NOMEM, "out of memory");
    }
    *t = (qc_gguf_type)fb;
    return QC_OK;
}

qc_status qc_job_gguf_mix(qc_job *j, const qc_config *c, qc_err *e) {
    if (!j->gguf_mix) return QC_OK;
    cJSON_Delete(j->gguf_fallbacks);
    if (!(j->gguf_fallbacks = cJSON_CreateArray())) return qc_fail(e, QC_ERR_NOMEM, "out of memory");
    char name[96];
    qc_status st = QC_OK;
    for (int l = 0; l < c->n_layers && !st; l++)
        for (int lin = 0; lin < QC_LIN_COUNT && !st; lin++) {
            qc_module_quant *mq = &j->mods[(size_t)l * QC_LIN_COUNT + lin];
            qc_weight w = qc_linear_weight((qc_linear)lin);
            if (mq->keep_f16 || j->o.keep_f16[lin]) continue; /* a recipe's skip, --gguf-no-pad */
            qc_gguf_type t = mq->pinned ? spec_type(&mq->spec) : qc_gguf_mix_type(j->gguf_mix, c, w, l);
            int rows, cols;
            qc_weight_shape(c, w, &rows, &cols);
            qc_gguf_tensor_name(w, l, name, sizeof name);
            if (j->s.target_bpw > 0 && !mq->pinned && cols % QC_KQ_SUPER != 0) /* its candidates are K-quants */
                st = qc_fail(e, QC_ERR_ARG, "--target-bpw with --gguf-type %s chooses among Q3_K..Q6_K, which need rows "
                             "of whole 256-value super-blocks: %s has rows of %d (qcalib convert --pad-to 256)",
                             j->s.gguf_type, name, cols);
            else if (!(st = gguf_fit(j, name, cols, &t, e))) mq->spec = gguf_block_spec(t, false);
        }
    /* the embedding and output (read and quantized by the writer), unless given */
    qc_gguf_type et = qc_gguf_mix_type(j->gguf_mix, c, QC_W_EMBED, 0), ot = qc_gguf_mix_type(j->gguf_mix, c, QC_W_CLASSIFIER, 0);
    if (!st && !j->s.gguf_embed_type && !j->s.embed_bits && !(st = gguf_fit(j, "token_embd.weight", c->dim, &et, e)))
        j->gguf_embed = et;
    if (!st && !j->given.gguf_output_type && !(st = gguf_fit(j, "output.weight", c->dim, &ot, e))) j->gguf_output = ot;
    /* GPTQ calibrates the two into their types too (calib/classifier.c, calib/embedding.c) */
    bool gptq = qc_method_info_of(j->o.method)->gptq;
    if (!st && gptq && qc_gguf_type_block(j->gguf_output) > 1) j->o.classifier = gguf_block_spec(j->gguf_output, false);
    if (!st && gptq && !j->s.embed_bits && qc_gguf_type_block(j->gguf_embed) > 1)
        j->o.embed = gguf_block_spec(j->gguf_embed, false), j->o.embed_gptq = true;
    j->desc.gguf_embed = j->gguf_embed, j->desc.gguf_output = j->gguf_output;
    return st;
}

static qc_status gguf_embed_spec(qc_job *j, const qc_quant_spec *lin, qc_quant_spec *es, qc_err *e) {
    long bits = j->s.embed_bits;
    if (bits != 4 && bits != 8) return qc_fail(e, QC_ERR_ARG, "--format gguf: --embed-bits 4 (q4_0) or 8 (q8_0)");
    if (j->s.embed_groupsize != QC_JOB_UNSET && j->s.embed_groupsize != 32)
        return qc_fail(e, QC_ERR_ARG, "--format gguf: the embedding is in blocks of 32 (--embed-groupsize 32)");
    if (j->s.gguf_embed_type)
        return qc_fail(e, QC_ERR_ARG, "--embed-bits and --gguf-embed-type both set the embedding's type; give one");
    j->gguf_embed = bits == 4 ? QC_GGUF_Q4_0 : QC_GGUF_Q8_0;
    *es = (qc_quant_spec){ .bits = (int)bits, .groupsize = 32, .sym = true, .f16_scales = true, .signed_scale = bits == 4 };
    return QC_OK;
}

/* FFN widths padded to 32: the legacy types' blocks, and the K-quants' fallbacks. */
static int gguf_pad(const qc_quant_spec *s) { return 32; }

static qc_status gguf_check_model(const qc_format_run *r, qc_err *e) {
    return qc_gguf_check_export(r->cfg, r->gguf, r->model, e);
}

static qc_status gguf_check_linear(const char *name, int rows, int cols, const qc_quant_spec *s, qc_err *e) {
    if (s->kquant && cols % QC_KQ_SUPER == 0) return QC_OK;
    if (s->kquant)
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: rows of %d values are not whole super-blocks of %d (Q%d_K); widen the "
                       "model first: qcalib convert --pad-to 256", name, cols, QC_KQ_SUPER, s->bits);
    if (s->groupsize == 32 && cols % 32 == 0) return QC_OK;
    return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: rows of %d values in groups of %d are not whole 32-wide blocks (%s)", name,
                   cols, s->groupsize, cols % 32 ? "--gguf-no-pad keeps such linears F16" : "groups of 32 only");
}

/* Its F16 embedding or output types, and the linears it keeps (as F16). */
static bool gguf_f16(const qc_format_run *r, qc_weight w, bool kept) {
    if (w == QC_W_EMBED) return r->opts->embed.bits == 0 && r->gguf->embed_type == QC_GGUF_F16;
    if (w == QC_W_CLASSIFIER) return r->gguf->output_type == QC_GGUF_F16;
    return qc_weight_is_linear(w) && kept;
}

static void gguf_describe(const qc_run_desc *d, cJSON *s) {
    cJSON_AddStringToObject(s, "gguf_type", qc_gguf_type_name(d->gguf_linear));
    cJSON_AddStringToObject(s, "gguf_embed_type", qc_gguf_type_name(d->gguf_embed));
    cJSON_AddStringToObject(s, "gguf_output_type", qc_gguf_type_name(d->gguf_output));
    cJSON_AddBoolToObject(s, "gguf_no_pad", d->gguf_no_pad);
    if (d->gguf_mix) cJSON_AddStringToObject(s, "gguf_mix", qc_gguf_mix_name(d->gguf_mix));
}

static qc_status gguf_write(const qc_format_write *w, qc_err *e) {
    char *path = model_file(w, "model.gguf", e);
    if (!path) return QC_ERR_NOMEM;
    qc_gguf_export_opts go = { QC_GGUF_F16, w->job->gguf_embed, w->job->gguf_output, w->tok, w->model_name,
                               w->job->gguf_mix ? qc_gguf_mix_ftype(w->job->gguf_mix) : 0 };
    qc_status st = qc_gguf_export(w->src, path, &go, w->log, e);
    free(path);
    return st;
}

/* The linears' bits in a model.gguf: each one's block type (F16 for one kept), over their weights. */
static qc_status gguf_bpw(const qc_outdir *d, const qc_config *c, const qc_module_quant *mods, double *bpw,
                          double *with_index, qc_err *e);

/* ---- llama2c ---- */

static qc_status llama2c_spec(qc_job *j, qc_quant_spec *sp, qc_err *e) {
    const qc_job_settings *s = &j->s;
    if (s->wbits != QC_JOB_UNSET && s->wbits != 8)
        return qc_fail(e, QC_ERR_ARG, "--format llama2c is 8-bit: --wbits %ld contradicts it", s->wbits);
    if (s->groupsize != QC_JOB_UNSET && s->groupsize < 1)
        return qc_fail(e, QC_ERR_ARG, "--format llama2c needs groups: --groupsize N > 0");
    if (s->act_order && !s->static_groups)
        return qc_fail(e, QC_ERR_ARG, "--format llama2c stores contiguous groups: --act-order needs --static-groups");
    *sp = (qc_quant_spec){ .bits = 8, .groupsize = s->groupsize != QC_JOB_UNSET ? (int)s->groupsize : j->fmt->default_groupsize,
                           .sym = true, .mse = s->mse };
    return QC_OK;
}

static qc_status llama2c_embed_spec(qc_job *j, const qc_quant_spec *lin, qc_quant_spec *es, qc_err *e) {
    if (j->s.embed_bits != 8) return qc_fail(e, QC_ERR_ARG, "--format llama2c is 8-bit: --embed-bits 8");
    if (j->s.embed_groupsize != QC_JOB_UNSET && j->s.embed_groupsize != lin->groupsize)
        return qc_fail(e, QC_ERR_ARG, "--format llama2c has one group size: --embed-groupsize must be --groupsize (%d)",
                       lin->groupsize);
    *es = (qc_quant_spec){ .bits = 8, .groupsize = lin->groupsize, .sym = true };
    return QC_OK;
}

static int llama2c_pad(const qc_quant_spec *s) { return s->groupsize > 0 ? s->groupsize : 1; }

static qc_status llama2c_check_model(const qc_format_run *r, qc_err *e) {
    return qc_llama2c_q8_check(r->cfg, r->model, r->opts->spec.groupsize, e);
}

static qc_status llama2c_write(const qc_format_write *w, qc_err *e) {
    char *path = model_file(w, "model.bin", e);
    if (!path) return QC_ERR_NOMEM;
    qc_status st = qc_llama2c_q8_export(w->src, path, w->job->o.spec.groupsize, w->log, e);
    free(path);
    return st;
}

/* ---- fake: the dequantized weights in the input's own format ---- */

static qc_status fake_spec(qc_job *j, qc_quant_spec *sp, qc_err *e) {
    *sp = given_spec(j);
    return QC_OK;
}

static qc_status hf_write(const qc_format_write *w, qc_err *e);

static qc_status fake_write(const qc_format_write *w, qc_err *e) {
    if (strcmp(qc_checkpoint_format(w->ck), "llama2.c") != 0) return hf_write(w, e);
    char *path = model_file(w, "model.bin", e);
    if (!path) return QC_ERR_NOMEM;
    qc_status st = qc_llama2c_export(w->src, path, w->log, e);
    free(path);
    return st;
}

/* ---- hf: a Hugging Face folder in full precision ---- */

static qc_status hf_write(const qc_format_write *w, qc_err *e) {
    qc_hf_export_opts ho = { QC_DT_F32, 0 }; /* F32 keeps the dequantized weights exact */
    return qc_hf_export_into(w->src, w->d, &ho, w->log, e);
}

/* ---- full precision (convert) ---- */

/* A Hugging Face folder, with the model's tokenizer when it has one. */
static qc_status hf_convert(const qc_convert_write *w, qc_err *e) {
    qc_hf_export_opts o = { w->t->dtype, (size_t)w->s->shard_mb << 20 };
    qc_tokenizer tok = { 0 };
    qc_outdir d = { 0 };
    bool found;
    qc_status st = qc_checkpoint_find_tokenizer(w->s->tokenizer, w->ck, &tok, &found, e);
    if (!st && !found) qc_logf(w->log, QC_LOG_WARN, "%s: the folder gets no tokenizer (pass --tokenizer FILE)", e->msg);
    if (!st) st = qc_outdir_open(&d, w->s->out, w->s->force, e);
    if (!st) st = qc_hf_export_into(w->src, &d, &o, w->log, e);
    if (!st && found) st = qc_tokenizer_write_into(&tok, &d, true, e);
    st = st ? (qc_outdir_abort(&d), st) : qc_outdir_commit(&d, e);
    qc_tokenizer_free(&tok);
    return st;
}

/* One .gguf, every tensor F32 or F16, the vocabulary embedded. */
static qc_status gguf_convert(const qc_convert_write *w, qc_err *e) {
    qc_tokenizer tok = { 0 };
    qc_gguf_type t = w->t->dtype == QC_DT_F16 ? QC_GGUF_F16 : QC_GGUF_F32;
    qc_status st = qc_checkpoint_require_tokenizer(w->s->tokenizer, w->ck, &tok, e);
    qc_gguf_export_opts o = { t, t, t, &tok, w->s->model, 0 };
    if (!st) st = qc_gguf_export(w->src, w->s->out, &o, w->log, e);
    qc_tokenizer_free(&tok);
    return st;
}

/* llama2.c's legacy fp32 .bin. */
static qc_status llama2c_convert(const qc_convert_write *w, qc_err *e) {
    return qc_llama2c_export(w->src, w->s->out, w->log, e);
}

/* ---- the table ---- */

#define ALL_BITS (QC_BITS(2) | QC_BITS(3) | QC_BITS(4) | QC_BITS(5) | QC_BITS(6) | QC_BITS(7) | QC_BITS(8))

static const qc_format_row rows[QC_FMT_COUNT] = {
    [QC_FMT_FAKE] = {
        .format = QC_FMT_FAKE, .name = "fake", .label = "fake-quant", .quantized = true,
        .bits = ALL_BITS, .bits_text = "2 to 8", .groupsize = 0, .f16_scales = false,
        .per_linear = true, .keeps_f16 = true, .fused = false, .default_bits = 4, .default_groupsize = 128,
        .embed = true, .bias = false,
        .spec = fake_spec, .module_spec = any_module_spec, .embed_spec = any_embed_spec, .pad = NULL,
        .check_model = fake_check_model, .write = fake_write, .reader = "the input's format: llama2.c .bin or a Hugging Face folder (F32)",
        .carries_vocab = false, .tokenizer_json = -1,
    },
    [QC_FMT_GPTQ] = {
        .format = QC_FMT_GPTQ, .name = "gptq", .label = "GPTQ", .quantized = true,
        .bits = QC_BITS(2) | QC_BITS(3) | QC_BITS(4) | QC_BITS(8), .bits_text = "2, 3, 4 or 8", .groupsize = 0,
        .f16_scales = true, .per_linear = true, .keeps_f16 = true, .fused = true, .default_bits = 4,
        .default_groupsize = 128, .embed = false, .bias = false,
        .spec = gptq_spec, .module_spec = any_module_spec, .embed_spec = f16_embed_spec, .pad = NULL,
        .needs_quantized = true, .check_model = hf_config_check_model, .stored_f16 = float_f16, .describe = gptq_describe,
        .write = gptq_write, .reader = "safetensors with quantization_config \"gptq\" (qweight, qzeros, scales, g_idx)",
        .carries_vocab = false, .tokenizer_json = 1,
        .bpw = gptq_bpw, .bpw_note = " (g_idx apart)", .bpw_index = true,
    },
    [QC_FMT_AWQ] = {
        .format = QC_FMT_AWQ, .name = "awq", .label = "AWQ", .quantized = true,
        .bits = QC_BITS(4), .bits_text = "4", .groupsize = 0, .f16_scales = true,
        .per_linear = false, .keeps_f16 = false, .fused = false, .default_bits = 4, .default_groupsize = 128,
        .embed = false, .bias = false,
        .spec = awq_spec, .module_spec = any_module_spec, .embed_spec = f16_embed_spec, .pad = awq_pad,
        .check_model = hf_config_check_model, .check_linear = awq_check_linear, .stored_f16 = float_f16,
        .write = awq_write, .reader = "safetensors with quantization_config \"awq\" (AutoAWQ's GEMM layout)",
        .carries_vocab = false, .tokenizer_json = 1,
    },
    [QC_FMT_GGUF] = {
        .format = QC_FMT_GGUF, .name = "gguf", .label = "GGUF", .quantized = true,
        .bits = QC_BITS(4) | QC_BITS(8), .bits_text = "4 or 8", .groupsize = 32, .f16_scales = true,
        .per_linear = true, .keeps_f16 = true, .fused = false, .default_bits = 4, .default_groupsize = 32,
        .embed = true, .bias = false,
        .spec = gguf_spec, .module_spec = gguf_module_spec, .embed_spec = gguf_embed_spec, .pad = gguf_pad,
        .pad_optional = true, .check_model = gguf_check_model, .check_linear = gguf_check_linear, .stored_f16 = gguf_f16,
        .describe = gguf_describe, .write = gguf_write,
        .reader = "GGUF v3 (q4_0, q4_1, q5_0, q5_1, q8_0, q2_k..q6_k, f16, f32 tensors; the vocabulary in llama2.c's "
                  "layout)",
        .carries_vocab = true, .tokenizer_json = 1,
        .bpw = gguf_bpw, .bpw_note = "", .bpw_index = false,
        .convert = gguf_convert, .convert_dtypes = QC_BITS(QC_DT_F32) | QC_BITS(QC_DT_F16), .reads_as = "gguf",
    },
    [QC_FMT_LLAMA2C] = {
        .format = QC_FMT_LLAMA2C, .name = "llama2c", .label = "llama2.c int8", .quantized = true,
        .bits = QC_BITS(8), .bits_text = "8", .groupsize = 0, .f16_scales = false,
        .per_linear = false, .keeps_f16 = false, .fused = false, .default_bits = 8, .default_groupsize = 64,
        .embed = true, .bias = false,
        .spec = llama2c_spec, .module_spec = any_module_spec, .embed_spec = llama2c_embed_spec, .pad = llama2c_pad,
        .check_model = llama2c_check_model,
        .write = llama2c_write, .reader = "llama2.c's version 2 (int8) .bin",
        .carries_vocab = false, .tokenizer_json = 0,
        .convert = llama2c_convert, .convert_dtypes = QC_BITS(QC_DT_F32), .reads_as = "llama2.c",
    },
    [QC_FMT_HF] = {
        .format = QC_FMT_HF, .name = "hf", .label = "Hugging Face", .quantized = false,
        .bits = 0, .bits_text = "no", .embed = false, .bias = false,
        .write = hf_write, .reader = "safetensors (F32, F16, BF16) with config.json",
        .carries_vocab = false, .tokenizer_json = 1,
        .convert = hf_convert, .convert_dtypes = QC_BITS(QC_DT_F32) | QC_BITS(QC_DT_F16) | QC_BITS(QC_DT_BF16),
        .convert_folder = true, .reads_as = "hf-safetensors",
    },
};

bool qc_format_holds_bits(const qc_format_row *f, int bits) {
    return bits >= 0 && bits < 32 && (f->bits & QC_BITS(bits));
}

const qc_format_row *qc_format_row_of(qc_out_format f) { return (int)f >= 0 && f < QC_FMT_COUNT ? &rows[f] : NULL; }

const char *qc_out_format_name(qc_out_format f) { return (int)f >= 0 && f < QC_FMT_COUNT ? rows[f].name : "?"; }

bool qc_out_format_parse(const char *name, qc_out_format *f) {
    for (int i = 0; i < QC_FMT_COUNT; i++)
        if (rows[i].quantized && !strcmp(name, rows[i].name)) return *f = (qc_out_format)i, true;
    return false;
}

qc_status qc_job_module_spec(void *job, int bits, int gs, bool sym, qc_quant_spec *out, qc_err *e) {
    const qc_job *j = job;
    return j->fmt->module_spec(j, bits, gs, sym, out, e);
}

qc_status qc_job_observe_spec(const qc_job *j, qc_quant_spec *up, qc_err *e) {
    const qc_quant_spec *o = &j->o.spec;
    qc_err ignored;
    if (qc_job_module_spec((void *)j, 8, o->groupsize, o->sym, up, &ignored) || up->bits != 8 ||
        (up->groupsize != o->groupsize && !j->gguf_mix)) /* a mix's Q8_0 is one more type */
        return qc_fail(e, QC_ERR_ARG, "--observe requantizes linears at 8 bits in groups of %d, which --format %s "
                       "cannot store beside the others", o->groupsize, j->fmt->name);
    return QC_OK;
}

bool qc_job_tokenizer_json(const qc_job *j, const qc_checkpoint *ck) {
    return j->fmt->tokenizer_json >= 0 ? j->fmt->tokenizer_json : strcmp(qc_checkpoint_format(ck), "llama2.c") != 0;
}

/* ---- bits per weight as written ---- */

/* The weights of the linears that are quantized (mods' keep_f16 apart). */
static double quantized_weights(const qc_config *c, const qc_module_quant *mods) {
    double weights = 0;
    for (int l = 0; l < c->n_layers; l++)
        for (int lin = 0; lin < QC_LIN_COUNT; lin++) {
            int rows_, cols;
            qc_weight_shape(c, qc_linear_weight(lin), &rows_, &cols);
            if (!mods || !mods[(size_t)l * QC_LIN_COUNT + lin].keep_f16) weights += (double)rows_ * cols;
        }
    return weights;
}

static qc_status gptq_bpw(const qc_outdir *d, const qc_config *c, const qc_module_quant *mods, double *bpw,
                          double *with_index, qc_err *e) {
    double bits = 0, gidx = 0;
    char *path = qc_outdir_file(d, "model.safetensors");
    qc_safetensors_file f;
    qc_status st = path ? qc_safetensors_open(&f, path, e) : qc_fail(e, QC_ERR_NOMEM, "out of memory");
    free(path);
    if (st) return st;
    for (int i = 0; i < f.ntensors; i++) {
        const char *n = f.tensors[i].name;
        if (qc_str_ends_with(n, ".qweight") || qc_str_ends_with(n, ".qzeros") || qc_str_ends_with(n, ".scales"))
            bits += 8.0 * f.tensors[i].nbytes;
        else if (qc_str_ends_with(n, ".g_idx")) gidx += 8.0 * f.tensors[i].nbytes;
    }
    qc_safetensors_close(&f);
    double weights = quantized_weights(c, mods);
    *bpw = bits / weights;
    *with_index = (bits + gidx) / weights;
    return QC_OK;
}

static qc_status gguf_bpw(const qc_outdir *d, const qc_config *c, const qc_module_quant *mods, double *bpw,
                          double *with_index, qc_err *e) {
    double bits = 0;
    char *path = qc_outdir_file(d, "model.gguf");
    qc_checkpoint *ck = NULL;
    qc_status st = path ? qc_checkpoint_open(&ck, path, e) : qc_fail(e, QC_ERR_NOMEM, "out of memory");
    free(path);
    if (st) return st;
    for (int l = 0; l < c->n_layers && !st; l++)
        for (int lin = 0; lin < QC_LIN_COUNT && !st; lin++) {
            int rows_, cols;
            qc_weight_shape(qc_checkpoint_config(ck), qc_linear_weight(lin), &rows_, &cols);
            /* a block type's name, or a float tensor's dtype (F16, F32) */
            const char *t = qc_checkpoint_qtype(ck, qc_linear_weight(lin), l);
            qc_gguf_type ty;
            if (!qc_gguf_type_parse(t ? t : qc_dtype_name(qc_checkpoint_dtype(ck, qc_linear_weight(lin), l)), &ty))
                st = qc_fail(e, QC_ERR_FORMAT, "%s: block %d %s has a type qcalib does not write", qc_checkpoint_path(ck),
                             l, qc_weight_short_name(qc_linear_weight(lin)));
            if (!st && (!mods || !mods[(size_t)l * QC_LIN_COUNT + lin].keep_f16))
                bits += qc_gguf_type_bits(ty) * rows_ * cols;
        }
    qc_checkpoint_close(ck);
    if (st) return st;
    double weights = quantized_weights(c, mods);
    *bpw = bits / weights;
    *with_index = bits / weights;
    return QC_OK;
}
