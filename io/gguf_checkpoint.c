/* gguf_checkpoint.c — a Llama checkpoint on top of a GGUF container (qc_gguf_checkpoint_open, over
 * gguf_read.c's qc_gguf_file), and the tokenizer a GGUF file carries (qc_checkpoint_tokenizer).
 * The Llama metadata and tensor names in ../shared/docs/GGUF.md.
 *
 * The required metadata keys present with usable types and values, features qcalib cannot
 * run refused by name (MoE, RoPE scaling, partial rotary), every expected tensor present with
 * its shape (the attention biases when block 0 has them) and no tensor left unexplained. Every
 * failure is a message naming the file and the problem.
 *
 * Reading: F32, F16 and BF16 tensors are read in place by checkpoint.c's dtype path; block
 * tensors (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, the K-quants) go through a decoder that dequantizes only the rows
 * asked for, so an embedding lookup touches one row. llama2.c-style vocabularies are stored
 * with spaces as U+2581 ("▁", SentencePiece's convention, which llama.cpp's tokenizer
 * expects); the tokenizer built from a GGUF file turns them back into spaces.
 */
#include "io/gguf.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char gguf_format[] = "gguf";

/* ---- a Llama checkpoint ------------------------------------------------------------------------------ */

/* What the checkpoint keeps: the parsed file (its mapping handed to ck->bin) and, per weight,
 * the type the decoder needs. Every loc's aux points at its gguf_weight. */
typedef struct gguf_state {
    qc_gguf_file file;
} gguf_state;

typedef struct gguf_weight {
    const qc_gguf_type_info *type;
    const gguf_state *state;
} gguf_weight;

static const qc_config_names gguf_names = {
    "llama.embedding_length", "llama.feed_forward_length", "llama.block_count", "llama.attention.head_count",
    "llama.attention.head_count_kv", "llama.attention.key_length", "the vocabulary size (token_embd.weight)",
    "llama.context_length", "llama.attention.layer_norm_rms_epsilon", "llama.rope.freq_base",
};

/* The string value of key, or NULL when absent; a value of another type is an error. */
static qc_status get_string(const qc_gguf_file *f, const char *key, const char **s, int *len, qc_err *e) {
    const qc_gguf_kv *kv = qc_gguf_find_kv(f, key);
    *s = NULL;
    *len = 0;
    if (!kv) return QC_OK;
    if (kv->type != QC_GGUF_V_STRING)
        return qc_fail(e, QC_ERR_FORMAT, "%s: %s has type %s; a string was expected", f->map.path, key,
                       qc_gguf_vtype_name(kv->type));
    uint64_t n;
    qc_gguf_string_at(kv->data, s, &n);
    *len = n > INT_MAX ? INT_MAX : (int)n;
    return QC_OK;
}

/* An integer in lo..hi: a scalar of any integer type, or an array of equal values (llama.cpp
 * allows per-layer arrays for some keys); absent: required is an error, else *v = dflt. */
static qc_status get_int(const qc_gguf_file *f, const char *key, bool required, int64_t dflt, int64_t lo, int64_t hi,
                         int64_t *v, qc_err *e) {
    const qc_gguf_kv *kv = qc_gguf_find_kv(f, key);
    if (!kv) {
        if (required) return qc_fail(e, QC_ERR_FORMAT, "%s: the required metadata key %s is missing", f->map.path, key);
        *v = dflt;
        return QC_OK;
    }
    if (kv->count == 0 || !qc_gguf_kv_int(kv, 0, v))
        return qc_fail(e, QC_ERR_FORMAT, "%s: %s has type %s%s; an integer was expected", f->map.path, key,
                       qc_gguf_vtype_name(kv->elem_type), kv->type == QC_GGUF_V_ARRAY ? " array" : "");
    for (uint64_t i = 1; i < kv->count; i++) {
        int64_t x;
        qc_gguf_kv_int(kv, i, &x);
        if (x != *v)
            return qc_fail(e, QC_ERR_UNSUPPORTED,
                           "%s: %s differs between layers (%lld, then %lld); qcalib needs one value", f->map.path, key,
                           (long long)*v, (long long)x);
    }
    if (*v < lo || *v > hi)
        return qc_fail(e, QC_ERR_FORMAT, "%s: %s is %lld, outside %lld..%lld", f->map.path, key, (long long)*v,
                       (long long)lo, (long long)hi);
    return QC_OK;
}

static qc_status get_float(const qc_gguf_file *f, const char *key, bool required, double dflt, double *v, qc_err *e) {
    const qc_gguf_kv *kv = qc_gguf_find_kv(f, key);
    if (!kv) {
        if (required) return qc_fail(e, QC_ERR_FORMAT, "%s: the required metadata key %s is missing", f->map.path, key);
        *v = dflt;
        return QC_OK;
    }
    if (kv->type == QC_GGUF_V_ARRAY || !qc_gguf_kv_number(kv, 0, v))
        return qc_fail(e, QC_ERR_FORMAT, "%s: %s has type %s; a number was expected", f->map.path, key,
                       qc_gguf_vtype_name(kv->type));
    return QC_OK;
}

static bool str_is(const char *s, int len, const char *lit) {
    return s && (size_t)len == strlen(lit) && memcmp(s, lit, (size_t)len) == 0;
}

/* The configuration from the metadata (and the vocabulary size from the embedding's shape). */
static qc_status read_config(const qc_gguf_file *f, qc_config *c, qc_err *e) {
    const char *path = f->map.path, *arch, *s;
    int arch_len, len;
    qc_status st = get_string(f, "general.architecture", &arch, &arch_len, e);
    if (st) return st;
    if (!arch) return qc_fail(e, QC_ERR_FORMAT, "%s: the required metadata key general.architecture is missing", path);
    if (!str_is(arch, arch_len, "llama"))
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: architecture '%.*s'; qcalib reads Llama models ('llama')", path,
                       arch_len > 64 ? 64 : arch_len, arch);
    int64_t dim, ff, nl, nh, nkv, hd, vd, rot, ctx, experts;
    double eps, theta, factor;
    if ((st = get_int(f, "llama.embedding_length", true, 0, 1, QC_MAX_DIM, &dim, e)) ||
        (st = get_int(f, "llama.feed_forward_length", true, 0, 1, QC_MAX_DIM, &ff, e)) ||
        (st = get_int(f, "llama.block_count", true, 0, 1, QC_MAX_LAYERS, &nl, e)) ||
        (st = get_int(f, "llama.attention.head_count", true, 0, 1, QC_MAX_HEADS, &nh, e)) ||
        (st = get_int(f, "llama.attention.head_count_kv", false, nh, 1, QC_MAX_HEADS, &nkv, e)) ||
        (st = get_int(f, "llama.context_length", true, 0, 1, QC_MAX_SEQ_LEN, &ctx, e)) ||
        (st = get_float(f, "llama.attention.layer_norm_rms_epsilon", true, 0, &eps, e)) ||
        (st = get_float(f, "llama.rope.freq_base", false, 10000.0, &theta, e)) ||
        (st = get_int(f, "llama.expert_count", false, 0, 0, INT_MAX, &experts, e)))
        return st;
    if (!qc_gguf_find_kv(f, "llama.attention.key_length") && dim % nh != 0)
        return qc_fail(e, QC_ERR_FORMAT,
                       "%s: llama.embedding_length %lld is not a multiple of llama.attention.head_count %lld and "
                       "llama.attention.key_length is absent", path, (long long)dim, (long long)nh);
    if ((st = get_int(f, "llama.attention.key_length", false, dim / nh, 1, QC_MAX_DIM, &hd, e)) ||
        (st = get_int(f, "llama.attention.value_length", false, hd, 1, QC_MAX_DIM, &vd, e)) ||
        (st = get_int(f, "llama.rope.dimension_count", false, hd, 1, QC_MAX_DIM, &rot, e)))
        return st;
    if (experts > 0)
        return qc_fail(e, QC_ERR_UNSUPPORTED,
                       "%s: a mixture of %lld experts (llama.expert_count); qcalib reads dense Llama models", path,
                       (long long)experts);
    if (vd != hd)
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: llama.attention.value_length %lld differs from the key length %lld",
                       path, (long long)vd, (long long)hd);
    if (rot != hd)
        return qc_fail(e, QC_ERR_UNSUPPORTED,
                       "%s: llama.rope.dimension_count %lld: RoPE on part of a head of %lld is not supported", path,
                       (long long)rot, (long long)hd);
    if ((st = get_string(f, "llama.rope.scaling.type", &s, &len, e))) return st;
    if (s && !str_is(s, len, "none") && !str_is(s, len, "linear"))
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: RoPE scaling '%.*s' (llama.rope.scaling.type) is not supported",
                       path, len > 64 ? 64 : len, s);
    if ((st = get_float(f, "llama.rope.scaling.factor", false, 0, &factor, e))) return st;
    if (factor != 0 && factor != 1)
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: RoPE scaling by %g (llama.rope.scaling.factor) is not supported",
                       path, factor);
    const qc_gguf_tensor *emb = qc_gguf_find_tensor(f, "token_embd.weight");
    if (!emb) return qc_fail(e, QC_ERR_FORMAT, "%s: the tensor token_embd.weight is missing", path);
    memset(c, 0, sizeof *c);
    c->dim = (int)dim;
    c->hidden_dim = (int)ff;
    c->n_layers = (int)nl;
    c->n_heads = (int)nh;
    c->n_kv_heads = (int)nkv;
    c->head_dim = (int)hd;
    c->vocab_size = emb->n_dims == 2 && emb->ne[1] <= QC_MAX_VOCAB ? (int)emb->ne[1] : 0;
    c->seq_len = (int)ctx;
    c->norm_eps = (float)eps;
    c->rope_theta = (float)theta;
    if (c->vocab_size < 1)
        return qc_fail(e, QC_ERR_FORMAT,
                       "%s: token_embd.weight has %d dimensions, [%lld, %lld, ...]; [n_embd, n_vocab] with n_vocab up "
                       "to %d was expected", path, emb->n_dims, (long long)emb->ne[0], (long long)emb->ne[1],
                       QC_MAX_VOCAB);
    /* attention biases: tensors llama.cpp loads when present; then every block must have them */
    c->attn_qkv_bias = qc_gguf_find_tensor(f, "blk.0.attn_q.bias") != NULL;
    c->attn_o_bias = qc_gguf_find_tensor(f, "blk.0.attn_output.bias") != NULL;
    const qc_gguf_kv *tok = qc_gguf_find_kv(f, "tokenizer.ggml.tokens");
    if (tok && (tok->type != QC_GGUF_V_ARRAY || tok->elem_type != QC_GGUF_V_STRING))
        return qc_fail(e, QC_ERR_FORMAT, "%s: tokenizer.ggml.tokens is not an array of strings", path);
    if (tok && tok->count != (uint64_t)c->vocab_size)
        return qc_fail(e, QC_ERR_FORMAT, "%s: tokenizer.ggml.tokens has %llu tokens; token_embd.weight has %d rows",
                       path, (unsigned long long)tok->count, c->vocab_size);
    return qc_config_check(c, path, &gguf_names, e);
}

/* rope_freqs.weight, when present (Llama 3's rope_scaling as llama.cpp's converter writes it):
 * F32 [head_dim / 2], each factor positive and finite, into c (qc_config's rope_freqs); marked
 * used. */
static qc_status read_rope_freqs(const qc_gguf_file *f, qc_config *c, bool *used, qc_err *e) {
    const char *path = f->map.path;
    const qc_gguf_tensor *t = qc_gguf_find_tensor(f, "rope_freqs.weight");
    if (!t) return QC_OK;
    int n = c->head_dim / 2;
    if (t->type->id != QC_GGUF_F32 || t->n_dims != 1 || t->ne[0] != n)
        return qc_fail(e, QC_ERR_FORMAT, "%s: rope_freqs.weight is %s [%lld, %lld]; F32 [%d] (head_dim / 2) was expected",
                       path, t->type->name, (long long)t->ne[0], (long long)t->ne[1], n);
    if (n > QC_MAX_ROPE_FREQS)
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: rope_freqs.weight for head_dim %d is not supported (at most %d)",
                       path, c->head_dim, 2 * QC_MAX_ROPE_FREQS);
    for (int i = 0; i < n; i++) c->rope_freqs[i] = qc_lef32(t->data + 4 * (size_t)i);
    c->rope_nfreqs = n;
    used[t - f->tensors] = true;
    return qc_config_check(c, path, &gguf_names, e); /* the factors positive and finite */
}

/* Dequantizes rows [row0, row0+nrows) of a block tensor, and nothing else. */
static qc_status decode_rows(const qc_checkpoint *ck, const qc_ck_loc *loc, int64_t row0, int nrows, int cols,
                             float *out, qc_err *e) {
    const qc_gguf_type_info *ti = ((const gguf_weight *)loc->aux)->type;
    QC_ASSERT(cols % ti->block == 0);
    size_t rb = qc_gguf_row_bytes(ti, cols);
#pragma omp parallel for schedule(static) if ((int64_t)nrows * cols > (1 << 16))
    for (int r = 0; r < nrows; r++) ti->to_float(loc->data + (size_t)(row0 + r) * rb, out + (size_t)r * cols, cols);
    return QC_OK;
}

/* Hands the parsed file's arrays and the state to the checkpoint (freed at close). */
static qc_status own_state(qc_checkpoint *ck, gguf_state *s, gguf_weight *aux, qc_err *e) {
    void *p[] = { s->file.kv, s->file.kv_sorted, s->file.tensors, s->file.tensor_sorted, aux, s };
    qc_status st = QC_OK;
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) {
        if (!st) st = qc_ck_own(ck, p[i], e);
        else free(p[i]);
    }
    return st;
}

qc_status qc_gguf_checkpoint_open(qc_checkpoint *ck, const char *path, qc_err *e) {
    ck->format = gguf_format;
    gguf_state *s = qc_calloc(1, sizeof *s, e, path);
    if (!s) return QC_ERR_NOMEM;
    qc_gguf_file *f = &s->file;
    qc_status st = qc_gguf_file_open(f, path, e);
    if (!st && (st = qc_ck_add_file(ck, path, false, 0, e))) qc_gguf_file_close(f);
    if (st) {
        free(s);
        return st;
    }
    gguf_weight *aux = NULL;
    bool *used = NULL;
    if (!(st = read_config(f, &ck->cfg, e)) && !(st = qc_ck_alloc_locs(ck, e))) {
        aux = qc_calloc(QC_CK_NGLOBAL + (size_t)ck->cfg.n_layers * QC_CK_NLAYER, sizeof *aux, e, path);
        used = qc_calloc((size_t)f->n_tensors + 1, sizeof *used, e, path);
        if (!aux || !used) st = QC_ERR_NOMEM;
    }
    const qc_gguf_tensor *cls = NULL;
    for (int w = 0; w < QC_W_COUNT && !st; w++) {
        int nl = qc_weight_is_global((qc_weight)w) ? 1 : ck->cfg.n_layers;
        for (int l = 0; l < nl && !st && qc_weight_present(&ck->cfg, (qc_weight)w); l++) {
            char name[QC_GGUF_MAX_NAME + 16];
            int rows, cols;
            qc_gguf_tensor_name((qc_weight)w, l, name, sizeof name);
            qc_weight_shape(&ck->cfg, (qc_weight)w, &rows, &cols);
            const qc_gguf_tensor *t = qc_gguf_find_tensor(f, name);
            if (!t && w == QC_W_CLASSIFIER) continue; /* tied to the embedding */
            if (!t) {
                st = qc_fail(e, QC_ERR_FORMAT, "%s: the tensor %s is missing", path, name);
                break;
            }
            int64_t want[QC_GGUF_MAX_DIMS] = { cols, cols == 1 ? 1 : rows, 1, 1 };
            if (cols == 1) want[0] = rows; /* a vector: ne = [dim] */
            if (memcmp(t->ne, want, sizeof want) != 0) {
                st = qc_fail(e, QC_ERR_FORMAT,
                             "%s: tensor %s has shape [%lld, %lld, %lld, %lld]; [%lld, %lld] was expected (ggml order: "
                             "input dimension first)", path, name, (long long)t->ne[0], (long long)t->ne[1],
                             (long long)t->ne[2], (long long)t->ne[3], (long long)want[0], (long long)want[1]);
                break;
            }
            used[t - f->tensors] = true;
            size_t slot = qc_ck_slot((qc_weight)w, l);
            aux[slot] = (gguf_weight){ t->type, s };
            ck->locs[slot] = (qc_ck_loc){ .data = t->data, .dtype = t->type->dtype, .aux = &aux[slot],
                                          .decode = t->type->quantized ? decode_rows : NULL,
                                          .qtype = t->type->quantized ? t->type->name : NULL };
            if (w == QC_W_CLASSIFIER) cls = t;
        }
    }
    if (!st) st = read_rope_freqs(f, &ck->cfg, used, e);
    for (int64_t i = 0; i < f->n_tensors && !st; i++)
        if (!used[i])
            st = qc_fail(e, QC_ERR_UNSUPPORTED, "%s: tensor '%.*s' is not part of a Llama model as qcalib reads it",
                         path, f->tensors[i].name_len, f->tensors[i].name);
    free(used);
    if (!st) {
        /* tied: no output.weight, or one with the embedding's very bytes (llama.cpp's converters
         * write a copy even for a tied classifier) */
        const qc_gguf_tensor *emb = qc_gguf_find_tensor(f, "token_embd.weight");
        ck->cfg.tied_classifier = !cls || (cls->type == emb->type && memcmp(cls->data, emb->data, emb->nbytes) == 0);
        if (!cls) {
            ck->locs[QC_W_CLASSIFIER] = ck->locs[QC_W_EMBED];
            aux[QC_W_CLASSIFIER] = aux[QC_W_EMBED];
            ck->locs[QC_W_CLASSIFIER].aux = &aux[QC_W_CLASSIFIER];
        }
        /* the mapping now belongs to the checkpoint (f->map still names it, for messages) */
        ck->bin = f->map;
        return own_state(ck, s, aux, e);
    }
    free(aux);
    qc_gguf_file_close(f);
    free(s);
    return st;
}

/* ---- the tokenizer it carries ------------------------------------------------------------------------ */

/* U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's visible space */
static const char spm_space[] = "\xe2\x96\x81";

qc_status qc_checkpoint_tokenizer(const qc_checkpoint *ck, qc_tokenizer *t, qc_err *e) {
    memset(t, 0, sizeof *t);
    const char *path = qc_checkpoint_path(ck);
    if (ck->format != gguf_format)
        return qc_fail(e, QC_ERR_UNSUPPORTED,
                       "%s: a %s checkpoint carries no tokenizer; give a llama2.c tokenizer file", path, ck->format);
    const qc_gguf_file *f = &((const gguf_weight *)ck->locs[QC_W_EMBED].aux)->state->file;
    const qc_gguf_kv *tok = qc_gguf_find_kv(f, "tokenizer.ggml.tokens");
    if (!tok)
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: carries no tokenizer (no tokenizer.ggml.tokens); give a llama2.c "
                       "tokenizer file", path);
    const char *model;
    int model_len;
    qc_status st = get_string(f, "tokenizer.ggml.model", &model, &model_len, e);
    if (st) return st;
    if (!str_is(model, model_len, "llama"))
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: tokenizer.ggml.model is '%.*s'; qcalib's tokenizer is llama2.c's "
                       "SentencePiece-style one ('llama')", path, model ? (model_len > 64 ? 64 : model_len) : 6,
                       model ? model : "absent");
    int n = ck->cfg.vocab_size; /* = tok->count, checked at open */
    const qc_gguf_kv *sc = qc_gguf_find_kv(f, "tokenizer.ggml.scores");
    if (sc && (sc->type != QC_GGUF_V_ARRAY || sc->elem_type != QC_GGUF_V_F32 || sc->count != (uint64_t)n))
        return qc_fail(e, QC_ERR_FORMAT, "%s: tokenizer.ggml.scores must be an f32 array of %d values", path, n);
    int64_t bos, eos;
    if ((st = get_int(f, "tokenizer.ggml.bos_token_id", false, 1, 0, n - 1, &bos, e)) ||
        (st = get_int(f, "tokenizer.ggml.eos_token_id", false, 2, 0, n - 1, &eos, e)))
        return st;
    char *arena = qc_malloc(tok->nbytes, 1, e, path); /* unescaping only shrinks */
    char **pieces = qc_malloc((size_t)n, sizeof *pieces, e, path);
    int *lens = qc_malloc((size_t)n, sizeof *lens, e, path);
    float *scores = qc_calloc((size_t)n, sizeof *scores, e, path);
    if (!arena || !pieces || !lens || !scores) st = QC_ERR_NOMEM;
    const uint8_t *p = tok->data;
    size_t used = 0;
    for (int i = 0; i < n && !st; i++) {
        const char *s;
        uint64_t len;
        p = qc_gguf_string_at(p, &s, &len);
        pieces[i] = arena + used;
        for (uint64_t k = 0; k < len; k++) {
            if (k + 3 <= len && memcmp(s + k, spm_space, 3) == 0) {
                arena[used++] = ' ';
                k += 2;
            } else {
                arena[used++] = s[k];
            }
        }
        lens[i] = (int)(arena + used - pieces[i]);
        if (sc) scores[i] = qc_lef32(sc->data + 4 * (size_t)i);
    }
    /* llama2.c's encoder falls back to id = byte + 3 for bytes not in the vocabulary */
    for (int b = 0; b < 256 && !st; b++) {
        char want[8];
        snprintf(want, sizeof want, "<0x%02X>", b);
        if (n < 259 || lens[3 + b] != 6 || memcmp(pieces[3 + b], want, 6) != 0)
            st = qc_fail(e, QC_ERR_UNSUPPORTED, "%s: the vocabulary does not hold the byte token %s at id %d, where "
                         "llama2.c's tokenizer needs it", path, want, 3 + b);
    }
    if (!st)
        st = qc_tokenizer_from_vocab(t, n, (const char *const *)pieces, lens, scores, (int)bos, (int)eos, path, e);
    free(arena);
    free(pieces);
    free(lens);
    free(scores);
    return st;
}
