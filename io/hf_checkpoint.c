/* hf_checkpoint.c — the Hugging Face checkpoint reader: a folder with config.json and either
 * model.safetensors or model.safetensors.index.json plus its shards, or a single
 * .safetensors file with config.json beside it.
 *
 * model.safetensors.index.json:
 *   {"metadata": {"total_size": N}, "weight_map": {"tensor name": "shard file name", ...}}
 * Shard names must be plain file names in the same folder (no '/', no ".."); each shard
 * is opened (mapped and its header validated) once, and every tensor the map names must be
 * in the shard it is mapped to.
 *
 * Tensor names (L = layer): model.embed_tokens.weight, model.norm.weight, lm_head.weight
 * (not read when tie_word_embeddings), model.layers.L.{input_layernorm,
 * post_attention_layernorm}.weight, model.layers.L.self_attn.{q,k,v,o}_proj.weight,
 * model.layers.L.mlp.{gate,up,down}_proj.weight, and with attention biases (Qwen2, Llama's
 * attention_bias) model.layers.L.self_attn.{q,k,v[,o]}_proj.bias. At open every one the
 * config implies must exist as F32, F16 or BF16 with exactly the shape the config implies
 * ([out, in] for matrices, [rows] for norms and biases); an attention bias the config does
 * not imply is refused (it would change the model's function); other tensors are ignored.
 * Q and K rows (weights and biases) are in HF's rotate-half order, which the read path
 * un-permutes (checkpoint.c).
 *
 * A name the files do not store may be an alias: a safetensors "__metadata__" entry mapping it
 * to a stored name in the same file (qc_safetensors_lookup; with an index, any shard's metadata), the
 * way save_model stores a shared tensor once. The stored tensor then must pass the checks
 * the alias's name implies. And a tied pair is one tensor under either name, as transformers
 * reads it: with tie_word_embeddings, a file holding only lm_head.weight (e.g. TinyStories-656K,
 * whose metadata also aliases model.embed_tokens.weight to it) supplies the embedding.
 *
 * Quantized checkpoints: when config.json has a quantization_config (GPTQ or AWQ, see
 * hf_config.c), a linear (the seven per layer, and lm_head) whose PREFIX.qweight exists is
 * read from PREFIX.{qweight, qzeros, scales[, g_idx]} (validated by gptq_format.c /
 * awq_format.c, dequantized on read, row ranges decoding only the rows asked for) with its
 * module's settings: the config's, or those of the GPTQ "dynamic" entry matching PREFIX
 * (gptq_dynamic.c); one without stays a plain PREFIX.weight (modules_to_not_convert), as must
 * one a negative dynamic entry leaves unquantized. A .qweight tensor without a
 * quantization_config is refused. */
#include "io/qformat.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#define INDEX_MAX_BYTES ((size_t)64 << 20)

/* Where the tensors are: one file, or the index's weight_map over sorted shard names. */
typedef struct hf_files {
    const char *source;       /* the file to name when a tensor is missing */
    const cJSON *weight_map;  /* NULL: every tensor is in shard 0 */
    char **names;             /* (nshards) sorted shard file names; NULL for one file */
} hf_files;

/* The index in ck->shards of a shard file name taken from the weight map. */
static int shard_index(const hf_files *f, int nshards, const char *name) {
    char *const *p = bsearch(&name, f->names, (size_t)nshards, sizeof *f->names, qc_cmp_str_ptr);
    QC_ASSERT(p != NULL); /* every name in the weight map was opened */
    return (int)(p - f->names);
}

/* Opens the next shard (ck->shards has room for it). */
static qc_status open_shard(qc_checkpoint *ck, const char *path, qc_err *e) {
    qc_status st = qc_safetensors_open(&ck->shards[ck->nshards], path, e);
    if (!st) ck->nshards++;
    if (!st) st = qc_ck_add_file(ck, path, false, 0, e);
    return st;
}

/* Validates the index, opens every shard it names once, and checks each mapped tensor is
 * in its shard. */
static qc_status open_index(qc_checkpoint *ck, const char *dir, const char *index, cJSON **root,
                            hf_files *f, qc_err *e) {
    uint64_t hash;
    qc_status st = qc_json_load(index, INDEX_MAX_BYTES, root, &hash, e);
    if (!st) st = qc_ck_add_file(ck, index, true, hash, e);
    if (st) return st;
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(*root, "weight_map");
    if (!cJSON_IsObject(*root) || !cJSON_IsObject(map))
        return qc_fail(e, QC_ERR_FORMAT, "%s: no \"weight_map\" object", index);
    int n = cJSON_GetArraySize(map);
    f->weight_map = map;
    f->names = qc_malloc((size_t)n, sizeof *f->names, e, index);
    if (!f->names) return QC_ERR_NOMEM;
    int k = 0;
    for (const cJSON *t = map->child; t; t = t->next) {
        if (!cJSON_IsString(t))
            return qc_fail(e, QC_ERR_FORMAT, "%s: weight_map entry '%s' is not a string", index, t->string);
        const char *s = t->valuestring;
        if (!*s || strchr(s, '/') || strchr(s, '\\') || strstr(s, ".."))
            return qc_fail(e, QC_ERR_FORMAT,
                           "%s: weight_map entry '%s': shard \"%s\" is not a plain file name in the same folder",
                           index, t->string, s);
        f->names[k++] = t->valuestring;
    }
    qsort(f->names, (size_t)n, sizeof *f->names, qc_cmp_str_ptr);
    int u = 0; /* unique names */
    for (int i = 0; i < n; i++)
        if (u == 0 || strcmp(f->names[u - 1], f->names[i]) != 0) f->names[u++] = f->names[i];
    ck->shards = qc_calloc((size_t)u, sizeof *ck->shards, e, index);
    if (!ck->shards) return QC_ERR_NOMEM;
    for (int i = 0; i < u && !st; i++) {
        char *p = qc_path_join(dir, f->names[i]);
        st = p ? open_shard(ck, p, e) : qc_fail(e, QC_ERR_NOMEM, "out of memory");
        free(p);
    }
    if (st) return qc_fail_prefix(e, st, "%s", index);
    for (const cJSON *t = map->child; t; t = t->next) {
        const qc_safetensors_file *sh = &ck->shards[shard_index(f, u, t->valuestring)];
        if (!qc_safetensors_find(sh, t->string))
            return qc_fail(e, QC_ERR_FORMAT, "%s: tensor '%s' is mapped to %s, which does not contain it",
                           index, t->string, t->valuestring);
    }
    return QC_OK;
}

/* A safetensors tensor name ending in .qweight in a checkpoint whose config.json has no
 * quantization_config. */
static qc_status refuse_quantized(const qc_checkpoint *ck, qc_err *e) {
    for (int s = 0; s < ck->nshards; s++)
        for (int i = 0; i < ck->shards[s].ntensors; i++) {
            const qc_safetensors_tensor *t = &ck->shards[s].tensors[i];
            if (qc_str_ends_with(t->name, ".qweight"))
                return qc_fail(e, QC_ERR_FORMAT,
                               "%s: tensor '%s' (%s) is quantized, but config.json has no quantization_config",
                               ck->shards[s].map.path, t->name, qc_dtype_name(t->dtype));
        }
    return QC_OK;
}

/* The shard whose "__metadata__" has an entry `name`, or NULL. */
static const qc_safetensors_file *alias_shard(const qc_checkpoint *ck, const char *name) {
    for (int s = 0; s < ck->nshards; s++)
        if (qc_safetensors_meta_get(&ck->shards[s], name)) return &ck->shards[s];
    return NULL;
}

/* Tensor `name` wherever the files put it, stored or aliased (*out NULL when absent);
 * *where: its shard, or the file that should hold it (the index when there is one, else the
 * single file). */
static qc_status find_tensor(const void *files, const qc_checkpoint *ck, const char *name, const qc_safetensors_tensor **out,
                             const char **where, qc_err *e) {
    const hf_files *f = files;
    const qc_safetensors_file *sh = &ck->shards[0];
    *out = NULL;
    *where = f->source;
    if (f->weight_map) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(f->weight_map, name);
        sh = m ? &ck->shards[shard_index(f, ck->nshards, m->valuestring)] : alias_shard(ck, name);
        if (!sh) return QC_OK;
    }
    *where = sh->map.path;
    return qc_safetensors_lookup(sh, name, out, e);
}

/* Weight w's tensor: its own name's, or for a tied embedding its pair's (lm_head.weight);
 * *out NULL when neither is there. name: w's own name. */
static qc_status find_weight(const hf_files *f, const qc_checkpoint *ck, qc_weight w, const char *name,
                             const qc_safetensors_tensor **out, const char **where, qc_err *e) {
    qc_status st = find_tensor(f, ck, name, out, where, e);
    if (st || *out || w != QC_W_EMBED || !ck->cfg.tied_classifier) return st;
    char pair[128];
    const char *pair_where;
    qc_weight_hf_name(QC_W_CLASSIFIER, 0, pair, sizeof pair);
    st = find_tensor(f, ck, pair, out, &pair_where, e);
    if (st || *out) *where = pair_where;
    return st;
}

/* Finds weight (w, layer), checks its dtype and shape, and records where it is. */
static qc_status locate(qc_checkpoint *ck, const hf_files *f, qc_weight w, int layer, const char *hint, qc_err *e) {
    char name[128], label[300];
    qc_weight_hf_name(w, layer, name, sizeof name);
    const qc_safetensors_tensor *t;
    const char *where;
    qc_status st = find_weight(f, ck, w, name, &t, &where, e);
    if (st) return st;
    if (!t)
        return qc_fail(e, QC_ERR_FORMAT, "%s: missing tensor '%s'%s%s%s", where, name,
                       f->weight_map ? " (not in weight_map)" : "",
                       w == QC_W_EMBED && ck->cfg.tied_classifier ? " (nor its tied pair 'lm_head.weight')" : "", hint);
    if (strcmp(t->name, name) == 0) snprintf(label, sizeof label, "'%s'", name);
    else snprintf(label, sizeof label, "'%s' (stored as '%s')", name, t->name);
    if (t->dtype != QC_DT_F32 && t->dtype != QC_DT_F16 && t->dtype != QC_DT_BF16)
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: tensor %s: dtype %s is not supported yet (F32, F16 or BF16 expected)%s",
                       where, label, qc_dtype_name(t->dtype),
                       t->dtype == QC_DT_I32 ? "; a quantized checkpoint?" : "");
    int rows, cols;
    qc_weight_shape(&ck->cfg, w, &rows, &cols);
    bool vec = qc_weight_is_vector(w);
    bool ok = vec ? t->ndim == 1 && t->shape[0] == rows
                  : t->ndim == 2 && t->shape[0] == rows && t->shape[1] == cols;
    if (!ok) {
        char got[160] = "";
        size_t n = 0;
        for (int i = 0; i < t->ndim && n < sizeof got; i++)
            n += (size_t)snprintf(got + n, sizeof got - n, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        char want[48];
        if (vec) snprintf(want, sizeof want, "[%d]", rows);
        else snprintf(want, sizeof want, "[%d, %d]", rows, cols);
        return qc_fail(e, QC_ERR_FORMAT, "%s: tensor %s: shape [%s], but config.json implies %s", where, label,
                       got, want);
    }
    ck->locs[qc_ck_slot(w, layer)] =
        (qc_ck_loc){ .data = t->data, .dtype = t->dtype, .hf_rope_heads = qc_weight_rope_heads(&ck->cfg, w) };
    return QC_OK;
}

/* Locates a quantized weight through its format's reader, with its module's settings q. */
static qc_status locate_quantized(qc_checkpoint *ck, const hf_files *f, const qc_hf_quant *q, qc_weight w,
                                  int layer, const char *prefix, qc_err *e) {
    int rows, cols;
    qc_weight_shape(&ck->cfg, w, &rows, &cols);
    qc_ck_loc *loc = &ck->locs[qc_ck_slot(w, layer)];
    qc_status st = q->method == QC_HFQ_GPTQ ? qc_gptq_locate(ck, q, prefix, rows, cols, find_tensor, f, loc, e)
                                            : qc_awq_locate(ck, q, prefix, rows, cols, find_tensor, f, loc, e);
    if (!st) loc->hf_rope_heads = qc_weight_rope_heads(&ck->cfg, w);
    return st;
}

/* A linear (or lm_head) of a quantized checkpoint: its module's settings (the config's, or a
 * dynamic entry's), then PREFIX.{qweight, ...} when PREFIX.qweight is there, else the plain
 * PREFIX.weight (modules_to_not_convert; a negative dynamic entry requires it). */
static qc_status locate_module(qc_checkpoint *ck, const hf_files *f, const qc_hf_quant *q, const char *config,
                               qc_weight w, int layer, qc_err *e) {
    char prefix[128], name[160], hint[256];
    qc_weight_hf_name(w, layer, prefix, sizeof prefix);
    prefix[strlen(prefix) - strlen(".weight")] = '\0';
    qc_hf_quant mq;
    const char *skip, *where;
    const qc_safetensors_tensor *t;
    qc_status st = qc_hfq_module(q, prefix, config, &mq, &skip, e);
    if (st) return st;
    if (skip) {
        snprintf(hint, sizeof hint, " (quantization_config.dynamic \"%s\" leaves it unquantized)", skip);
        return locate(ck, f, w, layer, hint, e);
    }
    snprintf(name, sizeof name, "%s.qweight", prefix);
    if ((st = find_tensor(f, ck, name, &t, &where, e))) return st;
    if (t) return locate_quantized(ck, f, &mq, w, layer, prefix, e);
    return locate(ck, f, w, layer, " (and no quantized .qweight either)", e);
}

/* A bias the config leaves out must not be in the files: the model would compute without it. */
static qc_status refuse_unexpected(const qc_checkpoint *ck, const hf_files *f, qc_weight w, int layer, qc_err *e) {
    char name[128];
    const char *where;
    const qc_safetensors_tensor *t;
    qc_weight_hf_name(w, layer, name, sizeof name);
    qc_status st = find_tensor(f, ck, name, &t, &where, e);
    if (st || !t) return st;
    return qc_fail(e, QC_ERR_FORMAT, "%s: tensor '%s' is there, but config.json implies no %s bias", where, name,
                   qc_weight_short_name(qc_bias_linear(w)));
}

/* Every weight the config implies; config is config.json's path, for messages. */
static qc_status locate_all(qc_checkpoint *ck, const hf_files *f, const qc_hf_quant *q, const char *config,
                            qc_err *e) {
    qc_status st = qc_ck_alloc_locs(ck, e);
    if (!st && q->method == QC_HFQ_NONE) st = refuse_quantized(ck, e);
    for (int w = 0; w < QC_W_COUNT && !st; w++) {
        if (w == QC_W_CLASSIFIER && ck->cfg.tied_classifier) continue;
        int nl = qc_weight_is_global(w) ? 1 : ck->cfg.n_layers;
        bool module = q->method != QC_HFQ_NONE && w != QC_W_EMBED && !qc_weight_is_vector((qc_weight)w);
        for (int l = 0; l < nl && !st; l++) {
            if (!qc_weight_present(&ck->cfg, (qc_weight)w)) st = refuse_unexpected(ck, f, (qc_weight)w, l, e);
            else if (module) st = locate_module(ck, f, q, config, (qc_weight)w, l, e);
            else st = locate(ck, f, (qc_weight)w, l, "", e);
        }
    }
    if (!st && ck->cfg.tied_classifier) ck->locs[QC_W_CLASSIFIER] = ck->locs[QC_W_EMBED];
    return st;
}

qc_status qc_hf_checkpoint_open(qc_checkpoint *ck, const char *path, qc_err *e) {
    ck->format = "hf-safetensors";
    bool is_dir = qc_path_is_dir(path);
    char *dir = is_dir ? qc_strdupf("%s", path) : qc_path_dirname(path);
    char *config = dir ? qc_path_join(dir, "config.json") : NULL;
    char *single = dir ? (is_dir ? qc_path_join(dir, "model.safetensors") : qc_strdupf("%s", path)) : NULL;
    char *index = dir ? qc_path_join(dir, "model.safetensors.index.json") : NULL;
    cJSON *root = NULL;
    hf_files f = { 0 };
    qc_hf_quant q = { 0 };
    qc_status st = QC_OK;
    if (!dir || !config || !single || !index) st = qc_fail(e, QC_ERR_NOMEM, "out of memory");
    if (!st && !is_dir && !qc_path_exists(path)) st = qc_fail(e, QC_ERR_IO, "%s: no such file", path);
    uint64_t config_hash;
    if (!st) st = qc_hf_config_load_quant(config, &ck->cfg, &q, &config_hash, e);
    if (!st) st = qc_ck_add_file(ck, config, true, config_hash, e);
    if (!st) {
        if (!is_dir || qc_path_exists(single)) {
            f.source = single;
            ck->shards = qc_calloc(1, sizeof *ck->shards, e, single);
            st = ck->shards ? open_shard(ck, single, e) : QC_ERR_NOMEM;
        } else if (qc_path_exists(index)) {
            f.source = index;
            st = open_index(ck, dir, index, &root, &f, e);
        } else {
            st = qc_fail(e, QC_ERR_IO, "%s: neither model.safetensors nor model.safetensors.index.json is there", dir);
        }
    }
    if (!st) st = locate_all(ck, &f, &q, config, e);
    qc_hf_quant_free(&q);
    cJSON_Delete(root);
    free(f.names);
    free(dir);
    free(config);
    free(single);
    free(index);
    return st;
}
