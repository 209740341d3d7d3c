/* rundesc.c — the description of a quantize run (qc_run_desc): everything its result depends
 * on, made once from the checked options, the effective recipe and the inputs. What is
 * derived from it, so that no copy can leave a setting out:
 *   - the effective recipe (recipe.json, --dump-recipe): qc_run_desc_recipe;
 *   - summary.json's settings and inputs: qc_run_desc_json;
 *   - the resume fingerprint: qc_run_desc_fingerprint, every field of that JSON on a line.
 * Inputs are named by real path (./m.bin, /abs/m.bin and a symlink to it are one input) and
 * fingerprinted by content: the files read whole by their hash as read (config.json, a shard
 * index, each calibration text), the calibration windows by theirs; a model's tensors are
 * hashed as they are converted, block by block (model/'s qc_model_block_hash), which is what
 * the resume checks for each block it restores. */
#include "job/job.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void qc_run_desc_recipe(const qc_run_desc *d, qc_recipe *r) {
    const qc_calib_opts *o = d->opts;
    r->has_method = true, r->method = o->method;
    r->linear_key[0] = 0;
    r->bits = r->groupsize = r->sym = QC_RECIPE_UNSET;
    if (!o->no_quant) r->bits = o->spec.bits, r->groupsize = o->spec.groupsize > 0 ? o->spec.groupsize : 0, r->sym = o->spec.sym;
    r->act_bits = d->act_bits > 0 ? d->act_bits : QC_RECIPE_UNSET;
    bool embed = o->embed.bits > 0 && !o->embed_gptq; /* asked for, not a K-quant mix's (gguf_embed_type) */
    r->embed_bits = embed ? o->embed.bits : QC_RECIPE_UNSET;
    r->embed_groupsize = embed ? o->embed.groupsize : QC_RECIPE_UNSET;
    bool gptq = qc_method_info_of(o->method)->gptq;
    r->percdamp = gptq ? d->percdamp : NAN;
    r->blocksize = gptq ? o->gptq.blocksize : QC_RECIPE_UNSET;
    r->act_order = gptq ? o->gptq.act_order : QC_RECIPE_UNSET;
    r->static_groups = gptq ? o->gptq.static_groups : QC_RECIPE_UNSET;
    r->mse = o->spec.mse;
    r->true_sequential = o->true_sequential;
    r->target_bpw = d->target_bpw > 0 ? d->target_bpw : NAN;
    r->observe = d->observe > 0 ? d->observe : QC_RECIPE_UNSET;
}

/* path's real path into j under key (the path itself when it cannot be resolved). */
static void add_path(cJSON *j, const char *key, const char *path) {
    char *real = realpath(path, NULL);
    cJSON_AddStringToObject(j, key, real ? real : path);
    free(real);
}

static void add_hash(cJSON *j, const char *key, const char *what, uint64_t hash) {
    char text[640];
    snprintf(text, sizeof text, "%s%016llx", what, (unsigned long long)hash);
    cJSON_AddStringToObject(j, key, text);
}

static const char *act_dtype_name(qc_dtype t) { return t == QC_DT_F16 ? "f16" : t == QC_DT_BF16 ? "bf16" : "f32"; }

/* The inputs: the model's files (first: a changed file is named before what it changed) and
 * configuration, the calibration sources, the windows. */
static void add_inputs(const qc_run_desc *d, cJSON *in) {
    const qc_config *c = &d->model->cfg;
    char text[512];
    cJSON *files = cJSON_AddObjectToObject(in, "model_files");
    for (int i = 0; i < qc_checkpoint_nfiles(d->model->ck); i++) {
        const qc_ck_file *f = qc_checkpoint_file(d->model->ck, i);
        if (f->whole)
            snprintf(text, sizeof text, "%llu bytes, content hash %016llx", (unsigned long long)f->bytes,
                     (unsigned long long)f->hash);
        else
            snprintf(text, sizeof text, "%llu bytes, tensors hashed block by block as read", (unsigned long long)f->bytes);
        cJSON_AddStringToObject(files, f->path, text);
    }
    snprintf(text, sizeof text,
             "dim %d, ffn %d, layers %d, heads %d/%d of %d, vocab %d, context %d, eps %.9g, theta %.9g, tied %d, "
             "biases %d/%d, rope scaling %.9g/%.9g/%.9g of %d",
             c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->vocab_size, c->seq_len,
             c->norm_eps, c->rope_theta, c->tied_classifier, c->attn_qkv_bias, c->attn_o_bias, c->rope_factor,
             c->rope_low_freq_factor, c->rope_high_freq_factor, c->rope_original_ctx);
    if (c->rope_nfreqs > 0) /* the factors the RoPE pass applies, whether from parameters or a rope_freqs tensor */
        snprintf(text + strlen(text), sizeof text - strlen(text), ", rope_freqs %d hash %016llx", c->rope_nfreqs,
                 (unsigned long long)qc_hash64(QC_HASH64_SEED, c->rope_freqs, (size_t)c->rope_nfreqs * sizeof(float)));
    cJSON_AddStringToObject(in, "model_config", text);
    const qc_windows *w = d->windows;
    cJSON *src = cJSON_AddObjectToObject(in, "calib_files");
    for (int i = 0; i < w->nsources; i++) {
        const char *path = d->calib_tokens ? d->calib_tokens : i < d->ncalib ? d->calib[i] : "";
        char *real = realpath(path, NULL);
        add_hash(src, real ? real : path, "content hash ", w->source_hash[i]);
        free(real);
    }
    snprintf(text, sizeof text, "%d of %d tokens, hash ", w->n, w->seqlen);
    add_hash(in, "windows", text, qc_hash64(QC_HASH64_SEED, w->tokens, (size_t)w->n * w->seqlen * sizeof *w->tokens));
}

cJSON *qc_run_desc_json(const qc_run_desc *d) {
    const qc_calib_opts *o = d->opts;
    cJSON *s = cJSON_CreateObject();
    if (!s) return NULL;
    add_path(s, "model", qc_checkpoint_path(d->model->ck));
    cJSON_AddStringToObject(s, "model_format", qc_checkpoint_format(d->model->ck));
    cJSON_AddStringToObject(s, "format", qc_out_format_name(d->format));
    cJSON_AddStringToObject(s, "format_reason", d->format_reason);
    const qc_format_row *f = qc_format_row_of(d->format);
    if (f->describe) f->describe(d, s); /* the format's own settings */
    cJSON_AddNumberToObject(s, "ffn_width", d->model->cfg.hidden_dim);
    cJSON_AddStringToObject(s, "method", qc_method_name(o->method));
    cJSON_AddNumberToObject(s, "wbits", o->spec.bits);
    cJSON_AddNumberToObject(s, "groupsize", o->spec.groupsize > 0 ? o->spec.groupsize : -1);
    cJSON_AddBoolToObject(s, "sym", o->spec.sym);
    cJSON_AddBoolToObject(s, "mse", o->spec.mse);
    char spec[256]; /* what the format makes of them (qc_quant_spec), for the fingerprint's sake too */
    snprintf(spec, sizeof spec, "f16 scales %d, mins %d, signed scale %d, zero from one %d, awq range %d",
             o->spec.f16_scales, o->spec.store_min, o->spec.signed_scale, o->spec.zero_from_one, o->spec.awq_range);
    cJSON_AddStringToObject(s, "quantizer", spec);
    if (qc_method_info_of(o->method)->gptq) {
        cJSON_AddNumberToObject(s, "percdamp", o->gptq.percdamp);
        cJSON_AddNumberToObject(s, "blocksize", o->gptq.blocksize);
        cJSON_AddBoolToObject(s, "act_order", o->gptq.act_order);
        cJSON_AddBoolToObject(s, "static_groups", o->gptq.static_groups);
        cJSON_AddNumberToObject(s, "damp_retries", o->gptq.max_retries);
    }
    cJSON_AddBoolToObject(s, "true_sequential", o->true_sequential);
    if (qc_method_info_of(o->method)->awq) {
        cJSON_AddBoolToObject(s, "awq_duo_scaling", o->awq.duo_scaling);
        cJSON_AddBoolToObject(s, "awq_clip", o->awq.clip);
    }
    if (o->smooth_alpha > 0) cJSON_AddNumberToObject(s, "smooth_alpha", o->smooth_alpha);
    cJSON_AddBoolToObject(s, "weights_quantized", !o->no_quant);
    cJSON_AddStringToObject(s, "propagate", o->propagate_fp32 ? "fp32" : "quantized");
    cJSON *cal = cJSON_AddArrayToObject(s, "calib");
    for (int i = 0; i < d->ncalib; i++) {
        char *real = realpath(d->calib[i], NULL);
        cJSON_AddItemToArray(cal, cJSON_CreateString(real ? real : d->calib[i]));
        free(real);
    }
    if (d->calib_tokens) add_path(s, "calib_tokens", d->calib_tokens);
    cJSON_AddNumberToObject(s, "nsamples", d->windows->n);
    cJSON_AddNumberToObject(s, "seqlen", d->windows->seqlen);
    cJSON_AddNumberToObject(s, "seed", (double)d->seed);
    cJSON_AddStringToObject(s, "act_dtype", act_dtype_name(o->act_dtype));
    if (d->act_bits) cJSON_AddNumberToObject(s, "act_quant_bits", d->act_bits);
    if (o->embed.bits && !o->embed_gptq) {
        cJSON *em = cJSON_AddObjectToObject(s, "embedding");
        cJSON_AddNumberToObject(em, "bits", o->embed.bits);
        cJSON_AddNumberToObject(em, "groupsize", o->embed.groupsize > 0 ? o->embed.groupsize : -1);
    }
    if (d->per_linear) cJSON_AddBoolToObject(s, "per_linear", true);
    if (o->batch_tokens) cJSON_AddNumberToObject(s, "batch_tokens", o->batch_tokens);
    cJSON_AddNumberToObject(s, "threads", d->threads);
    /* a resume on another CPU would multiply with other kernels: the instruction set is part
     * of what the result depends on */
    cJSON_AddStringToObject(s, "compute", qc_compute_name(d->compute));
    cJSON_AddStringToObject(s, "matmul_isa", d->matmul_isa ? d->matmul_isa : "");
    cJSON *rj = d->recipe_text ? cJSON_Parse(d->recipe_text) : NULL;
    if (rj) cJSON_AddItemToObject(s, "recipe", rj);
    add_inputs(d, cJSON_AddObjectToObject(s, "inputs"));
    return s;
}

/* j's fields, one "key: value" line each, nested keys joined by '.' and array items by [i]. */
static void flatten(FILE *f, const char *key, const cJSON *j) {
    if (cJSON_IsObject(j) || cJSON_IsArray(j)) {
        int i = 0;
        for (const cJSON *c = j->child; c; c = c->next, i++) {
            char *sub = cJSON_IsArray(j) ? qc_strdupf("%s[%d]", key, i)
                                         : *key ? qc_strdupf("%s.%s", key, c->string) : qc_strdupf("%s", c->string);
            if (sub) flatten(f, sub, c);
            free(sub);
        }
        if (!i) fprintf(f, "%s: %s\n", key, cJSON_IsArray(j) ? "[]" : "{}");
        return;
    }
    if (cJSON_IsString(j)) {
        fprintf(f, "%s: %s\n", key, j->valuestring);
        return;
    }
    char *v = cJSON_PrintUnformatted(j);
    fprintf(f, "%s: %s\n", key, v ? v : "?");
    free(v);
}

char *qc_run_desc_fingerprint(const cJSON *desc) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return NULL;
    fprintf(f, "qcalib quantize run, description version 3\n");
    flatten(f, "", desc);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}
