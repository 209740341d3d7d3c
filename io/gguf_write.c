/* gguf_write.c — qc_gguf_export: a Llama model as a GGUF v3 file that llama.cpp loads
 * (container layout in gguf.h; metadata and tensor names in ../shared/docs/GGUF.md).
 *
 * Metadata, as llama.cpp's converters write it and with the value types its loader insists
 * on (u32 integers, f32 floats): general.{architecture "llama", name, file_type (a K-quant
 * mix's llama_ftype when opts->ftype gives one, else the type of most linear weights), quantization_version 2, alignment 32}; llama.{context_length,
 * embedding_length, block_count, feed_forward_length (src's width, after any FFN padding),
 * rope.dimension_count = head_dim, attention.head_count, head_count_kv,
 * layer_norm_rms_epsilon, rope.freq_base, vocab_size} (+ attention.key_length and
 * value_length when head_dim is not dim / n_heads); the vocabulary as tokenizer.ggml.{model
 * "llama", tokens, scores, token_type, bos/eos/unknown_token_id, add_bos_token,
 * add_eos_token}. Pieces are written with spaces as U+2581 ("▁"), as SentencePiece stores
 * them and llama.cpp's tokenizer looks them up; token types for a llama2.c vocabulary: id 0
 * unknown, BOS and EOS control, "<0xXX>" pieces byte, the rest normal (llama.cpp's
 * convert-llama2c-to-ggml does the same; it also renames pieces 0..2, which qcalib does not,
 * so that the vocabulary reads back exactly). llama.cpp refuses a vocabulary that repeats a
 * piece, so such a vocabulary is refused here.
 *
 * Tensors, ggml order ne = [in, out], the same bytes as a row-major [out, in] weight:
 * token_embd.weight (opts->embed_type, or the source's quantized embedding), output_norm.weight
 * (F32), output.weight (the source's quantized classifier, else opts->output_type of read();
 * written even for a tied classifier, as llama.cpp's converters do, and then apart from the
 * embedding even when that is quantized), and
 * per block attn_norm, ffn_norm (F32), attn_q/k/v/output, ffn_gate/up/down, and the attention
 * biases the model has as attn_q/k/v/output.bias (F32; llama.cpp's llama architecture loads
 * them when present); last, for scaled RoPE (Llama 3's rope_scaling), rope_freqs.weight, F32
 * [head_dim / 2]: the factor llama.cpp divides each frequency by (io/rope_freqs.c), as its
 * converter writes it. A linear, the token embedding or the classifier that src holds quantized (qweight())
 * is written as its own blocks, its type decided by them (gguf_blocks.c checks they fit; a
 * K-quant weight's super-blocks are packed as the solver left them, NaN or Inf factors refused);
 * other linears as opts->float_type of read(). An unquantized embedding and classifier go
 * through ggml's reference quantizers when a block type is asked for. Q and K rows, and their biases', stay interleaved
 * (llama.cpp's RoPE layout for this architecture; its converter permutes a Llama's HF biases
 * the same way).
 *
 * Everything that can be refused is checked before the file is opened; then the header is
 * built in memory from the shapes and types alone, and the tensors are streamed one at a
 * time through an atomic output file (nothing appears at `path` unless all of it was
 * written). */
#include "io/gguf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- the metadata: entries counted as they are appended ----------------------------------------- */

typedef struct meta {
    qc_sb b;
    uint64_t n; /* entries begun in b */
} meta;

static void key(meta *m, const char *k, uint32_t type) {
    m->n++;
    qc_gguf_put_key(&m->b, k, type);
}

static void kv_u32(meta *m, const char *k, uint32_t v) { key(m, k, QC_GGUF_V_U32), qc_gguf_put_u32(&m->b, v); }
static void kv_f32(meta *m, const char *k, float v) { key(m, k, QC_GGUF_V_F32), qc_gguf_put_f32(&m->b, v); }
static void kv_bool(meta *m, const char *k, bool v) { char x = v; key(m, k, QC_GGUF_V_BOOL), qc_sb_append(&m->b, &x, 1); }
static void kv_str(meta *m, const char *k, const char *v) {
    key(m, k, QC_GGUF_V_STRING), qc_gguf_put_str(&m->b, v, strlen(v));
}

static void array(meta *m, const char *k, uint32_t elem_type, uint64_t n) {
    key(m, k, QC_GGUF_V_ARRAY);
    qc_gguf_put_u32(&m->b, elem_type);
    qc_gguf_put_u64(&m->b, n);
}

/* ---- the vocabulary -------------------------------------------------------------------------------- */

static const char spm_space[] = "\xe2\x96\x81"; /* U+2581, SentencePiece's visible space */

/* What llama.cpp needs of a vocabulary, checked before anything is written. A tokenizer.json
 * vocabulary may be shorter than the embedding (padded rows): the rest become unused
 * "[PAD<id>]" tokens, as llama.cpp's converter writes them. */
static qc_status check_vocab(const qc_tokenizer *t, const qc_config *c, const char *path, qc_err *e) {
    if (!t)
        return qc_fail(e, QC_ERR_ARG, "%s: GGUF export needs the model's tokenizer (its vocabulary goes in the file)",
                       path);
    if (t->hf ? t->vocab_size > c->vocab_size : t->vocab_size != c->vocab_size)
        return qc_fail(e, QC_ERR_ARG, "%s: the tokenizer has %d tokens, the model %d", path, t->vocab_size,
                       c->vocab_size);
    for (int i = 0; i < t->vocab_size; i++) {
        if (!t->hf && memmem(t->pieces[i], (size_t)t->piece_len[i], spm_space, 3))
            return qc_fail(e, QC_ERR_UNSUPPORTED,
                           "%s: token %d contains U+2581, which a GGUF 'llama' vocabulary uses to stand for a space",
                           path, i);
        int other = qc_tokenizer_lookup(t, t->pieces[i], (size_t)t->piece_len[i]);
        if (other != i)
            return qc_fail(e, QC_ERR_UNSUPPORTED,
                           "%s: tokens %d and %d are the same piece; llama.cpp refuses a vocabulary with repeated "
                           "pieces", path, other, i);
    }
    return QC_OK;
}

/* tokenizer.ggml.*: a llama2.c vocabulary with its spaces written as U+2581; a tokenizer.json
 * one with its pieces as they are, "gpt2" (merges) or "llama" (scores) by its family. */
static void put_vocab(meta *m, const qc_tokenizer *t, int n) {
    bool gpt2 = qc_tokenizer_byte_level(t);
    char pad[32];
    kv_str(m, "tokenizer.ggml.model", gpt2 ? "gpt2" : "llama");
    if (qc_tokenizer_pre_name(t)) kv_str(m, "tokenizer.ggml.pre", qc_tokenizer_pre_name(t));
    array(m, "tokenizer.ggml.tokens", QC_GGUF_V_STRING, (uint64_t)n);
    for (int i = 0; i < n; i++) {
        if (i >= t->vocab_size) {
            snprintf(pad, sizeof pad, "[PAD%d]", i);
            qc_gguf_put_str(&m->b, pad, strlen(pad));
            continue;
        }
        const char *s = t->pieces[i];
        int len = t->piece_len[i], spaces = 0;
        if (t->hf) {
            qc_gguf_put_str(&m->b, s, (size_t)len);
            continue;
        }
        for (int k = 0; k < len; k++) spaces += s[k] == ' ';
        qc_gguf_put_u64(&m->b, (uint64_t)len + 2 * (uint64_t)spaces);
        for (int k = 0; k < len; k++) {
            if (s[k] == ' ') qc_sb_append(&m->b, spm_space, 3);
            else qc_sb_append(&m->b, &s[k], 1);
        }
    }
    if (!gpt2) {
        array(m, "tokenizer.ggml.scores", QC_GGUF_V_F32, (uint64_t)n);
        for (int i = 0; i < n; i++) qc_gguf_put_f32(&m->b, i < t->vocab_size ? t->scores[i] : 0.0f);
    }
    array(m, "tokenizer.ggml.token_type", QC_GGUF_V_I32, (uint64_t)n);
    for (int i = 0; i < n; i++)
        qc_gguf_put_u32(&m->b, (uint32_t)(i < t->vocab_size ? qc_tokenizer_token_type(t, i) : QC_TOKEN_UNUSED));
    if (gpt2) {
        int nm = qc_tokenizer_merge_count(t);
        array(m, "tokenizer.ggml.merges", QC_GGUF_V_STRING, (uint64_t)nm);
        for (int i = 0; i < nm; i++) {
            int32_t l, r;
            qc_tokenizer_merge(t, i, &l, &r);
            qc_gguf_put_u64(&m->b, (uint64_t)t->piece_len[l] + 1 + (uint64_t)t->piece_len[r]);
            qc_sb_append(&m->b, t->pieces[l], (size_t)t->piece_len[l]);
            qc_sb_append(&m->b, " ", 1);
            qc_sb_append(&m->b, t->pieces[r], (size_t)t->piece_len[r]);
        }
    }
    if (t->bos_id >= 0) kv_u32(m, "tokenizer.ggml.bos_token_id", (uint32_t)t->bos_id);
    if (t->eos_id >= 0) kv_u32(m, "tokenizer.ggml.eos_token_id", (uint32_t)t->eos_id);
    if (qc_tokenizer_unk_id(t) >= 0) kv_u32(m, "tokenizer.ggml.unknown_token_id", (uint32_t)qc_tokenizer_unk_id(t));
    kv_bool(m, "tokenizer.ggml.add_bos_token", t->add_bos);
    kv_bool(m, "tokenizer.ggml.add_eos_token", false);
}

/* ---- the tensors ------------------------------------------------------------------------------------- */

typedef struct tensor {
    char name[QC_GGUF_MAX_NAME];
    qc_weight w;
    int layer;
    int rows, cols;                 /* ne = [cols, rows]; rows = 1 for a vector (n_dims 1) */
    const qc_gguf_type_info *type;
    const qc_qweight *qw;           /* the solver's blocks, or NULL: from read() */
    bool rope_freqs;                /* rope_freqs.weight: the config's factors, not a weight (w unused) */
    uint64_t offset;                /* relative to the data start */
    size_t nbytes;
} tensor;

void qc_gguf_tensor_name(qc_weight w, int layer, char *buf, size_t size) {
    static const char *const names[QC_W_COUNT] = {
        [QC_W_EMBED] = "token_embd", [QC_W_FINAL_NORM] = "output_norm", [QC_W_CLASSIFIER] = "output",
        [QC_W_ATTN_NORM] = "attn_norm", [QC_W_Q] = "attn_q", [QC_W_K] = "attn_k", [QC_W_V] = "attn_v",
        [QC_W_O] = "attn_output", [QC_W_FFN_NORM] = "ffn_norm", [QC_W_GATE] = "ffn_gate", [QC_W_UP] = "ffn_up",
        [QC_W_DOWN] = "ffn_down",
    };
    if (qc_weight_is_global(w)) snprintf(buf, size, "%s.weight", names[w]);
    else if (qc_weight_is_bias(w)) snprintf(buf, size, "blk.%d.%s.bias", layer, names[qc_bias_linear(w)]);
    else snprintf(buf, size, "blk.%d.%s.weight", layer, names[w]);
}

static qc_status check_type(qc_gguf_type t, bool blocks_ok, const char *opt, const qc_config *c, const char *path,
                            qc_err *e) {
    const qc_gguf_type_info *ti = qc_gguf_type_info_of((uint32_t)t);
    bool writer = t == QC_GGUF_F32 || t == QC_GGUF_F16 || t == QC_GGUF_Q4_0 || t == QC_GGUF_Q4_1 || t == QC_GGUF_Q5_0 ||
                  t == QC_GGUF_Q5_1 || t == QC_GGUF_Q8_0 || qc_gguf_type_is_k(t);
    if (!ti || !writer || (!blocks_ok && ti->quantized))
        return qc_fail(e, QC_ERR_ARG, "%s: %s %d is not one of %s", path, opt, (int)t,
                       blocks_ok ? "F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K"
                                 : "F32, F16 (quantized linears come from the solver)");
    if (c->dim % ti->block != 0)
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: %s %s needs rows that are whole blocks of %d; dim is %d", path, opt,
                       ti->name, ti->block, c->dim);
    return QC_OK;
}

/* The tensor list in file order, every type decided and every quantized weight checked. */
static qc_status plan(const qc_weight_source *src, const qc_gguf_export_opts *o, const char *path, tensor *ts, int *nt,
                      qc_err *e) {
    const qc_config *c = src->cfg;
    static const qc_weight order[] = { QC_W_ATTN_NORM, QC_W_Q,        QC_W_Q_BIAS, QC_W_K,    QC_W_K_BIAS,
                                       QC_W_V,         QC_W_V_BIAS,   QC_W_O,      QC_W_O_BIAS, QC_W_FFN_NORM,
                                       QC_W_GATE,      QC_W_UP,       QC_W_DOWN };
    int n = 0;
    const qc_weight globals[] = { QC_W_EMBED, QC_W_FINAL_NORM, QC_W_CLASSIFIER }; /* ts[0], ts[1], ts[2] */
    for (int i = 0; i < 3; i++) ts[n++] = (tensor){ .w = globals[i] };
    for (int l = 0; l < c->n_layers; l++)
        for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
            if (qc_weight_present(c, order[i])) ts[n++] = (tensor){ .w = order[i], .layer = l };
    *nt = n;
    for (int i = 0; i < n; i++) {
        tensor *t = &ts[i];
        qc_gguf_tensor_name(t->w, t->layer, t->name, sizeof t->name);
        qc_weight_shape(c, t->w, &t->rows, &t->cols);
        if (t->cols == 1) t->cols = t->rows, t->rows = 1;
        qc_gguf_type ty = t->rows == 1 ? QC_GGUF_F32
                        : t->w == QC_W_EMBED ? o->embed_type
                        : t->w == QC_W_CLASSIFIER ? o->output_type : o->float_type;
        bool solver = qc_weight_is_linear(t->w) || t->w == QC_W_EMBED || t->w == QC_W_CLASSIFIER;
        t->qw = solver && src->qweight ? src->qweight(src->ctx, t->w, t->layer) : NULL;
        if (t->qw) {
            char what[QC_GGUF_MAX_NAME + 300];
            snprintf(what, sizeof what, "%s: %s", path, t->name);
            if (t->qw->rows != t->rows || t->qw->cols != t->cols)
                return qc_fail(e, QC_ERR_ARG, "%s: the quantized weight is (%d, %d); the model needs (%d, %d)", what,
                               t->qw->rows, t->qw->cols, t->rows, t->cols);
            qc_status st = qc_gguf_qweight_type(t->qw, what, &ty, e);
            if (st) return st;
        }
        t->type = qc_gguf_type_info_of((uint32_t)ty);
        t->nbytes = qc_gguf_row_bytes(t->type, t->cols) * (size_t)t->rows;
    }
    if (c->rope_nfreqs > 0) { /* Llama 3's rope_scaling, as llama.cpp's converter writes it: F32 [head_dim / 2] */
        const qc_gguf_type_info *f32 = qc_gguf_type_info_of(QC_GGUF_F32);
        ts[n++] = (tensor){ .name = "rope_freqs.weight", .w = QC_W_FINAL_NORM, .rows = 1, .cols = c->rope_nfreqs,
                            .type = f32, .nbytes = qc_gguf_row_bytes(f32, c->rope_nfreqs), .rope_freqs = true };
        *nt = n;
    }
    return QC_OK;
}

/* general.file_type (unless opts->ftype gives a mix's): the llama_ftype of the type most
 * linear weights have. */
static uint32_t file_type(const tensor *ts, int nt) {
    int64_t count[64] = { 0 };
    const qc_gguf_type_info *best = ts[0].type;
    for (int i = 0; i < nt; i++)
        if (qc_weight_is_linear(ts[i].w)) count[ts[i].type->id % 64] += (int64_t)ts[i].rows * ts[i].cols;
    for (int i = 0; i < nt; i++)
        if (qc_weight_is_linear(ts[i].w) && count[ts[i].type->id % 64] > count[best->id % 64]) best = ts[i].type;
    return (uint32_t)best->file_type;
}

/* The whole header, padded to the alignment; sets every tensor's offset. */
static void put_header(qc_sb *b, const qc_weight_source *src, const qc_gguf_export_opts *o, tensor *ts, int nt) {
    const qc_config *c = src->cfg;
    meta kv = { 0 };
    kv_str(&kv, "general.architecture", "llama");
    char name[256] = "llama";
    if (o->name && *o->name) { /* the path's last part, trailing slashes and a model file's extension dropped */
        size_t n = qc_path_trimmed_len(o->name);
        const char *slash = memrchr(o->name, '/', n), *start = slash && n > 1 ? slash + 1 : o->name;
        size_t len = (size_t)(o->name + n - start);
        static const char *const ext[] = { ".bin", ".safetensors", ".gguf" }; /* a model file's, not "Llama-3.2-1B" */
        for (size_t i = 0; i < sizeof ext / sizeof *ext; i++) {
            size_t el = strlen(ext[i]);
            if (len > el && memcmp(start + len - el, ext[i], el) == 0) len -= el;
        }
        if (len > 0) snprintf(name, sizeof name, "%.*s", (int)len, start);
    }
    kv_str(&kv, "general.name", name);
    kv_u32(&kv, "general.file_type", o->ftype > 0 ? (uint32_t)o->ftype : file_type(ts, nt));
    kv_u32(&kv, "general.quantization_version", 2);
    kv_u32(&kv, "general.alignment", QC_GGUF_ALIGNMENT);
    kv_u32(&kv, "llama.vocab_size", (uint32_t)c->vocab_size);
    kv_u32(&kv, "llama.context_length", (uint32_t)c->seq_len);
    kv_u32(&kv, "llama.embedding_length", (uint32_t)c->dim);
    kv_u32(&kv, "llama.block_count", (uint32_t)c->n_layers);
    kv_u32(&kv, "llama.feed_forward_length", (uint32_t)c->hidden_dim);
    kv_u32(&kv, "llama.rope.dimension_count", (uint32_t)c->head_dim);
    kv_u32(&kv, "llama.attention.head_count", (uint32_t)c->n_heads);
    kv_u32(&kv, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads);
    if (c->head_dim * c->n_heads != c->dim) { /* llama.cpp's default is dim / n_heads */
        kv_u32(&kv, "llama.attention.key_length", (uint32_t)c->head_dim);
        kv_u32(&kv, "llama.attention.value_length", (uint32_t)c->head_dim);
    }
    kv_f32(&kv, "llama.attention.layer_norm_rms_epsilon", c->norm_eps);
    kv_f32(&kv, "llama.rope.freq_base", c->rope_theta);
    put_vocab(&kv, o->tok, c->vocab_size);

    qc_sb_append(b, QC_GGUF_MAGIC, 4);
    qc_gguf_put_u32(b, QC_GGUF_VERSION);
    qc_gguf_put_u64(b, (uint64_t)nt);
    qc_gguf_put_u64(b, kv.n);
    if (kv.b.failed) b->failed = true;
    else qc_sb_append(b, kv.b.s, kv.b.len);
    qc_sb_free(&kv.b);
    uint64_t off = 0;
    for (int i = 0; i < nt; i++) {
        tensor *t = &ts[i];
        qc_gguf_put_str(b, t->name, strlen(t->name));
        qc_gguf_put_u32(b, t->rows == 1 ? 1 : 2);
        qc_gguf_put_u64(b, (uint64_t)t->cols);
        if (t->rows != 1) qc_gguf_put_u64(b, (uint64_t)t->rows);
        qc_gguf_put_u32(b, t->type->id);
        t->offset = off;
        qc_gguf_put_u64(b, off);
        off += (t->nbytes + QC_GGUF_ALIGNMENT - 1) / QC_GGUF_ALIGNMENT * QC_GGUF_ALIGNMENT;
    }
    qc_gguf_put_pad(b);
}

/* One tensor's bytes (t->nbytes) into out: the solver's blocks as they are, or read() converted
 * (or, for an unquantized embedding and classifier, quantized by ggml's reference quantizer). */
static qc_status tensor_bytes(const qc_weight_source *src, const tensor *t, float *buf, uint8_t *out, const char *path,
                              qc_err *e) {
    size_t rb = qc_gguf_row_bytes(t->type, t->cols);
    if (t->rope_freqs) {
        t->type->from_float(src->cfg->rope_freqs, out, t->cols);
        return QC_OK;
    }
    if (t->qw) {
#pragma omp parallel for schedule(static) if ((int64_t)t->rows * t->cols > (1 << 16))
        for (int r = 0; r < t->rows; r++)
            qc_gguf_encode_qweight_row(t->qw, (qc_gguf_type)t->type->id, r, out + (size_t)r * rb);
        return QC_OK;
    }
    qc_status st = src->read(src->ctx, t->w, t->layer, buf, e);
    if (st) return qc_fail_prefix(e, st, "%s: reading %s", path, t->name);
    size_t n = (size_t)t->rows * t->cols;
    if (t->type->quantized)
        for (size_t i = 0; i < n; i++)
            if (!isfinite(buf[i]))
                return qc_fail(e, QC_ERR_NUMERIC, "%s: %s: row %zu, column %zu is %g; it cannot be quantized to %s",
                               path, t->name, i / t->cols, i % t->cols, (double)buf[i], t->type->name);
    if (!t->type->quantized && (st = qc_check_dtype_range(t->type->dtype, buf, n, (size_t)t->cols, path, t->name, e)))
        return st;
#pragma omp parallel for schedule(static) if ((int64_t)n > (1 << 16))
    for (int r = 0; r < t->rows; r++) t->type->from_float(buf + (size_t)r * t->cols, out + (size_t)r * rb, t->cols);
    return QC_OK;
}

qc_status qc_gguf_check_export(const qc_config *c, const qc_gguf_export_opts *o, const char *path, qc_err *e) {
    qc_status st = qc_config_validate(c, path, e);
    if (st) return st;
    if (!o) return qc_fail(e, QC_ERR_ARG, "%s: GGUF export needs its options", path);
    if ((st = check_type(o->float_type, false, "float_type", c, path, e)) ||
        (st = check_type(o->embed_type, true, "embed_type", c, path, e)) ||
        (st = check_type(o->output_type, true, "output_type", c, path, e)))
        return st;
    return check_vocab(o->tok, c, path, e);
}

qc_status qc_gguf_export(const qc_weight_source *src, const char *path, const qc_gguf_export_opts *o,
                         const qc_log *log, qc_err *e) {
    const qc_config *c = src->cfg;
    qc_status st = qc_gguf_check_export(c, o, path, e);
    if (st) return st;
    int nt = QC_CK_NGLOBAL + c->n_layers * QC_CK_NLAYER + 1; /* + rope_freqs */
    tensor *ts = qc_calloc((size_t)nt, sizeof *ts, e, path);
    if (!ts) return QC_ERR_NOMEM;
    qc_sb hdr = { 0 };
    float *buf = NULL;
    uint8_t *out = NULL;
    qc_outfile of = { 0 };
    if (!(st = plan(src, o, path, ts, &nt, e))) {
        put_header(&hdr, src, o, ts, nt);
        size_t most = 1, most_bytes = 1;
        for (int i = 0; i < nt; i++) {
            size_t n = (size_t)ts[i].rows * ts[i].cols;
            if (!ts[i].qw && n > most) most = n;
            if (ts[i].nbytes > most_bytes) most_bytes = ts[i].nbytes;
        }
        buf = qc_malloc(most, sizeof *buf, e, "GGUF export buffer");
        out = buf ? qc_malloc(most_bytes + QC_GGUF_ALIGNMENT, 1, e, "GGUF export buffer") : NULL;
        if (hdr.failed) st = qc_fail(e, QC_ERR_NOMEM, "%s: out of memory for the GGUF header", path);
        else if (!out) st = QC_ERR_NOMEM;
    }
    if (!st) st = qc_out_open(&of, path, e);
    if (!st) st = qc_out_write(&of, hdr.s, hdr.len, e);
    size_t total = hdr.len;
    for (int i = 0; i < nt && !st; i++) {
        const tensor *t = &ts[i];
        size_t padded = (t->nbytes + QC_GGUF_ALIGNMENT - 1) / QC_GGUF_ALIGNMENT * QC_GGUF_ALIGNMENT;
        QC_ASSERT(total - hdr.len == t->offset);
        if ((st = tensor_bytes(src, t, buf, out, path, e))) break;
        memset(out + t->nbytes, 0, padded - t->nbytes);
        st = qc_out_write(&of, out, padded, e);
        total += padded;
        qc_progress(log, "export", i + 1, nt, t->name);
    }
    if (!st) st = qc_out_commit(&of, e);
    else qc_out_abort(&of);
    if (!st) { /* e.g. "linears 30 Q4_0 + 5 F32" */
        static const qc_gguf_type kinds[] = { QC_GGUF_F32,  QC_GGUF_F16,  QC_GGUF_Q4_0, QC_GGUF_Q4_1,
                                              QC_GGUF_Q5_0, QC_GGUF_Q5_1, QC_GGUF_Q8_0, QC_GGUF_Q2_K,
                                              QC_GGUF_Q3_K, QC_GGUF_Q4_K, QC_GGUF_Q5_K, QC_GGUF_Q6_K };
        char lin[400] = "";
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
            int cnt = 0, nq = 0;
            for (int i = 0; i < nt; i++)
                if (qc_weight_is_linear(ts[i].w) && ts[i].type->id == (uint32_t)kinds[k]) cnt++, nq += ts[i].qw != NULL;
            if (cnt)
                snprintf(lin + strlen(lin), sizeof lin - strlen(lin), "%s%d %s%s", *lin ? " + " : "", cnt,
                         qc_gguf_type_name(kinds[k]), nq ? " (the quantized weights' own blocks)" : "");
        }
        qc_logf(log, QC_LOG_INFO, "wrote %s: GGUF v3, %d tensors, %.2f MiB; linears %s; token_embd %s%s, output %s",
                path, nt, (double)total / (1 << 20), lin, ts[0].type->name,
                ts[0].qw ? " (quantized by the source)" : "", ts[2].type->name);
    }
    qc_sb_free(&hdr);
    free(buf);
    free(out);
    free(ts);
    return st;
}
