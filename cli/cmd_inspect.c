/* cmd_inspect.c — `qcalib inspect`: what a checkpoint holds, as qcalib reads it: its format,
 * the model configuration, and every weight with its shape and storage type (a float dtype
 * or a quantized layout with its bits and group size). */
#include "cli/cli.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

static const char *path;
static bool json;

static const cli_opt opts[] = {
    { "model", OPT_STR, &path, "PATH", "checkpoint: llama2.c .bin (legacy or int8 v2), .gguf, HF folder (plain, GPTQ, AWQ) (required)", 0, 0 },
    { "json", OPT_FLAG, &json, NULL, "print one JSON object", 0, 0 },
    { 0 },
};

static const cli_cmd cmd = {
    "inspect", "--model PATH [--json]",
    "Lists a checkpoint's format, model configuration and weights (name, shape, storage type).\n"
    "Names are Hugging Face's; shapes are [out, in] as qcalib uses them.",
    opts,
    NULL,
};

/* The storage type of a weight: its quantized layout, else its float dtype. */
static const char *storage(const qc_checkpoint *ck, qc_weight w, int layer) {
    const char *q = qc_checkpoint_qtype(ck, w, layer);
    return q ? q : qc_dtype_name(qc_checkpoint_dtype(ck, w, layer));
}

static void add_config(cJSON *o, const qc_config *c) {
    cJSON_AddNumberToObject(o, "dim", c->dim);
    cJSON_AddNumberToObject(o, "hidden_dim", c->hidden_dim);
    cJSON_AddNumberToObject(o, "n_layers", c->n_layers);
    cJSON_AddNumberToObject(o, "n_heads", c->n_heads);
    cJSON_AddNumberToObject(o, "n_kv_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(o, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(o, "seq_len", c->seq_len);
    cJSON_AddNumberToObject(o, "norm_eps", c->norm_eps);
    cJSON_AddNumberToObject(o, "rope_theta", c->rope_theta);
    cJSON_AddBoolToObject(o, "tied_classifier", c->tied_classifier);
    cJSON_AddBoolToObject(o, "attn_qkv_bias", c->attn_qkv_bias);
    cJSON_AddBoolToObject(o, "attn_o_bias", c->attn_o_bias);
    if (c->rope_nfreqs > 0) cJSON_AddItemToObject(o, "rope_freqs", cJSON_CreateFloatArray(c->rope_freqs, c->rope_nfreqs));
}

int cmd_inspect(int argc, char **argv) {
    int rc = cli_parse(&cmd, argc, argv, 2);
    if (rc) return rc < 0 ? 0 : rc;
    if (!path) return cli_usage_error(&cmd, "--model is required");
    qc_err e = { "" };
    qc_checkpoint *ck;
    if (qc_checkpoint_open(&ck, path, &e)) return cli_fail(&e);
    const qc_config *c = qc_checkpoint_config(ck);
    cJSON *o = cJSON_CreateObject(), *cf = cJSON_AddObjectToObject(o, "config"), *ts = cJSON_AddArrayToObject(o, "tensors");
    cJSON_AddStringToObject(o, "path", path);
    cJSON_AddStringToObject(o, "format", qc_checkpoint_format(ck));
    add_config(cf, c);
    size_t params = 0;
    for (int layer = -1; layer < c->n_layers; layer++)
        for (qc_weight w = 0; w < QC_W_COUNT; w++) {
            if (qc_weight_is_global(w) != (layer < 0) || !qc_weight_present(c, w)) continue;
            if (w == QC_W_CLASSIFIER && c->tied_classifier) continue;
            int rows, cols;
            char name[128];
            qc_weight_shape(c, w, &rows, &cols);
            qc_weight_hf_name(w, layer < 0 ? 0 : layer, name, sizeof name);
            params += (size_t)rows * cols;
            cJSON *t = cJSON_CreateObject();
            cJSON_AddStringToObject(t, "name", name);
            cJSON *shape = cJSON_AddArrayToObject(t, "shape");
            cJSON_AddItemToArray(shape, cJSON_CreateNumber(rows));
            if (cols > 1) cJSON_AddItemToArray(shape, cJSON_CreateNumber(cols));
            cJSON_AddStringToObject(t, "type", storage(ck, w, layer < 0 ? 0 : layer));
            cJSON_AddItemToArray(ts, t);
        }
    cJSON_AddNumberToObject(o, "parameters", (double)params);
    if (json) {
        char *s = cJSON_PrintUnformatted(o);
        printf("%s\n", s);
        free(s);
    } else {
        printf("%s: %s, %zu parameters\n", path, qc_checkpoint_format(ck), params);
        printf("config: dim %d, FFN %d, %d blocks, %d heads (%d key/value) of %d, vocab %d, context %d, eps %g, rope theta %g%s%s%s\n",
               c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->vocab_size, c->seq_len,
               (double)c->norm_eps, (double)c->rope_theta,
               c->rope_nfreqs ? " scaled per frequency (Llama 3's rope_scaling)" : "",
               c->tied_classifier ? ", classifier tied to the embedding" : "",
               c->attn_o_bias ? ", q/k/v/o biases" : c->attn_qkv_bias ? ", q/k/v biases" : "");
        cJSON *t;
        cJSON_ArrayForEach(t, ts) {
            cJSON *shape = cJSON_GetObjectItem(t, "shape");
            char dims[48];
            int n = cJSON_GetArraySize(shape);
            if (n == 2) snprintf(dims, sizeof dims, "[%d, %d]", cJSON_GetArrayItem(shape, 0)->valueint, cJSON_GetArrayItem(shape, 1)->valueint);
            else snprintf(dims, sizeof dims, "[%d]", cJSON_GetArrayItem(shape, 0)->valueint);
            printf("  %-44s %-14s %s\n", cJSON_GetObjectItem(t, "name")->valuestring, dims,
                   cJSON_GetObjectItem(t, "type")->valuestring);
        }
    }
    cJSON_Delete(o);
    qc_checkpoint_close(ck);
    return 0;
}
