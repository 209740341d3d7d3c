/* hf_export.c — writing a Hugging Face Llama folder from any weight source.
 *
 * The folder (built under a temporary name by base's qc_outdir, renamed into place when
 * complete) holds:
 *   config.json   {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
 *                  (["Qwen2ForCausalLM"], "qwen2" for q/k/v biases without an o bias),
 *                  hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
 *                  num_key_value_heads, head_dim (only when != hidden_size / heads),
 *                  vocab_size, max_position_embeddings, rms_norm_eps, rope_theta,
 *                  tie_word_embeddings, hidden_act "silu", attention_bias (llama: true with
 *                  q/k/v/o biases), torch_dtype, bos_token_id 1, eos_token_id 2}
 *   model.safetensors                               when shard_bytes is 0 or all fits in one
 *   model-0000K-of-0000N.safetensors (K = 1..N)     otherwise, plus
 *   model.safetensors.index.json  {"metadata": {"total_size": bytes of tensor data},
 *                                  "weight_map": {tensor name: shard file, ...}} (sorted)
 * Tensors go in model order (embedding, each layer's input_layernorm, q, k, v, o (each followed
 * by its bias when the model has one), post_attention_layernorm, gate, up, down, then the final
 * norm and lm_head, which is left out when tied). Shards are filled greedily as transformers
 * does: a tensor that would take the current shard's data past shard_bytes starts a new shard
 * (a single tensor larger than shard_bytes gets a shard of its own). Q and K rows (and their
 * biases') are written in HF's rotate-half order.
 * One weight at a time is in memory (fp32, its permuted copy, its converted bytes). */
#include "io/internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct hf_out_tensor {
    qc_weight w;
    int layer;
    char name[96];
    int64_t shape[2];
    int ndim;
    size_t nbytes;
    int shard;
} hf_out_tensor;

static const qc_weight layer_order[] = {
    QC_W_ATTN_NORM, QC_W_Q,        QC_W_Q_BIAS, QC_W_K,    QC_W_K_BIAS, QC_W_V, QC_W_V_BIAS,
    QC_W_O,         QC_W_O_BIAS,   QC_W_FFN_NORM, QC_W_GATE, QC_W_UP,   QC_W_DOWN,
};

static void add_tensor(const qc_config *c, qc_dtype dt, hf_out_tensor *t, qc_weight w, int layer) {
    int rows, cols;
    qc_weight_shape(c, w, &rows, &cols);
    t->w = w;
    t->layer = layer;
    qc_weight_hf_name(w, layer, t->name, sizeof t->name);
    t->ndim = qc_weight_is_vector(w) ? 1 : 2;
    t->shape[0] = rows;
    t->shape[1] = cols;
    t->nbytes = (size_t)rows * (size_t)cols * qc_dtype_size(dt); /* bounded by the config's limits */
}

/* The tensor list, in model order; returns the count. */
static int list_tensors(const qc_config *c, qc_dtype dt, hf_out_tensor *t) {
    int n = 0;
    add_tensor(c, dt, &t[n++], QC_W_EMBED, 0);
    for (int l = 0; l < c->n_layers; l++)
        for (size_t k = 0; k < sizeof layer_order / sizeof layer_order[0]; k++)
            if (qc_weight_present(c, layer_order[k])) add_tensor(c, dt, &t[n++], layer_order[k], l);
    add_tensor(c, dt, &t[n++], QC_W_FINAL_NORM, 0);
    if (!c->tied_classifier) add_tensor(c, dt, &t[n++], QC_W_CLASSIFIER, 0);
    return n;
}

/* Greedy sharding; returns the number of shards. */
static int assign_shards(hf_out_tensor *t, int n, size_t shard_bytes) {
    int shard = 0;
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        if (shard_bytes && used > 0 && (used >= shard_bytes || t[i].nbytes > shard_bytes - used)) {
            shard++;
            used = 0;
        }
        t[i].shard = shard;
        used += t[i].nbytes;
    }
    return shard + 1;
}

static void shard_name(int shard, int nshards, char *buf, size_t size) {
    if (nshards == 1) snprintf(buf, size, "model.safetensors");
    else snprintf(buf, size, "model-%05d-of-%05d.safetensors", shard + 1, nshards);
}

static const char *torch_dtype(qc_dtype dt) {
    return dt == QC_DT_F16 ? "float16" : dt == QC_DT_BF16 ? "bfloat16" : "float32";
}

void qc_hf_config_json(const qc_config *c, qc_dtype dt, const char *quant_json, qc_sb *b) {
    bool qwen2 = c->attn_qkv_bias && !c->attn_o_bias; /* Llama's attention_bias is all four or none */
    qc_sb_printf(b, "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n",
                 qwen2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM", qwen2 ? "qwen2" : "llama");
    qc_sb_printf(b, "  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n",
                 c->dim, c->hidden_dim, c->n_layers);
    qc_sb_printf(b, "  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n", c->n_heads,
                 c->n_kv_heads);
    if (c->head_dim * c->n_heads != c->dim) qc_sb_printf(b, "  \"head_dim\": %d,\n", c->head_dim);
    qc_sb_printf(b, "  \"vocab_size\": %d,\n  \"max_position_embeddings\": %d,\n", c->vocab_size, c->seq_len);
    qc_sb_printf(b, "  \"rms_norm_eps\": ");
    qc_sb_json_float(b, c->norm_eps);
    qc_sb_printf(b, ",\n  \"rope_theta\": ");
    qc_sb_json_float(b, c->rope_theta);
    if (c->rope_factor > 0) {
        qc_sb_printf(b, ",\n  \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": ");
        qc_sb_json_float(b, c->rope_factor);
        qc_sb_printf(b, ", \"low_freq_factor\": ");
        qc_sb_json_float(b, c->rope_low_freq_factor);
        qc_sb_printf(b, ", \"high_freq_factor\": ");
        qc_sb_json_float(b, c->rope_high_freq_factor);
        qc_sb_printf(b, ", \"original_max_position_embeddings\": %d}", c->rope_original_ctx);
    }
    qc_sb_printf(b, ",\n  \"tie_word_embeddings\": %s,\n  \"hidden_act\": \"silu\",\n",
                 c->tied_classifier ? "true" : "false");
    if (c->attn_o_bias) qc_sb_printf(b, "  \"attention_bias\": true,\n");
    qc_sb_printf(b, "  \"torch_dtype\": \"%s\",\n  \"bos_token_id\": 1,\n  \"eos_token_id\": 2", torch_dtype(dt));
    if (quant_json) qc_sb_printf(b, ",\n  \"quantization_config\": %s", quant_json);
    qc_sb_printf(b, "\n}\n");
}

static int cmp_name(const void *a, const void *b) {
    return strcmp((*(const hf_out_tensor *const *)a)->name, (*(const hf_out_tensor *const *)b)->name);
}

static qc_status index_json(const hf_out_tensor *t, int n, int nshards, qc_sb *b, qc_err *e) {
    const hf_out_tensor **sorted = qc_malloc((size_t)n, sizeof *sorted, e, "model.safetensors.index.json");
    if (!sorted) return QC_ERR_NOMEM;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        sorted[i] = &t[i];
        total += t[i].nbytes;
    }
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_name);
    qc_sb_printf(b, "{\n  \"metadata\": {\n    \"total_size\": %zu\n  },\n  \"weight_map\": {\n", total);
    for (int i = 0; i < n; i++) {
        char shard[64];
        shard_name(sorted[i]->shard, nshards, shard, sizeof shard);
        qc_sb_printf(b, "    ");
        qc_sb_json_string(b, sorted[i]->name);
        qc_sb_printf(b, ": \"%s\"%s\n", shard, i + 1 < n ? "," : "");
    }
    qc_sb_printf(b, "  }\n}\n");
    free(sorted);
    return QC_OK;
}

/* Scratch for one weight: fp32, its HF-permuted copy (Q/K), and its bytes in the dtype. */
typedef struct hf_scratch {
    float *f32, *perm;
    uint8_t *bytes;
} hf_scratch;

static qc_status write_shard(const qc_weight_source *src, const qc_outdir *d, qc_dtype dt,
                             const hf_out_tensor *t, int n, int shard, int nshards, hf_scratch *s,
                             int *done, const qc_log *log, qc_err *e) {
    const qc_config *c = src->cfg;
    char name[64];
    shard_name(shard, nshards, name, sizeof name);
    char *path = qc_outdir_file(d, name);
    qc_safetensors_writer *w = path ? qc_safetensors_writer_new(e) : NULL;
    if (!w) {
        free(path);
        return path ? QC_ERR_NOMEM : qc_fail(e, QC_ERR_NOMEM, "out of memory");
    }
    qc_status st = qc_safetensors_writer_meta(w, "format", "pt", e);
    for (int i = 0; i < n && !st; i++)
        if (t[i].shard == shard) st = qc_safetensors_writer_add(w, t[i].name, dt, t[i].ndim, t[i].shape, e);
    if (!st) st = qc_safetensors_writer_begin(w, path, e);
    for (int i = 0; i < n && !st; i++) {
        if (t[i].shard != shard) continue;
        if ((st = src->read(src->ctx, t[i].w, t[i].layer, s->f32, e))) {
            st = qc_fail_prefix(e, st, "%s: reading %s", d->path, t[i].name);
            break;
        }
        const float *rows = s->f32;
        int heads = qc_weight_rope_heads(c, t[i].w);
        if (heads) {
            qc_rope_rows_to_hf(s->f32, s->perm, heads, c->head_dim, (int)t[i].shape[1]);
            rows = s->perm;
        }
        size_t count = (size_t)(t[i].shape[0] * t[i].shape[1]);
        if ((st = qc_check_dtype_range(dt, rows, count, (size_t)t[i].shape[1], d->path, t[i].name, e))) break;
        qc_convert_from_f32(dt, rows, count, s->bytes);
        st = qc_safetensors_writer_write(w, t[i].name, s->bytes, t[i].nbytes, e);
        qc_progress(log, "export", ++*done, n, t[i].name);
    }
    if (!st) st = qc_safetensors_writer_finish(w, e);
    qc_safetensors_writer_free(w);
    free(path);
    return st;
}

qc_status qc_hf_check_config(const qc_config *c, const char *path, qc_err *e) {
    qc_status st = qc_config_validate(c, path, e);
    if (!st && c->rope_nfreqs > 0 && !(c->rope_factor > 0))
        st = qc_fail(e, QC_ERR_UNSUPPORTED, "%s: the model's RoPE frequency factors came from a GGUF's rope_freqs tensor, "
                     "without the rope_scaling parameters config.json needs", path);
    return st;
}

qc_status qc_hf_export_into(const qc_weight_source *src, const qc_outdir *d, const qc_hf_export_opts *o,
                            const qc_log *log, qc_err *e) {
    const qc_config *c = src->cfg;
    const char *dir = d->path;
    qc_dtype dt = o->dtype;
    if (dt != QC_DT_F32 && dt != QC_DT_F16 && dt != QC_DT_BF16)
        return qc_fail(e, QC_ERR_ARG, "%s: cannot export as %s (F32, F16 or BF16)", dir, qc_dtype_name(dt));
    qc_status st = qc_hf_check_config(c, dir, e);
    if (st) return st;

    int max = QC_CK_NGLOBAL + QC_CK_NLAYER * c->n_layers;
    hf_out_tensor *t = qc_calloc((size_t)max, sizeof *t, e, dir);
    if (!t) return QC_ERR_NOMEM;
    int n = list_tensors(c, dt, t);
    int nshards = assign_shards(t, n, o->shard_bytes);
    size_t most = 0; /* elements of the largest weight */
    for (int i = 0; i < n; i++)
        if ((size_t)(t[i].shape[0] * t[i].shape[1]) > most) most = (size_t)(t[i].shape[0] * t[i].shape[1]);
    int rows_q, cols_q;
    qc_weight_shape(c, QC_W_Q, &rows_q, &cols_q);
    hf_scratch s = {
        .f32 = qc_malloc(most, sizeof(float), e, "export buffer"),
        .perm = qc_malloc((size_t)rows_q * (size_t)cols_q, sizeof(float), e, "export buffer"),
        .bytes = qc_malloc(most, qc_dtype_size(dt), e, "export buffer"),
    };
    if (!s.f32 || !s.perm || !s.bytes) st = QC_ERR_NOMEM;
    if (!st)
        qc_logf(log, QC_LOG_DEBUG, "writing %s: %d tensors as %s in %d file%s", dir, n, qc_dtype_name(dt),
                nshards, nshards == 1 ? "" : "s");
    qc_sb text = { 0 };
    if (!st) {
        qc_hf_config_json(c, dt, NULL, &text);
        st = qc_sb_write_file(d, "config.json", &text, e);
    }
    int done = 0;
    for (int k = 0; k < nshards && !st; k++) st = write_shard(src, d, dt, t, n, k, nshards, &s, &done, log, e);
    if (!st && nshards > 1) {
        text.len = 0;
        if (!(st = index_json(t, n, nshards, &text, e)))
            st = qc_sb_write_file(d, "model.safetensors.index.json", &text, e);
    }
    qc_sb_free(&text);
    free(s.f32);
    free(s.perm);
    free(s.bytes);
    free(t);
    return st;
}

qc_status qc_hf_export(const qc_weight_source *src, const char *dir, const qc_hf_export_opts *o,
                       bool replace, const qc_log *log, qc_err *e) {
    qc_outdir d;
    qc_status st = qc_outdir_open(&d, dir, replace, e);
    if (!st) st = qc_hf_export_into(src, &d, o, log, e);
    if (!st) st = qc_outdir_commit(&d, e);
    else qc_outdir_abort(&d);
    return st;
}
