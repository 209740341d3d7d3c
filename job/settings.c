/* settings.c — a quantize run's settings made into a job: the recipe read and laid under the
 * flags (the flags are a shorthand for a recipe, and laid over one they win), every setting
 * checked against the others and against the output format (a contradiction is QC_ERR_ARG,
 * a usage error naming both), the format chosen (format_choose.c) and its row's solver
 * settings, and the run's description, from which recipe.json, summary.json and the resume
 * fingerprint come. */
#include "job/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void qc_job_settings_init(qc_job_settings *s) {
    *s = (qc_job_settings){
        .alpha = NAN, .wbits = QC_JOB_UNSET, .groupsize = QC_JOB_UNSET, .percdamp = NAN, .damp_retries = 4,
        .blocksize = QC_JOB_UNSET, .checkpoint_format = "v1", .embed_groupsize = QC_JOB_UNSET, .nsamples = 128,
        .act_dtype = "f32",
    };
}

/* The recipe's JSON: inline when it starts with '{', else a file. */
static qc_status load_recipe(qc_job *j, const char *arg, qc_err *e) {
    qc_recipe_init(&j->recipe);
    if (!arg) return QC_OK;
    const char *p = arg;
    while (*p == ' ' || *p == '\n' || *p == '\t') p++;
    if (*p == '{') return qc_recipe_parse(arg, strlen(arg), "--quantize", &j->recipe, e);
    char *buf = NULL;
    size_t len;
    qc_status st = qc_read_file(arg, (size_t)1 << 20, &buf, &len, e);
    if (!st) st = qc_recipe_parse(buf, len, arg, &j->recipe, e);
    free(buf);
    return st;
}

/* The recipe's settings where the flags left them unset, then the defaults. */
static void apply_recipe(qc_job *j) {
    const qc_recipe *r = &j->recipe;
    qc_job_settings *s = &j->s;
#define FROM(field, var, unset) if (r->field != QC_RECIPE_UNSET && s->var == (unset)) s->var = r->field
    FROM(bits, wbits, QC_JOB_UNSET);
    FROM(groupsize, groupsize, QC_JOB_UNSET);
    FROM(sym, sym, false);
    FROM(mse, mse, false);
    FROM(act_order, act_order, false);
    FROM(static_groups, static_groups, false);
    FROM(blocksize, blocksize, QC_JOB_UNSET);
    FROM(embed_bits, embed_bits, 0);
    FROM(embed_groupsize, embed_groupsize, QC_JOB_UNSET);
    FROM(observe, observe, 0);
#undef FROM
    if (r->act_bits > 0 && !s->act_quant) snprintf(j->act_text, sizeof j->act_text, "a%d", r->act_bits), s->act_quant = j->act_text;
    if (r->has_method && !s->method) s->method = qc_method_name(r->method);
    if (!isnan(r->percdamp) && isnan(s->percdamp)) s->percdamp = r->percdamp;
    if (!isnan(r->target_bpw) && !(s->target_bpw > 0)) s->target_bpw = r->target_bpw;
    if (r->true_sequential != QC_RECIPE_UNSET && !s->true_sequential && !s->no_true_sequential)
        s->no_true_sequential = !r->true_sequential;
    if (!s->method) s->method = "gptq";
    if (s->blocksize == QC_JOB_UNSET) s->blocksize = 128;
    if (isnan(s->percdamp)) s->percdamp = 0.01;
    if (isnan(s->alpha)) s->alpha = 0.5;
    if (!s->gguf_output_type) s->gguf_output_type = "q8_0";
}

qc_status qc_job_open(const qc_job_settings *s, qc_job **out, qc_err *e) {
    *out = NULL;
    qc_job *j = qc_calloc(1, sizeof *j, e, "the job");
    if (!j) return QC_ERR_NOMEM;
    j->from = s;
    qc_status st = load_recipe(j, s->recipe, e);
    if (st) {
        qc_job_free(j);
        return st;
    }
    *out = j;
    return QC_OK;
}

/* The output format (qc_format_choose), from the settings and the recipe as given. */
static qc_status choose_format(qc_job *j, bool no_quant, qc_err *e) {
    const qc_job_settings *s = &j->s, *g = &j->given;
    bool rsym = j->recipe.sym != QC_RECIPE_UNSET && !g->sym;
    qc_format_ask a = {
        .format = s->format, .gguf_type = s->gguf_type, .recipe = &j->recipe, .no_quant = no_quant,
        .gguf_option = s->gguf_type ? "--gguf-type" : s->gguf_embed_type ? "--gguf-embed-type" : g->gguf_output_type
                       ? "--gguf-output-type" : s->gguf_no_pad ? "--gguf-no-pad" : NULL,
        .bits = { (int)s->wbits, s->wbits == QC_JOB_UNSET ? NULL : g->wbits != QC_JOB_UNSET ? "--wbits" : "the recipe's bits" },
        .groupsize = { (int)s->groupsize, s->groupsize == QC_JOB_UNSET ? NULL : g->groupsize != QC_JOB_UNSET
                       ? "--groupsize" : "the recipe's groupsize" },
        .sym = { s->sym, g->sym ? "--sym" : rsym ? "the recipe's sym" : NULL },
        .embed_bits = { (int)s->embed_bits, !s->embed_bits ? NULL : g->embed_bits ? "--embed-bits"
                        : "the recipe's embedding bitwidth" },
        .percdamp = s->percdamp,
        .percdamp_from = !isnan(g->percdamp) ? "--percdamp" : isnan(j->recipe.percdamp) ? NULL : "the recipe's percdamp",
    };
    qc_status st = qc_format_choose(&a, &j->chosen, e);
    if (!st) j->fmt = qc_format_row_of(j->chosen.format);
    return st;
}

/* The token embedding's spec as the format stores it (embed_bits 0: none). */
static qc_status embed_spec(qc_job *j, qc_err *e) {
    j->o.embed = (qc_quant_spec){ 0 };
    if (!j->s.embed_bits) {
        if (j->s.embed_groupsize != QC_JOB_UNSET) return qc_fail(e, QC_ERR_ARG, "--embed-groupsize needs --embed-bits");
        return QC_OK;
    }
    return j->fmt->embed_spec(j, &j->o.spec, &j->o.embed, e);
}

#define ARG(...) qc_fail(e, QC_ERR_ARG, __VA_ARGS__)

/* The method's options against the method. */
static qc_status check_method(qc_job *j, qc_err *e) {
    qc_job_settings *s = &j->s;
    qc_calib_opts *o = &j->o;
    if (!qc_method_parse(s->method, &o->method))
        return ARG("--method '%s': expected gptq, rtn, awq, awq+gptq or smoothquant", s->method);
    const qc_method_info *mi = qc_method_info_of(o->method);
    bool gptq = mi->gptq, awq = mi->awq;
    if (!gptq && (s->act_order || s->static_groups))
        return ARG("--act-order and --static-groups are GPTQ options; --method %s has no column order", s->method);
    if (!awq && (s->awq_duo || s->awq_clip || s->no_awq_clip))
        return ARG("--awq-duo-scaling, --awq-clip and --no-awq-clip are options of --method awq and awq+gptq");
    if (s->awq_clip && s->no_awq_clip) return ARG("--awq-clip and --no-awq-clip exclude each other");
    if (awq && s->mse) return ARG("--mse is GPTQ's clip search; AWQ has its own (--awq-clip, the default)");
    if (mi->smooth && s->smooth > 0)
        return ARG("--method smoothquant takes its α from --alpha; --smooth is the pre-step of the other methods");
    double alpha = s->alpha;
    if (!mi->smooth && alpha != 0.5) return ARG("--alpha is --method smoothquant's; smooth before %s with --smooth A", s->method);
    o->smooth_alpha = mi->smooth ? (float)alpha : (float)s->smooth;
    if (mi->smooth && !(o->smooth_alpha > 0)) return ARG("--alpha must be above 0 for --method smoothquant");
    o->no_quant = mi->smooth && s->wbits == QC_JOB_UNSET;
    if (s->resume && qc_calib_rescales(o))
        return ARG("--resume covers --method gptq and rtn; AWQ and SmoothQuant runs are not checkpointed yet (their "
                   "per-block scales would be lost)");
    o->awq = (qc_awq_opts){ .duo_scaling = s->awq_duo, .clip = !s->no_awq_clip };
    if (s->propagate && strcmp(s->propagate, "fp32") != 0 && strcmp(s->propagate, "quantized") != 0)
        return ARG("--propagate '%s': expected fp32 or quantized", s->propagate);
    o->propagate_fp32 = s->propagate ? strcmp(s->propagate, "fp32") == 0 : o->method == QC_METHOD_AWQ;
    if (s->true_sequential && s->no_true_sequential)
        return ARG("--true-sequential and --no-true-sequential exclude each other");
    if (strcmp(s->checkpoint_format, "v1") != 0 && strcmp(s->checkpoint_format, "v2") != 0)
        return ARG("--checkpoint-format '%s': expected v1 or v2", s->checkpoint_format);
    return QC_OK;
}

/* The run's description: the checked options and the settings beside them (the inputs are
 * added once read). */
static void describe(qc_job *j) {
    const qc_job_settings *s = &j->s;
    j->desc = (qc_run_desc){ .opts = &j->o, .percdamp = s->percdamp, .format = j->fmt->format, .format_reason = j->chosen.reason,
                             .checkpoint_format = strcmp(s->checkpoint_format, "v2") == 0 ? 2 : 1,
                             .gguf_linear = j->gguf_linear, .gguf_embed = j->gguf_embed, .gguf_output = j->gguf_output,
                             .gguf_mix = j->gguf_mix,
                             .gguf_no_pad = s->gguf_no_pad, .act_bits = j->act_bits, .target_bpw = s->target_bpw,
                             .observe = (int)s->observe, .per_linear = s->per_linear, .calib = s->calib,
                             .ncalib = s->ncalib, .calib_tokens = s->calib_tokens, .seed = (uint64_t)s->seed };
}

qc_status qc_job_plan(qc_job *j, qc_err *e) {
    j->given = j->s = *j->from;
    apply_recipe(j);
    qc_job_settings *s = &j->s;
    qc_calib_opts *o = &j->o;
    qc_status st = check_method(j, e);
    if (st) return st;
    if ((st = choose_format(j, o->no_quant, e))) return st;
    if (o->no_quant && j->fmt->format != QC_FMT_FAKE)
        return ARG("--method smoothquant without --wbits writes fp32 weights: --format fake (the default), or give --wbits "
                   "to quantize");
    if (s->verify && !s->nevals) return ARG("--verify compares perplexities: give --eval FILE");
    if (strcmp(s->act_dtype, "f32") == 0) o->act_dtype = QC_DT_F32;
    else if (strcmp(s->act_dtype, "f16") == 0) o->act_dtype = QC_DT_F16;
    else if (strcmp(s->act_dtype, "bf16") == 0) o->act_dtype = QC_DT_BF16;
    else return ARG("--act-dtype '%s': expected f32, f16 or bf16", s->act_dtype);
    if (o->act_dtype != QC_DT_F32 && (qc_calib_rescales(o) || o->propagate_fp32))
        return ARG("--act-dtype %s is for gptq and rtn: AWQ and SmoothQuant search on fp32 activations", s->act_dtype);
    for (int i = 0; i < s->nevals; i++) /* read after calibrating: checked now */
        if (qc_path_check_readable(s->evals[i], e)) {
            char msg[sizeof e->msg];
            snprintf(msg, sizeof msg, "%s", e->msg);
            return ARG("--eval %s", msg);
        }
    if ((st = j->fmt->spec(j, &o->spec, e))) return st;
    bool awq = qc_method_info_of(o->method)->awq;
    /* AWQ quantizes with its own parameters where the format has zero points to hold them */
    o->spec.awq_range = awq && !o->spec.sym && !o->spec.store_min;
    o->gptq = qc_gptq_defaults();
    o->gptq.percdamp = (float)s->percdamp;
    o->gptq.blocksize = (int)s->blocksize;
    o->gptq.max_retries = (int)s->damp_retries;
    o->gptq.act_order = s->act_order;
    o->gptq.static_groups = s->static_groups;
    o->true_sequential = !s->no_true_sequential;
    if (s->act_quant && !qc_recipe_act_bits(s->act_quant, &j->act_bits))
        return ARG("--act-quant '%s': expected aN, N bits from 2 to 16 (a8: 8-bit activations)", s->act_quant);
    if ((st = embed_spec(j, e))) return st;
    if (s->resume && s->restart) return ARG("--resume and --restart exclude each other");
    bool choosing = s->target_bpw > 0 || s->observe;
    if (choosing && s->resume) return ARG("--resume covers single-pass runs; --target-bpw and --observe quantize twice");
    if (choosing && (o->no_quant || awq))
        return ARG("--target-bpw and --observe choose bits per linear: for --method gptq and rtn");
    if (s->target_bpw > 0 && s->observe) return ARG("--target-bpw and --observe are two ways of choosing; give one");
    if (s->per_linear && (!j->fmt->fused || !choosing))
        return ARG("--per-linear is for --format gptq with --target-bpw or --observe (other formats choose per linear "
                   "already)");
    j->base_spec = o->spec;
    qc_quant_spec up;
    if (s->observe && (st = qc_job_observe_spec(j, &up, e))) return st;
    if (s->target_bpw > 0 && !qc_job_mixed_candidates(j, NULL))
        return ARG("--target-bpw: --format %s stores none of the candidate settings (3, 4, 8 bits in groups of 32, 128); "
                   "--format gptq, gguf or fake", j->fmt->name);
    describe(j);
    qc_run_desc_recipe(&j->desc, &j->recipe);
    if (!(j->recipe_text = qc_recipe_dump(&j->recipe))) return qc_fail(e, QC_ERR_NOMEM, "out of memory");
    j->desc.recipe_text = j->recipe_text;
    return QC_OK;
}

const char *qc_job_recipe(const qc_job *j) { return j->recipe_text; }

qc_status qc_job_check_recipe(qc_job *j, qc_err *e) {
    qc_model *m = NULL;
    qc_status st = qc_model_open(&m, j->s.model, e);
    if (!st) st = qc_job_resolve_modules(j, m, e);
    qc_model_free(m);
    return st;
}
