/* hf_config.c — reading a Hugging Face config.json into a qc_config.
 *
 * Accepted: model_type "llama", "mistral" (without a sliding window shorter than the
 * context) and "qwen2" (Llama's layers with q, k and v biases and no o bias, as transformers'
 * Qwen2Attention; without use_sliding_window). Fields, with defaults as transformers'
 * LlamaConfig has them:
 *   hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, vocab_size
 *                                         required integers
 *   num_key_value_heads                   default num_attention_heads
 *   head_dim                              default hidden_size / num_attention_heads
 *   max_position_embeddings               default 2048 (qwen2: 32768, as Qwen2Config)
 *   rms_norm_eps                          default 1e-6
 *   rope_theta                            default 10000
 *   tie_word_embeddings                   default false
 *   hidden_act                            "silu" if present
 *   rope_scaling                          null, {"rope_type": "default"}, or Llama 3's
 *       {"rope_type" (or "type"): "llama3", factor, low_freq_factor, high_freq_factor,
 *        original_max_position_embeddings}, all required
 *   attention_bias                        llama only: true = q, k, v and o biases (LlamaAttention
 *                                         gives all four bias=config.attention_bias); default false
 * Refused as unsupported: other rope_scaling types, mlp_bias true, attention_bias true for
 * mistral or qwen2 (not their option), use_sliding_window true. A null value counts as
 * absent. Every message names the file and the field.
 *
 * quantization_config (read by qc_hf_config_load_quant; qc_hf_config_load refuses it), as
 * transformers, AutoGPTQ/GPTQModel and AutoAWQ write it:
 *   quant_method "gptq": bits (2, 3, 4, 8) and group_size (> 0 or −1) required; sym (default
 *       true, as AutoGPTQ), desc_act (default false, as transformers' GPTQConfig);
 *       checkpoint_format "gptq" (default: qzeros hold zero − 1) or "gptq_v2" (the zero);
 *       other formats ("marlin", "bitblas", ...) are refused; dynamic, GPTQModel's per-module
 *       overrides (regex keys, "-:" for modules left unquantized; gptq_dynamic.c). Other
 *       fields are ignored.
 *   quant_method "awq": bits (or AutoAWQ's w_bit) = 4, group_size (or q_group_size) > 0 or
 *       −1, zero_point true (default), version "gemm" (any case; default "gemm"); GEMV and
 *       the other kernels' layouts are refused, and so is a non-empty dynamic.
 *   Any other quant_method is refused, naming it. */
#include "io/qformat.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CONFIG_MAX_BYTES ((size_t)16 << 20)

/* The member `key` of o, or NULL when absent or null. */
static const cJSON *field(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNull(v) ? NULL : v;
}

/* An integer field (def when absent unless required). Range checks are left to
 * qc_config_check. */
static qc_status get_int(const char *path, const cJSON *o, const char *key, bool required, int def, int *out,
                         qc_err *e) {
    const cJSON *v = field(o, key);
    if (!v) {
        if (required) return qc_fail(e, QC_ERR_FORMAT, "%s: required field %s is missing", path, key);
        *out = def;
        return QC_OK;
    }
    if (!cJSON_IsNumber(v))
        return qc_fail(e, QC_ERR_FORMAT, "%s: %s must be an integer, not %s", path, key, qc_json_type(v));
    double d = v->valuedouble;
    if (d != floor(d) || d < -2147483648.0 || d > 2147483647.0)
        return qc_fail(e, QC_ERR_FORMAT, "%s: %s must be an integer, not %g", path, key, d);
    *out = (int)d;
    return QC_OK;
}

static qc_status get_float(const char *path, const cJSON *o, const char *key, float def, float *out, qc_err *e) {
    const cJSON *v = field(o, key);
    if (!v) {
        *out = def;
        return QC_OK;
    }
    if (!cJSON_IsNumber(v))
        return qc_fail(e, QC_ERR_FORMAT, "%s: %s must be a number, not %s", path, key, qc_json_type(v));
    *out = (float)v->valuedouble;
    return QC_OK;
}

static qc_status get_bool(const char *path, const cJSON *o, const char *key, bool *out, qc_err *e) {
    const cJSON *v = field(o, key);
    *out = false;
    if (!v) return QC_OK;
    if (!cJSON_IsBool(v))
        return qc_fail(e, QC_ERR_FORMAT, "%s: %s must be true or false, not %s", path, key, qc_json_type(v));
    *out = cJSON_IsTrue(v);
    return QC_OK;
}

/* The first present member of o among keys (synonyms), or NULL; *used gets its name. */
static const cJSON *field_any(const cJSON *o, const char *const *keys, int n, const char **used) {
    for (int i = 0; i < n; i++) {
        const cJSON *v = field(o, keys[i]);
        if (v) {
            *used = keys[i];
            return v;
        }
    }
    *used = keys[0];
    return NULL;
}

/* quantization_config.<key> (or a synonym) as an integer; required. */
static qc_status quant_int(const char *path, const cJSON *qc, const char *const *keys, int nkeys, int *out,
                           qc_err *e) {
    const char *key;
    const cJSON *v = field_any(qc, keys, nkeys, &key);
    if (!v) return qc_fail(e, QC_ERR_FORMAT, "%s: quantization_config.%s is missing", path, keys[0]);
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 1e9)
        return qc_fail(e, QC_ERR_FORMAT, "%s: quantization_config.%s must be an integer", path, key);
    *out = (int)v->valuedouble;
    return QC_OK;
}

static qc_status quant_bool(const char *path, const cJSON *qc, const char *key, bool def, bool *out, qc_err *e) {
    const cJSON *v = field(qc, key);
    *out = def;
    if (!v) return QC_OK;
    if (!cJSON_IsBool(v))
        return qc_fail(e, QC_ERR_FORMAT, "%s: quantization_config.%s must be true or false, not %s", path, key,
                       qc_json_type(v));
    *out = cJSON_IsTrue(v);
    return QC_OK;
}

static qc_status quant_str(const char *path, const cJSON *qc, const char *key, const char *def, const char **out,
                           qc_err *e) {
    const cJSON *v = field(qc, key);
    *out = def;
    if (!v) return QC_OK;
    if (!cJSON_IsString(v))
        return qc_fail(e, QC_ERR_FORMAT, "%s: quantization_config.%s must be a string, not %s", path, key,
                       qc_json_type(v));
    *out = v->valuestring;
    return QC_OK;
}

static qc_status parse_quant(const char *path, const cJSON *qc, qc_hf_quant *q, qc_err *e) {
    memset(q, 0, sizeof *q);
    if (!cJSON_IsObject(qc))
        return qc_fail(e, QC_ERR_FORMAT, "%s: quantization_config must be an object, not %s", path, qc_json_type(qc));
    const char *method;
    qc_status st = quant_str(path, qc, "quant_method", NULL, &method, e);
    if (st) return st;
    if (!method) return qc_fail(e, QC_ERR_FORMAT, "%s: quantization_config.quant_method is missing", path);
    static const char *const bits_keys[] = { "bits", "w_bit" }, *const gs_keys[] = { "group_size", "q_group_size" };
    bool gptq = strcasecmp(method, "gptq") == 0, awq = strcasecmp(method, "awq") == 0;
    if (!gptq && !awq)
        return qc_fail(e, QC_ERR_UNSUPPORTED,
                       "%s: quantization_config.quant_method \"%s\" is not supported (gptq or awq)", path, method);
    if ((st = quant_int(path, qc, bits_keys, awq ? 2 : 1, &q->bits, e)) ||
        (st = quant_int(path, qc, gs_keys, awq ? 2 : 1, &q->group_size, e)))
        return st;
    if (q->group_size == 0 || q->group_size < -1 || q->group_size > QC_MAX_DIM)
        return qc_fail(e, QC_ERR_FORMAT, "%s: quantization_config.group_size %d (a positive size or -1)", path,
                       q->group_size);
    if (gptq) {
        q->method = QC_HFQ_GPTQ;
        if (!qc_gptq_format_holds_bits(q->bits))
            return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: quantization_config.bits %d (GPTQ: 2, 3, 4 or 8)", path,
                           q->bits);
        const char *fmt;
        if ((st = quant_bool(path, qc, "sym", true, &q->sym, e)) ||
            (st = quant_bool(path, qc, "desc_act", false, &q->desc_act, e)) ||
            (st = quant_str(path, qc, "checkpoint_format", "gptq", &fmt, e)))
            return st;
        if (strcasecmp(fmt, "gptq") == 0) q->checkpoint_format = 1;
        else if (strcasecmp(fmt, "gptq_v2") == 0) q->checkpoint_format = 2;
        else
            return qc_fail(e, QC_ERR_UNSUPPORTED,
                           "%s: quantization_config.checkpoint_format \"%s\" is not supported (gptq or gptq_v2)",
                           path, fmt);
        return field(qc, "dynamic") ? qc_hfq_dynamic_parse(path, field(qc, "dynamic"), q, e) : QC_OK;
    }
    q->method = QC_HFQ_AWQ;
    if (q->bits != 4)
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: quantization_config.bits %d (AWQ: 4)", path, q->bits);
    bool zp;
    const char *version;
    if ((st = quant_bool(path, qc, "zero_point", true, &zp, e)) ||
        (st = quant_str(path, qc, "version", "gemm", &version, e)))
        return st;
    if (!zp)
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: quantization_config.zero_point false is not supported", path);
    if (strcasecmp(version, "gemm") != 0)
        return qc_fail(e, QC_ERR_UNSUPPORTED,
                       "%s: quantization_config.version \"%s\" is not supported (AWQ: gemm only)", path, version);
    const cJSON *dyn = field(qc, "dynamic");
    if (dyn && !(cJSON_IsObject(dyn) && !dyn->child))
        return qc_fail(e, QC_ERR_UNSUPPORTED,
                       "%s: quantization_config.dynamic (per-module settings) is read for GPTQ checkpoints only", path);
    q->sym = false;
    return QC_OK;
}

/* rope_scaling into c: Llama 3's, or none ("default"). */
static qc_status parse_rope_scaling(const char *path, const cJSON *rs, qc_config *c, qc_err *e) {
    if (!cJSON_IsObject(rs))
        return qc_fail(e, QC_ERR_FORMAT, "%s: rope_scaling must be an object, not %s", path, qc_json_type(rs));
    const cJSON *type = field(rs, "rope_type");
    if (!type) type = field(rs, "type");
    if (!cJSON_IsString(type))
        return qc_fail(e, QC_ERR_FORMAT, "%s: rope_scaling.rope_type must be a string", path);
    if (strcmp(type->valuestring, "default") == 0) return QC_OK;
    if (strcmp(type->valuestring, "llama3") != 0)
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: rope_scaling.rope_type \"%s\" is not supported (llama3 only)", path,
                       type->valuestring);
    static const char *const keys[4] = { "factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings" };
    double v[4];
    for (int i = 0; i < 4; i++) {
        const cJSON *x = field(rs, keys[i]);
        if (!cJSON_IsNumber(x)) return qc_fail(e, QC_ERR_FORMAT, "%s: rope_scaling.%s must be a number", path, keys[i]);
        v[i] = x->valuedouble;
    }
    if (!(v[0] >= 1 && v[0] <= 1e6) || !(v[1] > 0) || !(v[2] > v[1]) || !(v[3] >= 1 && v[3] <= QC_MAX_SEQ_LEN) ||
        v[3] != (double)(int)v[3])
        return qc_fail(e, QC_ERR_FORMAT, "%s: rope_scaling: need factor >= 1, 0 < low_freq_factor < high_freq_factor and an "
                       "integer original_max_position_embeddings >= 1 (got %g, %g, %g, %g)", path, v[0], v[1], v[2], v[3]);
    c->rope_factor = (float)v[0];
    c->rope_low_freq_factor = (float)v[1];
    c->rope_high_freq_factor = (float)v[2];
    c->rope_original_ctx = (int)v[3];
    return QC_OK;
}

static qc_status parse(const char *path, const cJSON *root, qc_config *c, qc_hf_quant *q, qc_err *e) {
    if (!cJSON_IsObject(root)) return qc_fail(e, QC_ERR_FORMAT, "%s: not a JSON object", path);
    const cJSON *mt = field(root, "model_type");
    if (!mt) return qc_fail(e, QC_ERR_FORMAT, "%s: required field model_type is missing", path);
    if (!cJSON_IsString(mt))
        return qc_fail(e, QC_ERR_FORMAT, "%s: model_type must be a string, not %s", path, qc_json_type(mt));
    const char *type = mt->valuestring;
    bool llama = strcmp(type, "llama") == 0, mistral = strcmp(type, "mistral") == 0, qwen2 = strcmp(type, "qwen2") == 0;
    if (!llama && !mistral && !qwen2)
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: model_type \"%s\" is not supported (llama, mistral or qwen2)", path,
                       type);
    const cJSON *quant = field(root, "quantization_config");
    if (quant && !q)
        return qc_fail(e, QC_ERR_UNSUPPORTED,
                       "%s: quantization_config: a quantized checkpoint is not expected here", path);
    if (q) {
        if (!quant) memset(q, 0, sizeof *q);
        else {
            qc_status qst = parse_quant(path, quant, q, e);
            if (qst) return qst;
        }
    }
    const cJSON *act = field(root, "hidden_act");
    if (act && !cJSON_IsString(act))
        return qc_fail(e, QC_ERR_FORMAT, "%s: hidden_act must be a string, not %s", path, qc_json_type(act));
    if (act && strcmp(act->valuestring, "silu") != 0)
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: hidden_act \"%s\" is not supported (only silu)", path,
                       act->valuestring);
    qc_status st;
    bool attention_bias, mlp_bias;
    if ((st = get_bool(path, root, "attention_bias", &attention_bias, e)) ||
        (st = get_bool(path, root, "mlp_bias", &mlp_bias, e)))
        return st;
    if (mlp_bias) return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: mlp_bias true is not supported yet", path);
    if (attention_bias && !llama)
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: attention_bias true is not supported for model_type \"%s\" "
                       "(a Llama option)", path, type);

    memset(c, 0, sizeof *c);
    c->attn_qkv_bias = attention_bias || qwen2;
    c->attn_o_bias = attention_bias;
    if ((st = get_int(path, root, "hidden_size", true, 0, &c->dim, e)) ||
        (st = get_int(path, root, "intermediate_size", true, 0, &c->hidden_dim, e)) ||
        (st = get_int(path, root, "num_hidden_layers", true, 0, &c->n_layers, e)) ||
        (st = get_int(path, root, "num_attention_heads", true, 0, &c->n_heads, e)) ||
        (st = get_int(path, root, "vocab_size", true, 0, &c->vocab_size, e)) ||
        (st = get_int(path, root, "num_key_value_heads", false, c->n_heads, &c->n_kv_heads, e)) ||
        (st = get_int(path, root, "max_position_embeddings", false, qwen2 ? 32768 : 2048, &c->seq_len, e)) ||
        (st = get_float(path, root, "rms_norm_eps", 1e-6f, &c->norm_eps, e)) ||
        (st = get_float(path, root, "rope_theta", 10000.0f, &c->rope_theta, e)) ||
        (st = get_bool(path, root, "tie_word_embeddings", &c->tied_classifier, e)))
        return st;
    if (c->n_heads > 0 && c->dim > 0 && !field(root, "head_dim") && c->dim % c->n_heads != 0)
        return qc_fail(e, QC_ERR_FORMAT, "%s: hidden_size %d is not a multiple of num_attention_heads %d "
                       "(and no head_dim is given)", path, c->dim, c->n_heads);
    if ((st = get_int(path, root, "head_dim", false, c->n_heads > 0 ? c->dim / c->n_heads : 0, &c->head_dim, e)))
        return st;
    if (field(root, "rope_scaling") && (st = parse_rope_scaling(path, field(root, "rope_scaling"), c, e))) return st;
    if ((st = qc_config_check(c, path, &qc_config_names_hf, e))) return st;
    if (c->rope_factor > 0 && (st = qc_config_set_llama3_rope(c, path, e))) return st;
    if (mistral) {
        int window;
        if ((st = get_int(path, root, "sliding_window", false, INT32_MAX, &window, e))) return st;
        if (window < c->seq_len)
            return qc_fail(e, QC_ERR_UNSUPPORTED,
                           "%s: sliding_window %d (shorter than max_position_embeddings %d) is not supported",
                           path, window, c->seq_len);
    }
    if (qwen2) {
        bool sliding;
        if ((st = get_bool(path, root, "use_sliding_window", &sliding, e))) return st;
        if (sliding)
            return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: use_sliding_window true is not supported (attention spans the "
                           "whole context)", path);
    }
    return QC_OK;
}

qc_status qc_hf_config_load_quant(const char *path, qc_config *c, qc_hf_quant *q, uint64_t *hash, qc_err *e) {
    cJSON *root;
    qc_status st = qc_json_load(path, CONFIG_MAX_BYTES, &root, hash, e);
    if (st) return st;
    st = parse(path, root, c, q, e);
    cJSON_Delete(root);
    return st;
}

qc_status qc_hf_config_load(const char *path, qc_config *c, qc_err *e) {
    return qc_hf_config_load_quant(path, c, NULL, NULL, e);
}
