/* qfmt_write.c — the writer the quantized Hugging Face formats share (GPTQ: gptq_format.c,
 * AWQ: awq_format.c). Each format describes itself in a qc_qfmt (qformat.h): what it refuses,
 * which tensors a linear becomes and how each is packed, and its JSON; this file walks the
 * model and writes the folder.
 *
 * Folder written (inside a qc_outdir):
 *   config.json        hf_export.c's fields (torch_dtype "float16") + "quantization_config":
 *                      the format's object
 *   fmt->extra_file    the format's own JSON (quantize_config.json, quant_config.json)
 *   model.safetensors  in model order: model.embed_tokens.weight; per layer input_layernorm,
 *                      the q, k, v, o linears (each followed by its bias when the model has
 *                      one), post_attention_layernorm, the gate, up, down linears;
 *                      model.norm.weight; lm_head.weight unless tied. A quantized linear PREFIX
 *                      is stored as the format's tensors PREFIX.qweight, ... in its own bits and
 *                      group size; every other weight as F16 from the source's read()
 *                      (PREFIX.weight for a linear kept unquantized, which only a mixed format
 *                      allows; PREFIX.bias as AutoGPTQ and AutoAWQ store a Qwen2's biases; q
 *                      and k rows in HF's rotate-half order).
 *
 * The config states one base setting (bits, group size, symmetry): the one most quantized
 * linears have, ties going to the first linear's. A mixed format (GPTQ) records the linears
 * that differ from it, or are not quantized, in its JSON (GPTQModel's "dynamic"); any other
 * format refuses both. A quantized token embedding is refused: transformers and vLLM load
 * these formats' embeddings as fp16.
 *
 * Every linear is checked (fmt->check) before anything is written. The same walk over the
 * model first declares the safetensors header and then writes the data, so the two orders
 * cannot differ.
 *
 * Memory: the largest float weight (fp32, a permuted copy for q/k, and F16) and the largest
 * packed tensor, one tensor at a time. */
#include "io/qformat.h"

#include <stdlib.h>
#include <string.h>

/* A layer's weights in file order (the biases only when the model has them), and how many of
 * them are linears. */
static const qc_weight layer_order[] = {
    QC_W_ATTN_NORM, QC_W_Q,        QC_W_Q_BIAS, QC_W_K,    QC_W_K_BIAS, QC_W_V, QC_W_V_BIAS,
    QC_W_O,         QC_W_O_BIAS,   QC_W_FFN_NORM, QC_W_GATE, QC_W_UP,   QC_W_DOWN,
};
#define NLAYER_W ((int)(sizeof layer_order / sizeof layer_order[0]))
#define NLINEAR 7

/* "model.layers.L.self_attn.q_proj": the HF name without ".weight". */
static void linear_prefix(qc_weight w, int layer, char *buf, size_t size) {
    qc_weight_hf_name(w, layer, buf, size);
    QC_ASSERT(qc_str_ends_with(buf, ".weight"));
    buf[strlen(buf) - strlen(".weight")] = '\0';
}

static size_t tensor_bytes(const qc_qfmt_tensor *t) {
    return (size_t)t->shape[0] * (size_t)(t->ndim == 2 ? t->shape[1] : 1) * qc_dtype_size(t->dtype);
}

void qc_qfmt_pack_scales(const qc_qfmt_linear *l, const qc_qfmt_tensor *t, uint8_t *buf) {
    const qc_qweight *q = l->q;
    int rows = q->rows, ng = q->ngroups;
    for (int o = 0; o < rows; o++) {
        const float *sc = q->scales + (size_t)qc_qfmt_src_row(o, l->heads, l->head_dim) * ng;
        for (int g = 0; g < ng; g++) {
            uint16_t h = qc_f32_to_f16(sc[g]);
            uint8_t *d = buf + ((size_t)g * rows + o) * 2;
            d[0] = (uint8_t)h, d[1] = (uint8_t)(h >> 8);
        }
    }
}

bool qc_qfmt_differs(const qc_qweight *q, const qc_qweight *base) {
    int gq = q->groupsize > 0 ? q->groupsize : -1, gb = base->groupsize > 0 ? base->groupsize : -1;
    return q->bits != base->bits || gq != gb || q->sym != base->sym;
}

/* The settings most quantized linears of p have: the first linear whose settings no other
 * settings outnumber. NULL when none is quantized. */
static const qc_qweight *base_linear(const qc_qfmt_plan *p) {
    const qc_qweight *best = NULL;
    int best_n = 0;
    for (int i = 0; i < p->n; i++) {
        const qc_qweight *q = p->m[i].q;
        if (!q || (best && !qc_qfmt_differs(q, best))) continue;
        int n = 0;
        for (int j = 0; j < p->n; j++) n += p->m[j].q && !qc_qfmt_differs(p->m[j].q, q);
        if (n > best_n) best = q, best_n = n;
    }
    return best;
}

/* The plan of src's linears, each checked: fmt->check, and quantized unless fmt is mixed. */
static qc_status plan_source(const qc_qfmt *fmt, const void *opts, const qc_weight_source *src, qc_qfmt_plan *p,
                             qc_err *e) {
    const qc_config *c = src->cfg;
    if (src->qweight && src->qweight(src->ctx, QC_W_EMBED, 0))
        return qc_fail(e, QC_ERR_UNSUPPORTED,
                       "model.embed_tokens: the token embedding is quantized, but %s checkpoints hold it in fp16 "
                       "(transformers and vLLM load only their linears quantized); use --format gguf, llama2c or "
                       "fake for a quantized embedding",
                       fmt->name);
    p->n = 0;
    p->m = qc_calloc((size_t)c->n_layers * NLINEAR, sizeof *p->m, e, fmt->name);
    if (!p->m) return QC_ERR_NOMEM;
    for (int l = 0; l < c->n_layers; l++)
        for (int k = 0; k < NLAYER_W; k++) {
            if (!qc_weight_is_linear(layer_order[k])) continue;
            qc_qfmt_module *m = &p->m[p->n++];
            m->w = layer_order[k], m->layer = l;
            linear_prefix(m->w, l, m->name, sizeof m->name);
            m->q = src->qweight ? src->qweight(src->ctx, m->w, l) : NULL;
            if (!m->q && !fmt->mixed)
                return qc_fail(e, QC_ERR_ARG, "%s: not quantized; the %s format needs every linear quantized",
                               m->name, fmt->name);
        }
    if (!(p->base = base_linear(p)))
        return qc_fail(e, QC_ERR_ARG, "no linear is quantized; a %s checkpoint needs at least one", fmt->name);
    for (int i = 0; i < p->n && src->qweight; i++) {
        int rows, cols;
        qc_weight_shape(c, p->m[i].w, &rows, &cols);
        /* asked for again: a spilled source keeps only the result asked for last resident, and
         * the check reads every code */
        const qc_qweight *q = src->qweight(src->ctx, p->m[i].w, p->m[i].layer);
        qc_status st = q ? fmt->check(opts, q, p->base, p->m[i].name, rows, cols, e) : QC_OK;
        if (st) return st;
    }
    return QC_OK;
}

/* config.json, then the format's own JSON file. */
static qc_status write_json(const qc_qfmt *fmt, const void *opts, const qc_config *c, const qc_qfmt_plan *p,
                            const qc_outdir *d, qc_err *e) {
    qc_sb text = { 0 }, qc = { 0 };
    fmt->quant_config(opts, p, &qc);
    qc_hf_config_json(c, QC_DT_F16, qc.failed ? "{}" : qc.s, &text);
    if (qc.failed) text.failed = true;
    qc_status st = qc_sb_write_file(d, "config.json", &text, e);
    if (!st) {
        text.len = 0;
        fmt->extra_json(opts, p, &text);
        st = qc_sb_write_file(d, fmt->extra_file, &text, e);
    }
    qc_sb_free(&text);
    qc_sb_free(&qc);
    return st;
}

/* model.safetensors being declared (writing false) or written. */
typedef struct qfmt_writer {
    const qc_qfmt *fmt;
    const void *opts;
    const qc_weight_source *src;
    const qc_qfmt_plan *plan;
    qc_safetensors_writer *w;
    bool writing;
    float *f32;              /* scratch: the largest float weight (and a permuted copy of q/k) */
    uint8_t *buf;            /* scratch: its F16 bytes, or the largest packed tensor */
    const qc_log *log;
    qc_err *e;
} qfmt_writer;

/* A weight stored in F16, rounded from src->read (q and k rows, weights' and biases', in HF's
 * order): every weight that is not a quantized linear. */
static qc_status put_float(const qfmt_writer *x, qc_weight wt, int layer) {
    const qc_config *c = x->src->cfg;
    char name[128];
    int rows, cols;
    qc_weight_hf_name(wt, layer, name, sizeof name);
    qc_weight_shape(c, wt, &rows, &cols);
    int64_t shape[2] = { rows, cols };
    if (!x->writing) return qc_safetensors_writer_add(x->w, name, QC_DT_F16, qc_weight_is_vector(wt) ? 1 : 2, shape, x->e);
    size_t n = (size_t)rows * cols;
    float *v = x->f32;
    qc_status st = x->src->read(x->src->ctx, wt, layer, v, x->e);
    if (st) return qc_fail_prefix(x->e, st, "reading %s", name);
    int heads = qc_weight_rope_heads(c, wt);
    if (heads) { /* the permuted copy goes after it in the scratch */
        qc_rope_rows_to_hf(v, v + n, heads, c->head_dim, cols);
        v += n;
    }
    if ((st = qc_check_dtype_range(QC_DT_F16, v, n, (size_t)cols, "model.safetensors", name, x->e))) return st;
    qc_convert_from_f32(QC_DT_F16, v, n, x->buf);
    return qc_safetensors_writer_write(x->w, name, x->buf, n * 2, x->e);
}

/* A linear: the format's tensors, each packed in buf; F16 PREFIX.weight when not quantized.
 * The writing pass asks src for the qweight again (a source may page it in only then). */
static qc_status put_linear(const qfmt_writer *x, const qc_qfmt_module *m) {
    if (!m->q) return put_float(x, m->w, m->layer);
    const qc_config *c = x->src->cfg;
    int rows, cols;
    qc_weight_shape(c, m->w, &rows, &cols);
    qc_qfmt_tensor t[QC_QFMT_MAX_TENSORS];
    int nt = x->fmt->tensors(rows, cols, m->q, t);
    qc_qfmt_linear l = { .q = x->writing ? x->src->qweight(x->src->ctx, m->w, m->layer) : NULL,
                         .heads = qc_weight_rope_heads(c, m->w),
                         .head_dim = c->head_dim,
                         .opts = x->opts };
    char name[128];
    qc_status st = QC_OK;
    for (int i = 0; i < nt && !st; i++) {
        snprintf(name, sizeof name, "%s.%s", m->name, t[i].suffix);
        if (!x->writing) {
            st = qc_safetensors_writer_add(x->w, name, t[i].dtype, t[i].ndim, t[i].shape, x->e);
            continue;
        }
        size_t n = tensor_bytes(&t[i]);
        memset(x->buf, 0, n);
        t[i].pack(&l, &t[i], x->buf);
        st = qc_safetensors_writer_write(x->w, name, x->buf, n, x->e);
    }
    return st;
}

/* Every tensor in model order; progress is reported per linear written. */
static qc_status walk(const qfmt_writer *x) {
    const qc_config *c = x->src->cfg;
    int next = 0; /* the plan's linears come in the same order */
    qc_status st = put_float(x, QC_W_EMBED, 0);
    for (int l = 0; l < c->n_layers && !st; l++)
        for (int k = 0; k < NLAYER_W && !st; k++) {
            qc_weight wt = layer_order[k];
            if (!qc_weight_present(c, wt)) continue;
            if (!qc_weight_is_linear(wt)) {
                st = put_float(x, wt, l);
                continue;
            }
            const qc_qfmt_module *m = &x->plan->m[next++];
            QC_ASSERT(m->w == wt && m->layer == l);
            st = put_linear(x, m);
            if (x->writing) qc_progress(x->log, "export", next, x->plan->n, m->name);
        }
    if (!st) st = put_float(x, QC_W_FINAL_NORM, 0);
    if (!st && !c->tied_classifier) st = put_float(x, QC_W_CLASSIFIER, 0);
    return st;
}

/* Floats of scratch put_float needs: the largest weight, twice for q and k (the permuted copy). */
static size_t float_scratch(const qc_config *c) {
    size_t most = 0;
    for (int w = 0; w < QC_W_COUNT; w++) {
        int rows, cols;
        qc_weight_shape(c, (qc_weight)w, &rows, &cols);
        size_t n = (size_t)rows * cols * (qc_weight_rope_heads(c, (qc_weight)w) ? 2 : 1);
        if (n > most) most = n;
    }
    return most;
}

/* The bytes of the largest packed tensor of the plan's quantized linears. */
static size_t packed_scratch(const qc_qfmt *fmt, const qc_config *c, const qc_qfmt_plan *p) {
    size_t most = 0;
    for (int i = 0; i < p->n; i++) {
        if (!p->m[i].q) continue;
        int rows, cols;
        qc_weight_shape(c, p->m[i].w, &rows, &cols);
        qc_qfmt_tensor t[QC_QFMT_MAX_TENSORS];
        int nt = fmt->tensors(rows, cols, p->m[i].q, t);
        for (int k = 0; k < nt; k++)
            if (tensor_bytes(&t[k]) > most) most = tensor_bytes(&t[k]);
    }
    return most;
}

/* "GPTQ 4-bit, ...; 3 linears with their own settings, 1 in F16" for the debug log. */
static void describe(const qc_qfmt *fmt, const void *opts, const qc_qfmt_plan *p, char *buf, size_t size) {
    fmt->describe(opts, p->base, buf, size);
    int own = 0, f16 = 0;
    for (int i = 0; i < p->n; i++) {
        if (!p->m[i].q) f16++;
        else own += qc_qfmt_differs(p->m[i].q, p->base);
    }
    size_t len = strlen(buf);
    if (own + f16 && len < size)
        snprintf(buf + len, size - len, "; %d linears with their own settings, %d in F16", own, f16);
}

qc_status qc_qfmt_export(const qc_qfmt *fmt, const void *opts, const qc_weight_source *src, const qc_outdir *d,
                         const qc_log *log, qc_err *e) {
    const qc_config *c = src->cfg;
    const char *dir = d->path;
    qc_status st = qc_hf_check_config(c, dir, e);
    if (st) return st;
    qc_qfmt_plan plan = { 0 };
    if ((st = plan_source(fmt, opts, src, &plan, e))) {
        free(plan.m);
        return qc_fail_prefix(e, st, "%s", dir);
    }
    size_t most_f = float_scratch(c), most_b = packed_scratch(fmt, c, &plan);
    if (most_b < most_f * 2) most_b = most_f * 2;
    char what[32];
    snprintf(what, sizeof what, "%s export buffer", fmt->name);
    float *f32 = qc_malloc(most_f, sizeof(float), e, what);
    uint8_t *buf = f32 ? qc_malloc(most_b, 1, e, what) : NULL;
    char *path = buf ? qc_outdir_file(d, "model.safetensors") : NULL;
    qc_safetensors_writer *w = path ? qc_safetensors_writer_new(e) : NULL;
    if (!w) {
        if (buf && !path) qc_fail(e, QC_ERR_NOMEM, "out of memory");
        free(f32), free(buf), free(path), free(plan.m);
        return QC_ERR_NOMEM;
    }
    char desc[192];
    describe(fmt, opts, &plan, desc, sizeof desc);
    qc_logf(log, QC_LOG_DEBUG, "writing %s: %s", dir, desc);
    if (fmt->notes) fmt->notes(opts, &plan, dir, log);

    qfmt_writer x = { .fmt = fmt, .opts = opts, .src = src, .plan = &plan, .w = w, .f32 = f32, .buf = buf,
                      .log = log, .e = e };
    st = write_json(fmt, opts, c, &plan, d, e);
    if (!st) st = qc_safetensors_writer_meta(w, "format", "pt", e);
    if (!st) st = walk(&x);
    if (!st) st = qc_safetensors_writer_begin(w, path, e);
    x.writing = true;
    if (!st) st = walk(&x);
    if (!st) st = qc_safetensors_writer_finish(w, e);
    qc_safetensors_writer_free(w);
    free(path);
    free(f32);
    free(buf);
    free(plan.m);
    return st ? qc_fail_prefix(e, st, "%s", dir) : QC_OK;
}
