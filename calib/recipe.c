/* recipe.c — quantization recipes: JSON in the spirit of torchchat's quantization configs,
 * the one description of a run that the command-line flags abbreviate (README "Recipes").
 *
 *   {"method": "gptq",
 *    "linear:int4": {"groupsize": 128},        linear:intN (N = 2..8; sym default: int8 true,
 *                                             else false; groupsize default: the run's),
 *                                             linear:a8w4dq (4-bit symmetric weights, 8-bit
 *                                             per-token dynamic activations)
 *    "embedding": {"bitwidth": 8, "groupsize": 0},
 *    "act_quant": "a8",                      the runtime's activations (aN): --eval measures so
 *    "gptq": {"percdamp": 0.01, "blocksize": 128, "act_order": false, "static_groups": false,
 *             "true_sequential": true, "mse": false},
 *    "target_bpw": 4.5, "observe": 4,
 *    "skip": ["model.layers.0.self_attn.*"],
 *    "model.layers.*.mlp.down_proj": {"bits": 8, "groupsize": 32, "sym": true, "skip": false}}
 *
 * A top-level key holding a '.' or '*' is a module pattern (fnmatch(3) glob over Hugging Face
 * module names, '*' matching any run of characters, dots included); every other key must be
 * one of the above, and each object's keys are checked the same way: an unknown key is
 * refused with the valid ones listed. Overrides apply in the order written (a later one wins
 * where two match); a module any skip rule matches is left unquantized. Nothing is defaulted here: a field left out stays
 * unset, so flags laid over a recipe (qc_recipe_overlay) change only what they name.
 *
 * A key or string holding a NUL ("\u0000", or a raw NUL byte) is refused: cJSON ends its
 * strings there, so "model.layers.*\u0000.mlp.down_proj" would silently become
 * "model.layers.*". Messages quote recipe text with control and other unprintable bytes
 * escaped (qc_err_escape), never raw. */
#include "calib/calib.h"

#include <cjson/cJSON.h>
#include <fnmatch.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- parsing ---- */

typedef struct parser {
    const char *source;
    qc_err *e;
} parser;

static qc_status bad(parser *p, const char *where, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static qc_status bad(parser *p, const char *where, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return qc_fail(p->e, QC_ERR_FORMAT, "%s: %.200s%s%s", p->source, where, *where ? ": " : "", msg);
}

/* The message for a key outside `valid` (NULL-terminated), listing the valid ones. */
static qc_status unknown_key(parser *p, const char *where, const char *key, const char *const *valid) {
    char list[512] = "";
    for (int i = 0; valid[i]; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s\"%s\"", i ? ", " : "", valid[i]);
    return bad(p, where, "unknown key \"%.100s\" (valid: %s)", key, list);
}

/* Whether key k of object o came earlier in o too (cJSON keeps both). */
static bool repeated(const cJSON *o, const cJSON *k) {
    for (const cJSON *j = o->child; j != k; j = j->next)
        if (strcmp(j->string, k->string) == 0) return true;
    return false;
}

/* Refuses a key of o outside `valid`, and a key given twice. */
static qc_status check_keys(parser *p, const cJSON *o, const char *where, const char *const *valid) {
    for (const cJSON *k = o->child; k; k = k->next) {
        if (repeated(o, k)) return bad(p, where, "\"%s\" is given twice", k->string);
        bool known = false;
        for (int i = 0; valid[i] && !known; i++) known = strcmp(valid[i], k->string) == 0;
        if (!known) return unknown_key(p, where, k->string, valid);
    }
    return QC_OK;
}

/* An integer in [lo, hi] into *v, when the key is present. */
static qc_status get_int(parser *p, const cJSON *o, const char *key, const char *where, int lo, int hi, int *v) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j) return QC_OK;
    double d = j->valuedouble;
    if (!cJSON_IsNumber(j) || d != floor(d) || d < lo || d > hi) {
        return bad(p, where, "\"%s\" must be an integer from %d to %d", key, lo, hi);
    }
    *v = (int)d;
    return QC_OK;
}

static qc_status get_bool(parser *p, const cJSON *o, const char *key, const char *where, int *v) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j) return QC_OK;
    if (!cJSON_IsBool(j)) return bad(p, where, "\"%s\" must be true or false", key);
    *v = cJSON_IsTrue(j);
    return QC_OK;
}

static qc_status get_double(parser *p, const cJSON *o, const char *key, const char *where, double lo, double hi,
                            double *v) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j) return QC_OK;
    if (!cJSON_IsNumber(j) || !(j->valuedouble >= lo && j->valuedouble <= hi)) {
        return bad(p, where, "\"%s\" must be a number from %g to %g", key, lo, hi);
    }
    *v = j->valuedouble;
    return QC_OK;
}

/* "linear:int4", "linear:a8w4dq", ...: the weight settings of every linear. */
static qc_status parse_linear(parser *p, const cJSON *j, qc_recipe *r) {
    const char *key = j->string, *kind = key + strlen("linear:");
    if (r->linear_key[0]) return bad(p, key, "a recipe has one \"linear:...\" key; \"%s\" came first", r->linear_key);
    if (!cJSON_IsObject(j)) return bad(p, key, "%s", "must be an object such as {\"groupsize\": 128}");
    static const char *const int_keys[] = { "groupsize", "sym", NULL }, *const dq_keys[] = { "groupsize", NULL };
    int bits = 0, act = 0;
    if (strcmp(kind, "a8w4dq") == 0) bits = 4, act = 8;
    else if (strncmp(kind, "int", 3) == 0 && kind[3] >= '2' && kind[3] <= '8' && !kind[4]) bits = kind[3] - '0';
    else return bad(p, key, "%s", "unknown linear scheme (valid: \"linear:int2\" .. \"linear:int8\", \"linear:a8w4dq\")");
    qc_status st = check_keys(p, j, key, act ? dq_keys : int_keys);
    /* int8 and a8w4dq weights are symmetric, as torchchat's; the group size is the run's
     * unless given (128; what the output format implies, e.g. GGUF's 32) */
    r->bits = bits;
    if (act) r->act_bits = act;
    if (bits == 8 || act) r->sym = 1;
    if (!st) st = get_int(p, j, "groupsize", key, -1, 1 << 20, &r->groupsize);
    if (!st) st = get_bool(p, j, "sym", key, &r->sym);
    snprintf(r->linear_key, sizeof r->linear_key, "%s", key);
    return st;
}

static qc_status parse_embedding(parser *p, const cJSON *j, qc_recipe *r) {
    static const char *const keys[] = { "bitwidth", "groupsize", NULL };
    if (!cJSON_IsObject(j)) return bad(p, "embedding", "%s", "must be an object such as {\"bitwidth\": 8, \"groupsize\": 0}");
    qc_status st = check_keys(p, j, "embedding", keys);
    if (!st && !cJSON_GetObjectItemCaseSensitive(j, "bitwidth")) return bad(p, "embedding", "%s", "\"bitwidth\" (4 or 8) is required");
    r->embed_groupsize = 0;
    if (!st) st = get_int(p, j, "bitwidth", "embedding", 4, 8, &r->embed_bits);
    if (!st && r->embed_bits != 4 && r->embed_bits != 8) return bad(p, "embedding", "%s", "\"bitwidth\" must be 4 or 8");
    if (!st) st = get_int(p, j, "groupsize", "embedding", 0, 1 << 20, &r->embed_groupsize);
    return st;
}

static qc_status parse_gptq(parser *p, const cJSON *j, qc_recipe *r) {
    static const char *const keys[] = { "percdamp", "blocksize", "act_order", "static_groups", "true_sequential", "mse", NULL };
    if (!cJSON_IsObject(j)) return bad(p, "gptq", "%s", "must be an object such as {\"percdamp\": 0.01}");
    qc_status st = check_keys(p, j, "gptq", keys);
    if (!st) st = get_double(p, j, "percdamp", "gptq", 0, 1e6, &r->percdamp);
    if (!st) st = get_int(p, j, "blocksize", "gptq", 1, 1 << 20, &r->blocksize);
    if (!st) st = get_bool(p, j, "act_order", "gptq", &r->act_order);
    if (!st) st = get_bool(p, j, "static_groups", "gptq", &r->static_groups);
    if (!st) st = get_bool(p, j, "true_sequential", "gptq", &r->true_sequential);
    if (!st) st = get_bool(p, j, "mse", "gptq", &r->mse);
    return st;
}

static qc_status add_rule(parser *p, qc_recipe *r, const char *pattern, qc_recipe_rule rule) {
    if (r->nrules == QC_RECIPE_MAX_RULES) return bad(p, pattern, "more than %d module rules", QC_RECIPE_MAX_RULES);
    if (!*pattern) return bad(p, "skip", "%s", "an empty pattern");
    if (!(rule.pattern = strdup(pattern))) return qc_fail(p->e, QC_ERR_NOMEM, "out of memory");
    r->rules[r->nrules++] = rule;
    return QC_OK;
}

static qc_status parse_module(parser *p, const cJSON *j, qc_recipe *r) {
    static const char *const keys[] = { "bits", "groupsize", "sym", "skip", NULL };
    const char *pat = j->string;
    if (!cJSON_IsObject(j)) return bad(p, pat, "%s", "a module override must be an object such as {\"bits\": 8}");
    qc_recipe_rule rule = { NULL, QC_RECIPE_UNSET, QC_RECIPE_UNSET, QC_RECIPE_UNSET, false };
    int skip = 0;
    qc_status st = check_keys(p, j, pat, keys);
    if (!st) st = get_int(p, j, "bits", pat, 2, 8, &rule.bits);
    if (!st) st = get_int(p, j, "groupsize", pat, -1, 1 << 20, &rule.groupsize);
    if (!st) st = get_bool(p, j, "sym", pat, &rule.sym);
    if (!st) st = get_bool(p, j, "skip", pat, &skip);
    rule.skip = skip;
    if (!st && !skip && rule.bits == QC_RECIPE_UNSET && rule.groupsize == QC_RECIPE_UNSET && rule.sym == QC_RECIPE_UNSET)
        return bad(p, pat, "%s", "an override that changes nothing (give bits, groupsize, sym or \"skip\": true)");
    return st ? st : add_rule(p, r, pat, rule);
}

static qc_status parse_skip(parser *p, const cJSON *j, qc_recipe *r) {
    if (!cJSON_IsArray(j)) return bad(p, "skip", "%s", "must be an array of module patterns");
    for (const cJSON *s = j->child; s; s = s->next) {
        if (!cJSON_IsString(s)) return bad(p, "skip", "%s", "every entry must be a string (a module pattern)");
        qc_recipe_rule rule = { NULL, QC_RECIPE_UNSET, QC_RECIPE_UNSET, QC_RECIPE_UNSET, true };
        qc_status st = add_rule(p, r, s->valuestring, rule);
        if (st) return st;
    }
    return QC_OK;
}

/* The first string of the JSON text (key or value) holding a NUL, as [*start, *end) (its
 * quotes included); false when there is none. */
static bool nul_string(const char *t, size_t len, size_t *start, size_t *end) {
    bool in = false, nul = false;
    for (size_t i = 0; i < len; i++) {
        if (!in) {
            if (t[i] == '"') in = true, nul = false, *start = i;
            continue;
        }
        if (t[i] == '\\') {
            nul |= i + 5 < len && memcmp(t + i + 1, "u0000", 5) == 0;
            i++;
        } else if (t[i] == '\0') {
            nul = true;
        } else if (t[i] == '"') {
            in = false;
            *end = i + 1;
            if (nul) return true;
        }
    }
    return false;
}

/* Refuses a recipe with a NUL in a key or string value, quoting that string as written. */
static qc_status check_nul(const char *text, size_t len, const char *source, qc_err *e) {
    size_t start = 0, end = 0;
    if (!nul_string(text, len, &start, &end)) return QC_OK;
    size_t after = end;
    while (after < len && (text[after] == ' ' || text[after] == '\t' || text[after] == '\n' || text[after] == '\r')) after++;
    bool key = after < len && text[after] == ':';
    int shown = end - start > 120 ? 120 : (int)(end - start);
    return qc_fail(e, QC_ERR_FORMAT, "%s: the %s %.*s%s at byte %zu holds a NUL character (\\u0000), which would cut it "
                   "short; refused", source, key ? "key" : "string", shown, text + start, shown < (int)(end - start) ? "..." : "",
                   start);
}

static bool is_pattern(const char *key) { return strchr(key, '.') || strchr(key, '*'); }

void qc_recipe_init(qc_recipe *r) {
    memset(r, 0, sizeof *r);
    r->bits = r->groupsize = r->sym = r->act_bits = QC_RECIPE_UNSET;
    r->embed_bits = r->embed_groupsize = QC_RECIPE_UNSET;
    r->blocksize = r->act_order = r->static_groups = r->true_sequential = r->mse = r->observe = QC_RECIPE_UNSET;
    r->percdamp = r->target_bpw = NAN;
}

static qc_status parse_top(parser *p, const cJSON *root, qc_recipe *r) {
    static const char *const keys[] = { "method", "linear:int2", "linear:int3", "linear:int4", "linear:int5",
                                        "linear:int6", "linear:int7", "linear:int8", "linear:a8w4dq", "embedding",
                                        "gptq", "act_quant", "target_bpw", "observe", "skip", NULL };
    if (!cJSON_IsObject(root)) return bad(p, "", "%s", "a recipe is a JSON object");
    for (const cJSON *j = root->child; j; j = j->next) {
        const char *k = j->string;
        qc_status st = QC_OK;
        if (repeated(root, j)) return bad(p, "", "\"%s\" is given twice", k);
        if (strncmp(k, "linear:", 7) == 0) st = parse_linear(p, j, r);
        else if (strcmp(k, "embedding") == 0) st = parse_embedding(p, j, r);
        else if (strcmp(k, "gptq") == 0) st = parse_gptq(p, j, r);
        else if (strcmp(k, "skip") == 0) st = parse_skip(p, j, r);
        else if (strcmp(k, "target_bpw") == 0) st = get_double(p, root, k, "", 1, 16, &r->target_bpw);
        else if (strcmp(k, "observe") == 0) st = get_int(p, root, k, "", 1, 1 << 20, &r->observe);
        else if (strcmp(k, "act_quant") == 0) {
            if (r->act_bits != QC_RECIPE_UNSET) return bad(p, k, "%s", "given twice (\"linear:a8w4dq\" implies a8)");
            if (!cJSON_IsString(j) || !qc_recipe_act_bits(j->valuestring, &r->act_bits))
                return bad(p, k, "%s", "expected \"aN\", N bits from 2 to 16 (\"a8\": 8-bit activations)");
        }
        else if (strcmp(k, "method") == 0) {
            if (!cJSON_IsString(j) || !qc_method_parse(j->valuestring, &r->method))
                return bad(p, "method", "%s", "expected \"gptq\", \"rtn\", \"awq\", \"awq+gptq\" or \"smoothquant\"");
            r->has_method = true;
        } else if (is_pattern(k)) st = parse_module(p, j, r);
        else st = unknown_key(p, "", k, keys);
        if (st) return st;
    }
    return QC_OK;
}

qc_status qc_recipe_parse(const char *text, size_t len, const char *source, qc_recipe *r, qc_err *e) {
    qc_recipe_init(r);
    parser p = { source, e };
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    qc_status st;
    if (!root) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        st = qc_fail(e, QC_ERR_FORMAT, "%s: not valid JSON (near byte %zu)", source, at);
    } else {
        while (end && (size_t)(end - text) < len && (*end == ' ' || *end == '\n' || *end == '\t' || *end == '\r')) end++;
        st = end && (size_t)(end - text) < len ? qc_fail(e, QC_ERR_FORMAT, "%s: text after the recipe's JSON object", source)
                                               : check_nul(text, len, source, e);
        if (!st) st = parse_top(&p, root, r);
    }
    cJSON_Delete(root);
    if (st) qc_recipe_free(r);
    return st ? qc_err_escape(e, st) : st;
}

void qc_recipe_free(qc_recipe *r) {
    for (int i = 0; i < r->nrules; i++) free(r->rules[i].pattern);
    qc_recipe_init(r);
}

bool qc_recipe_act_bits(const char *s, int *bits) {
    int n = 0, b = 0;
    if (sscanf(s, "a%d%n", &b, &n) != 1 || s[n] || b < 2 || b > 16 || s[1] == '+' || s[1] == '0') return false;
    *bits = b;
    return true;
}

/* ---- applying the module rules ---- */

/* "model.layers.3.mlp.down_proj": the Hugging Face module name of a linear. */
static void module_name(int layer, qc_linear lin, char *buf, size_t size) {
    qc_weight_hf_name(qc_linear_weight(lin), layer, buf, size);
    char *dot = strrchr(buf, '.'); /* ".weight" */
    if (dot) *dot = 0;
}

qc_status qc_recipe_modules(const qc_recipe *r, const qc_config *c, const qc_quant_spec *base,
                            qc_recipe_spec_fn spec_of, void *ctx, qc_module_quant *mods, qc_err *e) {
    size_t n = (size_t)c->n_layers * QC_LIN_COUNT;
    for (size_t i = 0; i < n; i++) mods[i] = (qc_module_quant){ *base, false, false };
    for (int k = 0; k < r->nrules; k++) {
        const qc_recipe_rule *rule = &r->rules[k];
        int matched = 0;
        for (size_t i = 0; i < n; i++) {
            char name[128];
            module_name((int)(i / QC_LIN_COUNT), (qc_linear)(i % QC_LIN_COUNT), name, sizeof name);
            if (fnmatch(rule->pattern, name, 0) != 0) continue;
            matched++;
            if (rule->skip) { /* a skipped module stays skipped, whatever other rules say */
                mods[i].keep_f16 = true;
                continue;
            }
            int bits = rule->bits != QC_RECIPE_UNSET ? rule->bits : mods[i].spec.bits;
            int gs = rule->groupsize != QC_RECIPE_UNSET ? rule->groupsize : mods[i].spec.groupsize;
            bool sym = rule->sym != QC_RECIPE_UNSET ? rule->sym : mods[i].spec.sym;
            mods[i].pinned = true;
            qc_status st = spec_of(ctx, bits, gs, sym, &mods[i].spec, e);
            if (st) return qc_err_escape(e, qc_fail_prefix(e, st, "recipe rule \"%s\" on %s", rule->pattern, name));
        }
        if (!matched) {
            char first[128], last[128];
            module_name(0, QC_LIN_Q, first, sizeof first);
            module_name(c->n_layers - 1, QC_LIN_DOWN, last, sizeof last);
            return qc_err_escape(e, qc_fail(e, QC_ERR_ARG, "recipe rule \"%s\" matches none of the model's linears (%s .. %s; the token "
                           "embedding has its own key, \"embedding\")", rule->pattern, first, last));
        }
    }
    return QC_OK;
}

/* ---- printing ---- */

char *qc_recipe_dump(const qc_recipe *r) {
    cJSON *j = cJSON_CreateObject();
    if (r->has_method) cJSON_AddStringToObject(j, "method", qc_method_name(r->method));
    bool dq = r->act_bits == 8 && r->bits == 4 && r->sym == 1;
    if (r->bits != QC_RECIPE_UNSET) {
        char key[32];
        snprintf(key, sizeof key, dq ? "linear:a8w4dq" : "linear:int%d", r->bits);
        cJSON *l = cJSON_AddObjectToObject(j, key);
        if (r->groupsize != QC_RECIPE_UNSET) cJSON_AddNumberToObject(l, "groupsize", r->groupsize);
        if (!dq && r->sym != QC_RECIPE_UNSET) cJSON_AddBoolToObject(l, "sym", r->sym);
    }
    if (r->act_bits > 0 && !dq) {
        char a[16];
        snprintf(a, sizeof a, "a%d", r->act_bits);
        cJSON_AddStringToObject(j, "act_quant", a);
    }
    if (r->embed_bits > 0) {
        cJSON *em = cJSON_AddObjectToObject(j, "embedding");
        cJSON_AddNumberToObject(em, "bitwidth", r->embed_bits);
        cJSON_AddNumberToObject(em, "groupsize", r->embed_groupsize > 0 ? r->embed_groupsize : 0);
    }
    cJSON *g = cJSON_CreateObject();
    if (!isnan(r->percdamp)) cJSON_AddNumberToObject(g, "percdamp", r->percdamp);
    if (r->blocksize != QC_RECIPE_UNSET) cJSON_AddNumberToObject(g, "blocksize", r->blocksize);
    const struct { const char *k; int v; } flags[] = { { "act_order", r->act_order }, { "static_groups", r->static_groups },
        { "true_sequential", r->true_sequential }, { "mse", r->mse } };
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++)
        if (flags[i].v != QC_RECIPE_UNSET) cJSON_AddBoolToObject(g, flags[i].k, flags[i].v);
    if (g->child) cJSON_AddItemToObject(j, "gptq", g);
    else cJSON_Delete(g);
    if (!isnan(r->target_bpw)) cJSON_AddNumberToObject(j, "target_bpw", r->target_bpw);
    if (r->observe != QC_RECIPE_UNSET) cJSON_AddNumberToObject(j, "observe", r->observe);
    cJSON *skip = NULL;
    for (int i = 0; i < r->nrules; i++) {
        const qc_recipe_rule *u = &r->rules[i];
        bool only_skip = u->skip && u->bits == QC_RECIPE_UNSET && u->groupsize == QC_RECIPE_UNSET && u->sym == QC_RECIPE_UNSET;
        if (only_skip) {
            if (!skip) skip = cJSON_CreateArray();
            cJSON_AddItemToArray(skip, cJSON_CreateString(u->pattern));
            continue;
        }
        cJSON *o = cJSON_CreateObject();
        if (u->bits != QC_RECIPE_UNSET) cJSON_AddNumberToObject(o, "bits", u->bits);
        if (u->groupsize != QC_RECIPE_UNSET) cJSON_AddNumberToObject(o, "groupsize", u->groupsize);
        if (u->sym != QC_RECIPE_UNSET) cJSON_AddBoolToObject(o, "sym", u->sym);
        if (u->skip) cJSON_AddBoolToObject(o, "skip", true);
        cJSON_AddItemToObject(j, u->pattern, o);
    }
    if (skip) cJSON_AddItemToObject(j, "skip", skip);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    return text;
}
