/* config.c — the model configuration's checks, the table of weights (shape, global or per
 * layer, present or not, names), and the RoPE row permutation between the interleaved-pair
 * layout qcalib uses and Hugging Face's rotate-half layout.
 *
 * The permutation: HF's conversion script turns a Meta (interleaved) Q or K weight into
 * HF's with w.view(n_heads, head_dim/2, 2, cols).transpose(1, 2).reshape(rows, cols), so
 * within a head interleaved row 2i+j becomes HF row j*head_dim/2 + i. */
#include "io/internal.h"

#include <math.h>
#include <string.h>

const qc_config_names qc_config_names_native = {
    "dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "head_dim", "vocab_size",
    "seq_len", "norm_eps", "rope_theta",
};

const qc_config_names qc_config_names_hf = {
    "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "vocab_size", "max_position_embeddings", "rms_norm_eps",
    "rope_theta",
};

static qc_status check_range(const char *source, const char *field, int v, int max, qc_err *e) {
    if (v < 1 || v > max)
        return qc_fail(e, QC_ERR_FORMAT, "%s: %s %d is out of range (1 to %d)", source, field, v, max);
    return QC_OK;
}

qc_status qc_config_check(const qc_config *c, const char *source, const qc_config_names *n,
                          qc_err *e) {
    qc_status st;
    if ((st = check_range(source, n->dim, c->dim, QC_MAX_DIM, e)) ||
        (st = check_range(source, n->hidden_dim, c->hidden_dim, QC_MAX_DIM, e)) ||
        (st = check_range(source, n->n_layers, c->n_layers, QC_MAX_LAYERS, e)) ||
        (st = check_range(source, n->n_heads, c->n_heads, QC_MAX_HEADS, e)) ||
        (st = check_range(source, n->n_kv_heads, c->n_kv_heads, QC_MAX_HEADS, e)) ||
        (st = check_range(source, n->head_dim, c->head_dim, QC_MAX_DIM, e)) ||
        (st = check_range(source, n->vocab_size, c->vocab_size, QC_MAX_VOCAB, e)) ||
        (st = check_range(source, n->seq_len, c->seq_len, QC_MAX_SEQ_LEN, e)))
        return st;
    if (c->n_heads % c->n_kv_heads != 0)
        return qc_fail(e, QC_ERR_FORMAT, "%s: %s %d is not a multiple of %s %d", source, n->n_heads,
                       c->n_heads, n->n_kv_heads, c->n_kv_heads);
    if (c->head_dim % 2 != 0)
        return qc_fail(e, QC_ERR_FORMAT, "%s: %s %d is odd (RoPE rotates pairs of dimensions)",
                       source, n->head_dim, c->head_dim);
    if ((int64_t)c->n_heads * c->head_dim > QC_MAX_DIM)
        return qc_fail(e, QC_ERR_FORMAT, "%s: %s %d x %s %d is beyond the limit of %d", source,
                       n->n_heads, c->n_heads, n->head_dim, c->head_dim, QC_MAX_DIM);
    if (!(isfinite(c->norm_eps) && c->norm_eps > 0))
        return qc_fail(e, QC_ERR_FORMAT, "%s: %s %g must be positive and finite", source,
                       n->norm_eps, (double)c->norm_eps);
    if (!(isfinite(c->rope_theta) && c->rope_theta > 0))
        return qc_fail(e, QC_ERR_FORMAT, "%s: %s %g must be positive and finite", source,
                       n->rope_theta, (double)c->rope_theta);
    if (c->rope_nfreqs != 0 && (c->rope_nfreqs != c->head_dim / 2 || c->rope_nfreqs > QC_MAX_ROPE_FREQS))
        return qc_fail(e, QC_ERR_FORMAT, "%s: %d RoPE frequency factors for %s %d (head_dim / 2 expected, at most %d)",
                       source, c->rope_nfreqs, n->head_dim, c->head_dim, QC_MAX_ROPE_FREQS);
    for (int i = 0; i < c->rope_nfreqs; i++)
        if (!(isfinite(c->rope_freqs[i]) && c->rope_freqs[i] > 0))
            return qc_fail(e, QC_ERR_FORMAT, "%s: RoPE frequency factor %d is %g; positive and finite expected", source, i,
                           (double)c->rope_freqs[i]);
    if (c->attn_o_bias && !c->attn_qkv_bias) /* no Hugging Face config describes it */
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: an attention output (o) bias without q, k and v biases is not supported",
                       source);
    return QC_OK;
}

qc_status qc_config_validate(const qc_config *c, const char *source, qc_err *e) {
    return qc_config_check(c, source, &qc_config_names_native, e);
}

/* ---- weights ---------------------------------------------------------------------------------- */

int qc_config_default_seqlen(const qc_config *c) {
    return c->seq_len < QC_SEQLEN_DEFAULT_MAX ? c->seq_len : QC_SEQLEN_DEFAULT_MAX;
}

bool qc_weight_is_global(qc_weight w) {
    return w == QC_W_EMBED || w == QC_W_FINAL_NORM || w == QC_W_CLASSIFIER;
}

bool qc_weight_is_bias(qc_weight w) { return w >= QC_W_Q_BIAS && w <= QC_W_O_BIAS; }

bool qc_weight_present(const qc_config *c, qc_weight w) {
    if (w == QC_W_O_BIAS) return c->attn_o_bias;
    return !qc_weight_is_bias(w) || c->attn_qkv_bias;
}

bool qc_weight_is_vector(qc_weight w) {
    return w == QC_W_FINAL_NORM || w == QC_W_ATTN_NORM || w == QC_W_FFN_NORM || qc_weight_is_bias(w);
}

bool qc_weight_is_linear(qc_weight w) { return !qc_weight_is_global(w) && !qc_weight_is_vector(w); }

qc_weight qc_bias_linear(qc_weight bias) {
    QC_ASSERT(qc_weight_is_bias(bias));
    static const qc_weight linear[] = { QC_W_Q, QC_W_K, QC_W_V, QC_W_O };
    return linear[bias - QC_W_Q_BIAS];
}

int qc_weight_rope_heads(const qc_config *c, qc_weight w) {
    return w == QC_W_Q || w == QC_W_Q_BIAS ? c->n_heads : w == QC_W_K || w == QC_W_K_BIAS ? c->n_kv_heads : 0;
}

void qc_weight_shape(const qc_config *c, qc_weight w, int *rows, int *cols) {
    int q = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim;
    int r = c->dim, k = 1;
    switch (w) {
    case QC_W_EMBED:
    case QC_W_CLASSIFIER: r = c->vocab_size; k = c->dim; break;
    case QC_W_FINAL_NORM:
    case QC_W_ATTN_NORM:
    case QC_W_FFN_NORM: r = c->dim; k = 1; break;
    case QC_W_Q: r = q; k = c->dim; break;
    case QC_W_K:
    case QC_W_V: r = kv; k = c->dim; break;
    case QC_W_O: r = c->dim; k = q; break;
    case QC_W_GATE:
    case QC_W_UP: r = c->hidden_dim; k = c->dim; break;
    case QC_W_DOWN: r = c->dim; k = c->hidden_dim; break;
    case QC_W_Q_BIAS:
    case QC_W_K_BIAS:
    case QC_W_V_BIAS:
    case QC_W_O_BIAS: qc_weight_shape(c, qc_bias_linear(w), &r, &k); k = 1; break;
    case QC_W_COUNT: QC_ASSERT(!"QC_W_COUNT is not a weight");
    }
    *rows = r;
    *cols = k;
}

void qc_weight_hf_name(qc_weight w, int layer, char *buf, size_t size) {
    static const char *const per_layer[QC_W_COUNT] = {
        [QC_W_ATTN_NORM] = "input_layernorm", [QC_W_Q] = "self_attn.q_proj",
        [QC_W_K] = "self_attn.k_proj",        [QC_W_V] = "self_attn.v_proj",
        [QC_W_O] = "self_attn.o_proj",        [QC_W_FFN_NORM] = "post_attention_layernorm",
        [QC_W_GATE] = "mlp.gate_proj",        [QC_W_UP] = "mlp.up_proj",
        [QC_W_DOWN] = "mlp.down_proj",
    };
    QC_ASSERT((unsigned)w < QC_W_COUNT);
    switch (w) {
    case QC_W_EMBED: snprintf(buf, size, "model.embed_tokens.weight"); break;
    case QC_W_FINAL_NORM: snprintf(buf, size, "model.norm.weight"); break;
    case QC_W_CLASSIFIER: snprintf(buf, size, "lm_head.weight"); break;
    case QC_W_Q_BIAS:
    case QC_W_K_BIAS:
    case QC_W_V_BIAS:
    case QC_W_O_BIAS: snprintf(buf, size, "model.layers.%d.%s.bias", layer, per_layer[qc_bias_linear(w)]); break;
    default: snprintf(buf, size, "model.layers.%d.%s.weight", layer, per_layer[w]); break;
    }
}

const char *qc_weight_short_name(qc_weight w) {
    static const char *const names[QC_W_COUNT] = {
        [QC_W_EMBED] = "embed", [QC_W_FINAL_NORM] = "final_norm", [QC_W_CLASSIFIER] = "classifier",
        [QC_W_ATTN_NORM] = "attn_norm", [QC_W_Q] = "q", [QC_W_K] = "k", [QC_W_V] = "v",
        [QC_W_O] = "o", [QC_W_FFN_NORM] = "ffn_norm", [QC_W_GATE] = "gate", [QC_W_UP] = "up",
        [QC_W_DOWN] = "down", [QC_W_Q_BIAS] = "q_bias", [QC_W_K_BIAS] = "k_bias", [QC_W_V_BIAS] = "v_bias",
        [QC_W_O_BIAS] = "o_bias",
    };
    return (unsigned)w < QC_W_COUNT ? names[w] : "?";
}

/* ---- RoPE row order ------------------------------------------------------------------------------ */

void qc_rope_rows_to_hf(const float *src, float *dst, int n_heads, int head_dim, int cols) {
    int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < half; i++)
            for (int j = 0; j < 2; j++) {
                size_t from = (size_t)h * head_dim + 2 * i + j;
                size_t to = (size_t)h * head_dim + (size_t)j * half + i;
                memcpy(dst + to * cols, src + from * cols, (size_t)cols * sizeof *src);
            }
}

void qc_rope_rows_from_hf(const float *src, float *dst, int n_heads, int head_dim, int cols) {
    int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < half; i++)
            for (int j = 0; j < 2; j++) {
                size_t to = (size_t)h * head_dim + 2 * i + j;
                size_t from = (size_t)h * head_dim + (size_t)j * half + i;
                memcpy(dst + to * cols, src + from * cols, (size_t)cols * sizeof *src);
            }
}
