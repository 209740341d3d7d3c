/* awq_format.c — AutoAWQ "GEMM" safetensors checkpoints (AutoAWQ, transformers' AwqConfig,
 * vLLM), written from a weight source whose linears are quantized, and read back with
 * on-the-fly dequantization (QUANT-SPEC §7).
 *
 * Folder written (inside a qc_outdir):
 *   config.json        export_hf.c's fields (torch_dtype "float16") + "quantization_config":
 *                      AutoAWQ's to_transformers_dict(): {quant_method "awq", zero_point true,
 *                      group_size (−1: per channel), bits 4, version "gemm",
 *                      modules_to_not_convert null}
 *   quant_config.json  AutoAWQ's own AwqConfig.to_dict(): {zero_point, q_group_size, w_bit,
 *                      version "GEMM", modules_to_not_convert}
 *   model.safetensors  per linear PREFIX, for in × out = cols × rows, g = group size (in when
 *                      per channel):
 *     PREFIX.qweight  I32 [in, out/8]    row c holds the codes of input c: word j packs output
 *                                        columns 8j..8j+7, nibble i (bits 4i..4i+3) holding
 *                                        column 8j + order[i], order = 0,2,4,6,1,3,5,7
 *     PREFIX.qzeros   I32 [in/g, out/8]  the zero points, same packing, stored as they are
 *     PREFIX.scales   F16 [in/g, out]
 *                      and F16 embedding, norms, lm_head unless tied.
 *   Value of weight (o, c) = (code − zero) · scale with the group of c = c / g: the same fp32
 *   product as qc_qweight_dequantize (multiplication commutes exactly).
 *
 * Q/K output columns are in HF's rotate-half order, as for GPTQ (gptq_format.c).
 *
 * What AutoAWQ's WQLinear_GEMM requires, and so what is refused (before anything is
 * written), each with a message naming the linear: 4 bits only; in % group size == 0 (no
 * short last group); out % 8 == 0 (whole words; there is no padding in this layout: stories260K's
 * gate/up (out 172) and down (in 172) need the FFN width padded first, e.g. with
 * qc_checkpoint_pad_ffn to a multiple of the group size and of 8); contiguous groups
 * (g_idx = c / group size: AWQ has no g_idx, so act-order results must go to GPTQ); no mins;
 * fp16-exact scales; integer zero points in 0..15; one bits/group size for every linear.
 *
 * Memory: one linear's packed tensors at a time. */
#include "io/qformat.h"

#include <stdlib.h>
#include <string.h>

static const qc_weight linears[] = { QC_W_Q, QC_W_K, QC_W_V, QC_W_O, QC_W_GATE, QC_W_UP, QC_W_DOWN };
#define NLINEAR ((int)(sizeof linears / sizeof linears[0]))

/* "model.layers.L.self_attn.q_proj": the HF name without ".weight". */
static void linear_prefix(qc_weight w, int layer, char *buf, size_t size) {
    qc_weight_hf_name(w, layer, buf, size);
    QC_ASSERT(qc_str_ends_with(buf, ".weight"));
    buf[strlen(buf) - strlen(".weight")] = '\0';
}

/* ---- writing ------------------------------------------------------------------------------------ */

/* Validates every linear of src against AutoAWQ's requirements and the first linear; *first
 * gets it. */
static qc_status check_source(const qc_weight_source *src, const qc_qweight **first, qc_err *e) {
    const qc_config *c = src->cfg;
    *first = NULL;
    for (int l = 0; l < c->n_layers; l++)
        for (int k = 0; k < NLINEAR; k++) {
            char name[96];
            linear_prefix(linears[k], l, name, sizeof name);
            const qc_qweight *q = src->qweight ? src->qweight(src->ctx, linears[k], l) : NULL;
            if (!q) return qc_fail(e, QC_ERR_ARG, "%s: not quantized; the AWQ format needs every linear quantized", name);
            int rows, cols;
            qc_weight_shape(c, linears[k], &rows, &cols);
            if (q->bits != 4)
                return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: %d bits; AutoAWQ's GEMM format holds 4-bit weights only "
                               "(use the GPTQ format for %d bits)", name, q->bits, q->bits);
            const qc_qweight *f = *first ? *first : q;
            if (q->groupsize != f->groupsize)
                return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: group size %d; the first linear has %d: an AWQ checkpoint "
                               "has one group size for every linear", name, q->groupsize, f->groupsize);
            qc_status st = qc_qfmt_check_qweight(q, name, rows, cols, 0.0f, 15.0f, "AWQ", e);
            if (st) return st;
            if (!qc_qfmt_gidx_trivial(q))
                return qc_fail(e, QC_ERR_UNSUPPORTED,
                               "%s: act-order groups (g_idx is not column / group size): AWQ stores no g_idx, "
                               "only contiguous groups; use the GPTQ format (desc_act) for act-order results", name);
            if (q->groupsize > 0 && cols % q->groupsize != 0)
                return qc_fail(e, QC_ERR_UNSUPPORTED,
                               "%s: in_features %d is not a multiple of group size %d; AutoAWQ's GEMM layout has no "
                               "short last group (pad the FFN width first, e.g. qc_checkpoint_pad_ffn)",
                               name, cols, q->groupsize);
            if (rows % 8 != 0)
                return qc_fail(e, QC_ERR_UNSUPPORTED,
                               "%s: out_features %d is not a multiple of 8; AutoAWQ's GEMM layout packs 8 output "
                               "columns per word (pad the FFN width first, e.g. qc_checkpoint_pad_ffn)", name, rows);
            *first = f;
        }
    return QC_OK;
}

/* Declares every tensor of model.safetensors, in model order. */
static qc_status declare(qc_st_writer *w, const qc_config *c, const qc_qweight *f, qc_err *e) {
    char name[128];
    int64_t shape[2];
    qc_status st = QC_OK;
    int rows, cols;
#define ADD(nd, dt, ...)                                                        \
    do {                                                                        \
        if (!st) {                                                              \
            snprintf(name, sizeof name, __VA_ARGS__);                           \
            st = qc_st_writer_add(w, name, dt, nd, shape, e);                   \
        }                                                                       \
    } while (0)
    qc_weight_shape(c, QC_W_EMBED, &rows, &cols);
    shape[0] = rows, shape[1] = cols;
    ADD(2, QC_DT_F16, "model.embed_tokens.weight");
    for (int l = 0; l < c->n_layers; l++) {
        shape[0] = c->dim;
        ADD(1, QC_DT_F16, "model.layers.%d.input_layernorm.weight", l);
        for (int k = 0; k < NLINEAR; k++) {
            if (linears[k] == QC_W_GATE) {
                shape[0] = c->dim;
                ADD(1, QC_DT_F16, "model.layers.%d.post_attention_layernorm.weight", l);
            }
            char p[96];
            linear_prefix(linears[k], l, p, sizeof p);
            qc_weight_shape(c, linears[k], &rows, &cols);
            int64_t ng = f->groupsize > 0 ? cols / f->groupsize : 1;
            shape[0] = cols, shape[1] = rows / 8;
            ADD(2, QC_DT_I32, "%s.qweight", p);
            shape[0] = ng, shape[1] = rows / 8;
            ADD(2, QC_DT_I32, "%s.qzeros", p);
            shape[0] = ng, shape[1] = rows;
            ADD(2, QC_DT_F16, "%s.scales", p);
        }
    }
    shape[0] = c->dim;
    ADD(1, QC_DT_F16, "model.norm.weight");
    if (!c->tied_classifier) {
        qc_weight_shape(c, QC_W_CLASSIFIER, &rows, &cols);
        shape[0] = rows, shape[1] = cols;
        ADD(2, QC_DT_F16, "lm_head.weight");
    }
#undef ADD
    return st;
}

/* ORs 4-bit v into the little-endian word holding output column o, at its AutoAWQ nibble. */
static void or_nibble(uint8_t *word, int o, uint32_t v) {
    word[qc_awq_nibble[o % 8] / 2] |= (uint8_t)(v << 4 * (qc_awq_nibble[o % 8] % 2));
}

/* The three tensors of one linear, packed in buf. */
static qc_status write_linear(qc_st_writer *w, const qc_config *c, qc_weight wt, int layer, const qc_qweight *q,
                              uint8_t *buf, qc_err *e) {
    int rows = q->rows, cols = q->cols, ng = q->ngroups, ow = rows / 8;
    int heads = wt == QC_W_Q ? c->n_heads : wt == QC_W_K ? c->n_kv_heads : 0;
    char p[96], name[128];
    linear_prefix(wt, layer, p, sizeof p);

    size_t n = (size_t)cols * ow * 4; /* qweight [in, out/8] */
    memset(buf, 0, n);
    for (int o = 0; o < rows; o++) {
        const uint8_t *codes = q->codes + (size_t)qc_qfmt_src_row(o, heads, c->head_dim) * cols;
        for (int k = 0; k < cols; k++) or_nibble(buf + ((size_t)k * ow + o / 8) * 4, o, codes[k]);
    }
    snprintf(name, sizeof name, "%s.qweight", p);
    qc_status st = qc_st_writer_write(w, name, buf, n, e);
    if (st) return st;

    n = (size_t)ng * ow * 4; /* qzeros [ngroups, out/8] */
    memset(buf, 0, n);
    for (int o = 0; o < rows; o++) {
        const float *z = q->zeros + (size_t)qc_qfmt_src_row(o, heads, c->head_dim) * ng;
        for (int g = 0; g < ng; g++) or_nibble(buf + ((size_t)g * ow + o / 8) * 4, o, (uint32_t)z[g]);
    }
    snprintf(name, sizeof name, "%s.qzeros", p);
    if ((st = qc_st_writer_write(w, name, buf, n, e))) return st;

    for (int o = 0; o < rows; o++) { /* scales [ngroups, out] */
        const float *sc = q->scales + (size_t)qc_qfmt_src_row(o, heads, c->head_dim) * ng;
        for (int g = 0; g < ng; g++) {
            uint16_t h = qc_f32_to_f16(sc[g]);
            uint8_t *d = buf + ((size_t)g * rows + o) * 2;
            d[0] = (uint8_t)h, d[1] = (uint8_t)(h >> 8);
        }
    }
    snprintf(name, sizeof name, "%s.scales", p);
    return qc_st_writer_write(w, name, buf, (size_t)ng * rows * 2, e);
}

qc_status qc_export_awq_into(const qc_weight_source *src, const qc_outdir *d, const qc_log *log, qc_err *e) {
    const qc_config *c = src->cfg;
    const char *dir = d->path;
    qc_status st = qc_config_validate(c, dir, e);
    if (st) return st;
    const qc_qweight *f;
    if ((st = check_source(src, &f, e))) return qc_fail_prefix(e, st, "%s", dir);
    int gs = f->groupsize > 0 ? f->groupsize : -1;

    size_t most_f = (size_t)c->vocab_size * c->dim, most_b = most_f * 2;
    for (int k = 0; k < NLINEAR; k++) {
        int rows, cols;
        qc_weight_shape(c, linears[k], &rows, &cols);
        int ng = f->groupsize > 0 ? cols / f->groupsize : 1;
        /* qweight, qzeros, scales */
        size_t need[] = { (size_t)cols * rows / 2, (size_t)ng * rows / 2, (size_t)ng * rows * 2 };
        for (int i = 0; i < 3; i++)
            if (need[i] > most_b) most_b = need[i];
    }
    float *f32 = qc_malloc(most_f, sizeof(float), e, "AWQ export buffer");
    uint8_t *buf = f32 ? qc_malloc(most_b, 1, e, "AWQ export buffer") : NULL;
    char *path = buf ? qc_outdir_file(d, "model.safetensors") : NULL;
    qc_st_writer *w = path ? qc_st_writer_new(e) : NULL;
    if (!w) {
        if (buf && !path) qc_fail(e, QC_ERR_NOMEM, "out of memory");
        free(f32), free(buf), free(path);
        return QC_ERR_NOMEM;
    }
    qc_logf(log, QC_LOG_DEBUG, "writing %s: AWQ GEMM 4-bit, group size %d", dir, gs);

    qc_sb text = { 0 }, qc = { 0 };
    qc_sb_printf(&qc, "{\n    \"quant_method\": \"awq\",\n    \"zero_point\": true,\n    \"group_size\": %d,\n"
                      "    \"bits\": 4,\n    \"version\": \"gemm\",\n    \"modules_to_not_convert\": null\n  }", gs);
    qc_qfmt_config_json(c, qc.failed ? "{}" : qc.s, &text);
    if (qc.failed) text.failed = true;
    st = qc_qfmt_write_text(d, "config.json", &text, e);
    if (!st) {
        text.len = 0;
        qc_sb_printf(&text, "{\n    \"zero_point\": true,\n    \"q_group_size\": %d,\n    \"w_bit\": 4,\n"
                            "    \"version\": \"GEMM\",\n    \"modules_to_not_convert\": null\n}\n", gs);
        st = qc_qfmt_write_text(d, "quant_config.json", &text, e);
    }
    qc_sb_free(&text);
    qc_sb_free(&qc);

    if (!st) st = qc_st_writer_meta(w, "format", "pt", e);
    if (!st) st = declare(w, c, f, e);
    if (!st) st = qc_st_writer_begin(w, path, e);
    int done = 0, total = 7 * c->n_layers;
    size_t dim = (size_t)c->dim, emb = (size_t)c->vocab_size * dim;
    if (!st) st = qc_qfmt_write_f16(src, w, QC_W_EMBED, 0, "model.embed_tokens.weight", emb, f32, buf, e);
    for (int l = 0; l < c->n_layers && !st; l++) {
        char name[128];
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
        st = qc_qfmt_write_f16(src, w, QC_W_ATTN_NORM, l, name, dim, f32, buf, e);
        for (int k = 0; k < NLINEAR && !st; k++) {
            if (linears[k] == QC_W_GATE) {
                snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
                if ((st = qc_qfmt_write_f16(src, w, QC_W_FFN_NORM, l, name, dim, f32, buf, e))) break;
            }
            st = write_linear(w, c, linears[k], l, src->qweight(src->ctx, linears[k], l), buf, e);
            linear_prefix(linears[k], l, name, sizeof name);
            qc_progress(log, "export", ++done, total, name);
        }
    }
    if (!st) st = qc_qfmt_write_f16(src, w, QC_W_FINAL_NORM, 0, "model.norm.weight", dim, f32, buf, e);
    if (!st && !c->tied_classifier)
        st = qc_qfmt_write_f16(src, w, QC_W_CLASSIFIER, 0, "lm_head.weight", emb, f32, buf, e);
    if (!st) st = qc_st_writer_finish(w, e);
    qc_st_writer_free(w);
    free(path);
    free(f32);
    free(buf);
    return st ? qc_fail_prefix(e, st, "%s", dir) : QC_OK;
}

/* ---- reading ------------------------------------------------------------------------------------ */

/* One quantized linear as found in the file. */
typedef struct awq_aux {
    const uint8_t *qweight, *qzeros, *scales; /* borrowed from the mapping */
    qc_dtype scales_dt;
    int in, out, groupsize; /* groupsize: in when per channel */
    char qtype[32];         /* "awq-4bit-g128" */
} awq_aux;

/* Rows in tiles of DECODE_TILE (in parallel when the work is large): input by input, the
 * tile's rows sit in DECODE_TILE/8 adjacent words; scales and zero points are gathered when
 * the group changes. */
#define DECODE_TILE 32
#define DECODE_PAR_MIN ((int64_t)1 << 14)

static void awq_decode_tile(const awq_aux *a, int64_t o1, int n, float *out) {
    float sc[DECODE_TILE], zp[DECODE_TILE];
    size_t ow = (size_t)a->out / 8, ssz = qc_dtype_size(a->scales_dt);
    for (int k = 0; k < a->in; k++) {
        if (k % a->groupsize == 0) {
            size_t g = (size_t)(k / a->groupsize);
            const uint8_t *zrow = a->qzeros + g * ow * 4, *srow = a->scales + g * (size_t)a->out * ssz;
            for (int r = 0; r < n; r++) {
                int64_t o = o1 + r;
                const uint8_t *sp = srow + (size_t)o * ssz;
                if (a->scales_dt == QC_DT_F16) sc[r] = qc_f16_to_f32((uint16_t)(sp[0] | sp[1] << 8));
                else qc_convert_to_f32(a->scales_dt, sp, 1, &sc[r]);
                zp[r] = (float)(qc_le32(zrow + (size_t)(o / 8) * 4) >> 4 * qc_awq_nibble[o % 8] & 15);
            }
        }
        const uint8_t *qrow = a->qweight + (size_t)k * ow * 4;
        for (int r = 0; r < n; r++) {
            int64_t o = o1 + r;
            uint32_t code = qc_le32(qrow + (size_t)(o / 8) * 4) >> 4 * qc_awq_nibble[o % 8] & 15;
            out[(size_t)r * a->in + k] = qc_qvalue((float)code, sc[r], zp[r]);
        }
    }
}

static qc_status awq_decode(const qc_checkpoint *ck, const qc_ck_loc *loc, int64_t row0, int nrows, int cols,
                            float *out, qc_err *e) {
    const awq_aux *a = loc->aux;
    QC_ASSERT(cols == a->in && row0 >= 0 && row0 + nrows <= a->out);
    int ntiles = (nrows + DECODE_TILE - 1) / DECODE_TILE;
#pragma omp parallel for schedule(static) if ((int64_t)nrows * cols > DECODE_PAR_MIN)
    for (int t = 0; t < ntiles; t++) {
        int r1 = t * DECODE_TILE, n = nrows - r1 < DECODE_TILE ? nrows - r1 : DECODE_TILE;
        awq_decode_tile(a, row0 + r1, n, out + (size_t)r1 * cols);
    }
    return QC_OK;
}

/* Finds PREFIX.suffix, checks its dtype (I32, or a float type) and its shape [r, c]. */
static qc_status awq_tensor(qc_hfq_find find, const void *files, const qc_checkpoint *ck, const char *prefix,
                            const char *suffix, bool is_float, int64_t r, int64_t c, const char *why,
                            const qc_st_tensor **out, qc_err *e) {
    char name[160];
    snprintf(name, sizeof name, "%s.%s", prefix, suffix);
    const char *where = NULL;
    const qc_st_tensor *t = *out = find(files, ck, name, &where);
    if (!t) return qc_fail(e, QC_ERR_FORMAT, "%s: missing tensor '%s' (%s)", where, name, why);
    bool dt_ok = is_float ? t->dtype == QC_DT_F16 || t->dtype == QC_DT_BF16 || t->dtype == QC_DT_F32
                          : t->dtype == QC_DT_I32;
    if (!dt_ok)
        return qc_fail(e, QC_ERR_FORMAT, "%s: tensor '%s': dtype %s, %s expected", where, name,
                       qc_dtype_name(t->dtype), is_float ? "F16" : "I32");
    if (t->ndim != 2 || t->shape[0] != r || t->shape[1] != c) {
        char got[96] = "[";
        size_t n = 1;
        for (int i = 0; i < t->ndim && n < sizeof got; i++)
            n += (size_t)snprintf(got + n, sizeof got - n, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        if (n < sizeof got) snprintf(got + n, sizeof got - n, "]");
        return qc_fail(e, QC_ERR_FORMAT, "%s: tensor '%s': shape %s, but config.json implies [%lld, %lld] (%s)",
                       where, name, got, (long long)r, (long long)c, why);
    }
    return QC_OK;
}

qc_status qc_awq_locate(qc_checkpoint *ck, const qc_hf_quant *q, const char *prefix, int rows, int cols,
                        qc_hfq_find find, const void *files, qc_ck_loc *loc, qc_err *e) {
    int gs = q->group_size > 0 ? q->group_size : cols;
    char name[160];
    snprintf(name, sizeof name, "%s.qweight", prefix);
    const char *where = NULL;
    find(files, ck, name, &where);
    if (rows % 8 != 0 || cols % gs != 0)
        return qc_fail(e, QC_ERR_FORMAT,
                       "%s: '%s': AWQ GEMM needs out %% 8 == 0 and in %% group_size == 0; this linear is %d × %d "
                       "with group_size %d", where, prefix, rows, cols, q->group_size);
    char why[128];
    snprintf(why, sizeof why, "AWQ GEMM 4-bit, group size %d, in %d, out %d", q->group_size, cols, rows);
    const qc_st_tensor *qw, *qz, *sc;
    qc_status st;
    if ((st = awq_tensor(find, files, ck, prefix, "qweight", false, cols, rows / 8, why, &qw, e)) ||
        (st = awq_tensor(find, files, ck, prefix, "qzeros", false, cols / gs, rows / 8, why, &qz, e)) ||
        (st = awq_tensor(find, files, ck, prefix, "scales", true, cols / gs, rows, why, &sc, e)))
        return st;
    awq_aux *a = qc_calloc(1, sizeof *a, e, prefix);
    if (!a) return QC_ERR_NOMEM;
    *a = (awq_aux){ .qweight = qw->data, .qzeros = qz->data, .scales = sc->data, .scales_dt = sc->dtype,
                    .in = cols, .out = rows, .groupsize = gs };
    if (q->group_size > 0) snprintf(a->qtype, sizeof a->qtype, "awq-4bit-g%d", gs);
    else snprintf(a->qtype, sizeof a->qtype, "awq-4bit-gch");
    if ((st = qc_ck_own(ck, a, e))) return st;
    *loc = (qc_ck_loc){ .data = qw->data, .dtype = QC_DT_I32, .decode = awq_decode, .aux = a, .qtype = a->qtype };
    return QC_OK;
}
