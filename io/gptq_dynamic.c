/* gptq_dynamic.c — per-module settings in a GPTQ checkpoint: GPTQModel's "dynamic" field of
 * quantization_config (and quantize_config.json), which vLLM reads too. Read by the HF reader
 * (hf_config.c parses, hf_checkpoint.c asks for each linear's settings), written by the GPTQ writer.
 *
 *   "dynamic": {
 *     "-:^model\\.layers\\.2\\.self_attn\\.v_proj$": {},
 *     "+:^model\\.layers\\.0\\.mlp\\.down_proj$": {"bits": 8, "group_size": 32, "sym": true}
 *   }
 *
 * A key is a regex over module names (HF's, without ".weight"), prefixed "-:" (matching
 * modules are not quantized: a plain PREFIX.weight) or "+:" (its fields override the base
 * config's for matching modules; a key without either prefix is positive too). The fields a
 * positive entry may hold are those vLLM's override_config honours: bits (2, 3, 4, 8),
 * group_size (> 0 or −1), sym, desc_act; null counts as absent; anything else is refused.
 *
 * Matching is GPTQModel's dynamic_get (and vLLM's get_dynamic_override): the entries are
 * tried in order and the first whose regex matches decides, a match being Python's re.match —
 * anchored at the start of the name, free at its end — here PCRE2 with PCRE2_ANCHORED.
 * GPTQModel's QuantizeConfig moves the keys starting with '-' before the others (keeping
 * their order) when it loads a config, so they are tried in that order here; vLLM keeps the
 * file's order, which is the same for the files qcalib writes (negative entries first).
 *
 * The writer keys every entry by the exact module name, every character outside
 * [A-Za-z0-9_] escaped (Python's re.escape) and the pattern anchored at both ends, so that
 * "model.layers.1.mlp.up_proj" cannot match layers.10; a positive entry states all three of
 * bits, group_size and sym. vLLM fuses a block's q, k, v into qkv_proj and gate, up into
 * gate_up_proj and matches the fused name: when a block's q, k, v (gate, up) are stored alike
 * their one entry's regex is "^model\.layers\.0\.self_attn\.(?:q|k|v|qkv)_proj$", which
 * names all four; members stored differently get an entry each, which GPTQModel follows and
 * vLLM cannot (its fused layer has one setting). transformers and optimum ignore "dynamic"
 * altogether: they build every linear with the base bits and group size, so a file with
 * entries reads correctly only in vLLM and GPTQModel (the writer warns).
 *
 * vLLM's Marlin rule (vllm/model_executor/layers/quantization/gptq_marlin.py and
 * utils/gptq_utils.py): a config whose top-level bits and sym are 4 or 8 and true, with a
 * group_size Marlin supports (−1, 32, 64, 128), sends every quantized layer to the Marlin
 * kernel; a layer whose dynamic entry then gives other bits, sym false or another group size
 * is refused at load ("Unsupported quantization config: bits=3, sym=True"). Its plain GPTQ
 * kernels take 2, 3, 4 and 8 bits and always read the stored zero points. So when the base
 * setting is Marlin's and some linear's is not, the config states sym false
 * (qc_gptq_config_sym): vLLM then takes the plain kernels for the whole file. That changes
 * no weight: a symmetric linear's zero points are stored like any other — 2^(bits−1), which
 * v1 holds as 2^(bits−1) − 1 and loaders read back + 1 — and read as asymmetric they give
 * the same values. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "io/qformat.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

struct qc_hfq_rule {
    char *key;             /* as the file has it, for messages */
    bool negative;         /* "-:" */
    pcre2_code *re;
    pcre2_match_data *md;
    int bits, group_size;  /* 0: not overridden */
    int sym, desc_act;     /* -1: not overridden, else 0 or 1 */
};

/* ---- reading -------------------------------------------------------------------------------- */

/* One field of entry r's object: bits, group_size, sym or desc_act. */
static qc_status parse_field(const char *path, qc_hfq_rule *r, const cJSON *v, qc_err *e) {
    const char *k = v->string;
    bool is_int = !strcmp(k, "bits") || !strcmp(k, "group_size");
    bool is_bool = !strcmp(k, "sym") || !strcmp(k, "desc_act");
    if (!is_int && !is_bool)
        return qc_fail(e, QC_ERR_FORMAT,
                       "%s: quantization_config.dynamic \"%s\": unknown field \"%s\" (bits, group_size, sym or "
                       "desc_act)", path, r->key, k);
    if (cJSON_IsNull(v)) return QC_OK;
    if (is_bool) {
        if (!cJSON_IsBool(v))
            return qc_fail(e, QC_ERR_FORMAT, "%s: quantization_config.dynamic \"%s\": %s must be true or false, not %s",
                           path, r->key, k, qc_json_type(v));
        *(!strcmp(k, "sym") ? &r->sym : &r->desc_act) = cJSON_IsTrue(v);
        return QC_OK;
    }
    if (!cJSON_IsNumber(v))
        return qc_fail(e, QC_ERR_FORMAT, "%s: quantization_config.dynamic \"%s\": %s must be an integer, not %s", path,
                       r->key, k, qc_json_type(v));
    double d = v->valuedouble;
    bool bits = !strcmp(k, "bits");
    if (bits && !(d >= 2 && d <= 8 && d == floor(d) && qc_gptq_format_holds_bits((int)d)))
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: quantization_config.dynamic \"%s\": bits %g (GPTQ: 2, 3, 4 or 8)",
                       path, r->key, d);
    if (!bits && d != -1 && !(d > 0 && d <= QC_MAX_DIM && d == floor(d)))
        return qc_fail(e, QC_ERR_FORMAT,
                       "%s: quantization_config.dynamic \"%s\": group_size %g (a positive integer or -1)", path, r->key,
                       d);
    *(bits ? &r->bits : &r->group_size) = (int)d;
    return QC_OK;
}

/* Entry `it` (its key and object) into r, its regex compiled. */
static qc_status parse_rule(const char *path, const cJSON *it, qc_hfq_rule *r, qc_err *e) {
    r->sym = r->desc_act = -1;
    if (!(r->key = qc_strdup(it->string, e))) return QC_ERR_NOMEM;
    r->negative = !strncmp(r->key, "-:", 2);
    const char *pattern = r->negative || !strncmp(r->key, "+:", 2) ? r->key + 2 : r->key;
    if (!cJSON_IsObject(it))
        return qc_fail(e, QC_ERR_FORMAT, "%s: quantization_config.dynamic \"%s\" must be an object, not %s", path,
                       r->key, qc_json_type(it));
    for (const cJSON *v = it->child; v; v = v->next) {
        qc_status st = parse_field(path, r, v, e);
        if (st) return st;
    }
    int code;
    PCRE2_SIZE at;
    r->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code, &at, NULL);
    if (!r->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return qc_fail(e, QC_ERR_FORMAT, "%s: quantization_config.dynamic \"%s\": the regex does not compile: %s "
                       "(at offset %zu)", path, r->key, (const char *)msg, (size_t)at);
    }
    if (!(r->md = pcre2_match_data_create_from_pattern(r->re, NULL)))
        return qc_fail(e, QC_ERR_NOMEM, "%s: out of memory", path);
    return QC_OK;
}

qc_status qc_hfq_dynamic_parse(const char *path, const cJSON *dyn, qc_hf_quant *q, qc_err *e) {
    if (!cJSON_IsObject(dyn))
        return qc_fail(e, QC_ERR_FORMAT, "%s: quantization_config.dynamic must be an object, not %s", path,
                       qc_json_type(dyn));
    int n = cJSON_GetArraySize(dyn);
    if (n == 0) return QC_OK;
    if (!(q->rules = qc_calloc((size_t)n, sizeof *q->rules, e, path))) return QC_ERR_NOMEM;
    /* GPTQModel's order: the keys starting with '-' first (not only "-:" ones: it sorts by the
     * first character), then the others, each in file order */
    for (int pass = 0; pass < 2; pass++)
        for (const cJSON *it = dyn->child; it; it = it->next) {
            if ((it->string[0] == '-') != (pass == 0)) continue;
            qc_status st = parse_rule(path, it, &q->rules[q->nrules++], e);
            if (st) return st;
        }
    return QC_OK;
}

qc_status qc_hfq_module(const qc_hf_quant *q, const char *name, const char *path, qc_hf_quant *out,
                        const char **skip, qc_err *e) {
    *out = *q;
    out->rules = NULL, out->nrules = 0;
    *skip = NULL;
    for (int i = 0; i < q->nrules; i++) {
        const qc_hfq_rule *r = &q->rules[i];
        int rc = pcre2_match(r->re, (PCRE2_SPTR)name, PCRE2_ZERO_TERMINATED, 0, PCRE2_ANCHORED, r->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) continue;
        if (rc < 0)
            return qc_fail(e, QC_ERR_FORMAT,
                           "%s: quantization_config.dynamic \"%s\": matching %s failed (PCRE2 error %d)", path, r->key,
                           name, rc);
        if (r->negative) {
            *skip = r->key;
            return QC_OK;
        }
        if (r->bits) out->bits = r->bits;
        if (r->group_size) out->group_size = r->group_size;
        if (r->sym >= 0) out->sym = r->sym;
        if (r->desc_act >= 0) out->desc_act = r->desc_act;
        return QC_OK;
    }
    return QC_OK;
}

void qc_hf_quant_free(qc_hf_quant *q) {
    for (int i = 0; i < q->nrules; i++) {
        pcre2_match_data_free(q->rules[i].md);
        pcre2_code_free(q->rules[i].re);
        free(q->rules[i].key);
    }
    free(q->rules);
    q->rules = NULL, q->nrules = 0;
}

/* ---- writing -------------------------------------------------------------------------------- */

/* Whether vLLM's Marlin kernel runs (bits, group size, sym): 4 or 8 bits, symmetric, groups
 * of −1 (one per row), 32, 64 or 128. */
static bool marlin_setting(int bits, int groupsize, bool sym) {
    int g = groupsize > 0 ? groupsize : -1;
    return sym && (bits == 4 || bits == 8) && (g == -1 || g == 32 || g == 64 || g == 128);
}

bool qc_gptq_config_sym(const qc_qfmt_plan *p) {
    const qc_qweight *b = p->base;
    if (!marlin_setting(b->bits, b->groupsize, b->sym)) return b->sym;
    for (int i = 0; i < p->n; i++) {
        const qc_qweight *q = p->m[i].q;
        if (q && !marlin_setting(q->bits, q->groupsize, q->sym)) return false;
    }
    return true;
}

/* vLLM runs q, k, v as one layer (qkv_proj) and gate, up as another (gate_up_proj), and looks
 * the fused layer's name up in "dynamic"; so when a group agrees, its one entry matches the
 * members' names and the fused one. */
static const struct fused {
    qc_weight members[3];
    int n;
    const char *names; /* the regex's alternatives: members, then the fused layer */
} fused_groups[] = {
    { { QC_W_Q, QC_W_K, QC_W_V }, 3, "(?:q|k|v|qkv)_proj" },
    { { QC_W_GATE, QC_W_UP }, 2, "(?:gate|up|gate_up)_proj" },
};

/* Name's punctuation escaped (Python's re.escape), its first n characters. */
static void escaped(const char *name, size_t n, qc_sb *key) {
    for (size_t i = 0; i < n && name[i]; i++) {
        char c = name[i];
        bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        if (!word) qc_sb_append(key, "\\", 1);
        qc_sb_append(key, &c, 1);
    }
}

/* Whether a and b are stored alike: both unquantized, or quantized with the same settings. */
static bool alike(const qc_qweight *a, const qc_qweight *b) {
    return !a || !b ? a == b : !qc_qfmt_differs(a, b);
}

/* The group of module i's weight, if every member of its block is in p and they agree;
 * *first: whether i is the first member in p's order. */
static const struct fused *agreeing_group(const qc_qfmt_plan *p, int i, bool *first) {
    const qc_qfmt_module *m = &p->m[i];
    for (size_t g = 0; g < sizeof fused_groups / sizeof *fused_groups; g++) {
        const struct fused *f = &fused_groups[g];
        int found = 0, first_at = -1;
        bool member = false, agree = true;
        for (int k = 0; k < f->n; k++) member |= f->members[k] == m->w;
        if (!member) continue;
        for (int j = 0; j < p->n; j++) {
            bool in = false;
            for (int k = 0; k < f->n; k++) in |= p->m[j].layer == m->layer && f->members[k] == p->m[j].w;
            if (!in) continue;
            found++;
            if (first_at < 0) first_at = j;
            agree &= alike(p->m[j].q, m->q);
        }
        *first = first_at == i;
        return found == f->n && agree ? f : NULL;
    }
    return NULL;
}

/* The key of module i: sign, then ^name$ escaped; for an agreeing group, the name's prefix
 * and the group's alternatives. False (nothing written) when i is a later member of a group
 * keyed already. */
static bool module_key(const qc_qfmt_plan *p, int i, char sign, qc_sb *key) {
    const char *name = p->m[i].name;
    bool first;
    const struct fused *f = agreeing_group(p, i, &first);
    if (f && !first) return false;
    qc_sb_printf(key, "%c:^", sign);
    const char *dot = strrchr(name, '.');
    escaped(name, f && dot ? (size_t)(dot + 1 - name) : strlen(name), key);
    if (f && dot) qc_sb_printf(key, "%s", f->names);
    qc_sb_append(key, "$", 1);
    return true;
}

void qc_gptq_dynamic_json(const qc_qfmt_plan *p, const char *indent, qc_sb *b) {
    bool any = false;
    qc_sb key = { 0 };
    for (int pass = 0; pass < 2; pass++) /* the negative entries first: GPTQModel's own order */
        for (int i = 0; i < p->n; i++) {
            const qc_qweight *q = p->m[i].q;
            if (pass == 0 ? q != NULL : !q || !qc_qfmt_differs(q, p->base)) continue;
            key.len = 0;
            if (!module_key(p, i, q ? '+' : '-', &key)) continue;
            qc_sb_printf(b, any ? ",\n%s  " : ",\n%s\"dynamic\": {\n%s  ", indent, indent);
            any = true;
            qc_sb_json_string(b, key.failed ? "" : key.s);
            if (q)
                qc_sb_printf(b, ": {\"bits\": %d, \"group_size\": %d, \"sym\": %s}", q->bits,
                             q->groupsize > 0 ? q->groupsize : -1, q->sym ? "true" : "false");
            else
                qc_sb_printf(b, ": {}");
        }
    if (any) qc_sb_printf(b, "\n%s}", indent);
    if (key.failed) b->failed = true;
    qc_sb_free(&key);
}
