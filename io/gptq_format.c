/* gptq_format.c — GPTQ safetensors checkpoints (AutoGPTQ / GPTQModel / transformers / vLLM),
 * written from a weight source whose linears are quantized, and read back with on-the-fly
 * dequantization (QUANT-SPEC §7).
 *
 * Folder written (inside a qc_outdir):
 *   config.json           export_hf.c's fields (torch_dtype "float16") + "quantization_config":
 *                         {quant_method "gptq", bits, group_size (−1: per channel),
 *                          damp_percent, desc_act, static_groups, sym, true_sequential,
 *                          checkpoint_format "gptq" | "gptq_v2"} (transformers' GPTQConfig)
 *   quantize_config.json  AutoGPTQ's BaseQuantizeConfig.to_dict(): the same fields plus
 *                         model_name_or_path null, model_file_base_name "model"
 *   model.safetensors     per linear PREFIX (model.layers.L.self_attn.{q,k,v,o}_proj,
 *                         model.layers.L.mlp.{gate,up,down}_proj), for in × out = cols × rows:
 *     PREFIX.qweight  I32 [in_words, out]     codes packed along the input dimension: column
 *                                             o is a bit stream, code k at bits [k·bits,
 *                                             (k+1)·bits), lowest first (qpack.c; 3-bit codes
 *                                             straddle words exactly as AutoGPTQ packs them)
 *     PREFIX.qzeros   I32 [ngroups, out_words] zero points packed the same way along the
 *                                             output dimension; v1 ("gptq") stores zero − 1,
 *                                             v2 ("gptq_v2") the zero itself
 *     PREFIX.scales   F16 [ngroups, out]
 *     PREFIX.g_idx    I32 [in]                the group of each input column
 *                         and F16 model.embed_tokens.weight, the norms, and lm_head.weight
 *                         unless tied (from the source's read(), rounded to fp16).
 *   Value of weight (o, c) = scales[g, o] · (code(o, c) − zero(g, o)), g = g_idx[c], zero =
 *   qzeros entry (+ 1 in v1) — in fp32, the same expression as qc_qweight_dequantize, so a
 *   round trip is bit-exact.
 *
 * Output features are HF rows: for q_proj/k_proj in HF's rotate-half order (interleaved row
 * 2i + j of a head at j·head_dim/2 + i), so qweight/qzeros/scales columns are permuted.
 *
 * Widths that do not fill whole words (e.g. stories260K's down_proj, in = 172: 172·4/32 =
 * 21.5 words). AutoGPTQ sizes qweight as in // 32 · bits and its packing loop silently drops
 * the tail, so its kernels need in % 32 == 0 (GPTQModel's generic torch kernel pads the
 * input to whole words instead). qcalib pads: the packed dimension is rounded up to whole
 * words with zero codes — to a multiple of 32/bits codes for 2, 4 and 8 bits, of 32 codes
 * (3 words) for 3 bits, whose packing is defined in 32-code blocks — so down_proj at 4 bits
 * has qweight [22, 64]. The true in stays recorded by g_idx's length (and the config's
 * intermediate_size); the padded codes are never read. qzeros is padded the same way along
 * out (gate/up at out = 172). Loaders that require in % 32 == 0 refuse such a file; qcalib
 * reads it back exactly.
 *
 * Refused (before anything is written): a linear without a quantized form, mixed bits / group
 * size / symmetry across linears, bits other than 2, 3, 4, 8, groups with mins, scales that
 * are not exactly fp16 values, zero points that are not integers the format can hold (v1
 * cannot hold a zero of 0: loaders add 1 to the stored value without wrapping), symmetric
 * weights whose zero points are not 2^(bits−1), and act-order g_idx with desc_act false
 * (loaders skip g_idx then).
 *
 * Memory: one linear's packed tensors (plus the source's qweight) at a time. */
#include "io/qformat.h"

#include <stdlib.h>
#include <string.h>

static const qc_weight linears[] = { QC_W_Q, QC_W_K, QC_W_V, QC_W_O, QC_W_GATE, QC_W_UP, QC_W_DOWN };
#define NLINEAR ((int)(sizeof linears / sizeof linears[0]))

/* "model.layers.L.self_attn.q_proj": the HF name without ".weight". */
static void linear_prefix(qc_weight w, int layer, char *buf, size_t size) {
    qc_weight_hf_name(w, layer, buf, size);
    size_t n = strlen(buf);
    QC_ASSERT(qc_str_ends_with(buf, ".weight"));
    buf[n - strlen(".weight")] = '\0';
}

/* Heads whose rows are permuted into HF's rotate-half order (Q, K), else 0. */
static int rope_heads(const qc_config *c, qc_weight w) {
    return w == QC_W_Q ? c->n_heads : w == QC_W_K ? c->n_kv_heads : 0;
}

/* ---- writing ------------------------------------------------------------------------------------ */

/* Validates every linear of src against the first one and the format; *first gets it. */
static qc_status check_source(const qc_weight_source *src, const qc_gptq_export_opts *o, const qc_qweight **first,
                              qc_err *e) {
    const qc_config *c = src->cfg;
    const char *how = o->checkpoint_format == 1
                          ? "GPTQ v1 (\"gptq\": qzeros hold zero - 1, and loaders add 1 back without wrapping, "
                            "so a zero point of 0 needs checkpoint_format gptq_v2)"
                          : "GPTQ v2 (\"gptq_v2\")";
    *first = NULL;
    for (int l = 0; l < c->n_layers; l++)
        for (int k = 0; k < NLINEAR; k++) {
            char name[96];
            linear_prefix(linears[k], l, name, sizeof name);
            const qc_qweight *q = src->qweight ? src->qweight(src->ctx, linears[k], l) : NULL;
            if (!q)
                return qc_fail(e, QC_ERR_ARG, "%s: not quantized; the GPTQ format needs every linear quantized", name);
            int rows, cols;
            qc_weight_shape(c, linears[k], &rows, &cols);
            const qc_qweight *f = *first ? *first : q;
            if (q->bits != 2 && q->bits != 3 && q->bits != 4 && q->bits != 8)
                return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: %d bits; GPTQ checkpoints hold 2, 3, 4 or 8", name, q->bits);
            if (q->bits != f->bits || q->groupsize != f->groupsize || q->sym != f->sym)
                return qc_fail(e, QC_ERR_UNSUPPORTED,
                               "%s: %d bits, group size %d, %s; the first linear has %d bits, group size %d, %s: "
                               "a GPTQ checkpoint has one quantization_config for every linear",
                               name, q->bits, q->groupsize > 0 ? q->groupsize : -1, q->sym ? "sym" : "asym", f->bits,
                               f->groupsize > 0 ? f->groupsize : -1, f->sym ? "sym" : "asym");
            float maxq = (float)((1 << q->bits) - 1);
            qc_status st = o->checkpoint_format == 1
                               ? qc_qfmt_check_qweight(q, name, rows, cols, 1.0f, maxq + 1.0f, how, e)
                               : qc_qfmt_check_qweight(q, name, rows, cols, 0.0f, maxq, how, e);
            if (st) return st;
            if (q->sym)
                for (size_t i = 0; i < (size_t)rows * q->ngroups; i++)
                    if (q->zeros[i] != (maxq + 1.0f) / 2.0f)
                        return qc_fail(e, QC_ERR_ARG,
                                       "%s: symmetric, but zero point %g (row %zu, group %zu) is not %g; loaders of "
                                       "sym=true checkpoints may assume it",
                                       name, (double)q->zeros[i], i / (size_t)q->ngroups, i % (size_t)q->ngroups,
                                       (double)((maxq + 1.0f) / 2.0f));
            if (!o->desc_act && !qc_qfmt_gidx_trivial(q))
                return qc_fail(e, QC_ERR_ARG,
                               "%s: g_idx is not column / group size (act-order groups), but desc_act is false: "
                               "loaders ignore g_idx then; export with desc_act true",
                               name);
            *first = f;
        }
    return QC_OK;
}

/* Packed tensor shapes of a linear of rows (out) × cols (in). */
typedef struct gptq_shapes {
    int64_t in_words, out_words, ngroups;
} gptq_shapes;

static gptq_shapes shapes_of(int rows, int cols, int bits, int groupsize) {
    return (gptq_shapes){ .in_words = qc_qpack_words(cols, bits),
                          .out_words = qc_qpack_words(rows, bits),
                          .ngroups = groupsize > 0 ? (cols + groupsize - 1) / groupsize : 1 };
}

/* Declares every tensor of model.safetensors, in model order (f: the first linear, whose
 * bits and group size every linear shares). */
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
            gptq_shapes s = shapes_of(rows, cols, f->bits, f->groupsize);
            shape[0] = s.in_words, shape[1] = rows;
            ADD(2, QC_DT_I32, "%s.qweight", p);
            shape[0] = s.ngroups, shape[1] = s.out_words;
            ADD(2, QC_DT_I32, "%s.qzeros", p);
            shape[0] = s.ngroups, shape[1] = rows;
            ADD(2, QC_DT_F16, "%s.scales", p);
            shape[0] = cols;
            ADD(1, QC_DT_I32, "%s.g_idx", p);
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

/* The four tensors of one linear, packed in buf (zeroed here as needed). */
static qc_status write_linear(qc_st_writer *w, const qc_config *c, qc_weight wt, int layer, const qc_qweight *q,
                              int zero_offset, uint8_t *buf, qc_err *e) {
    int rows = q->rows, cols = q->cols, bits = q->bits, ng = q->ngroups;
    int heads = rope_heads(c, wt);
    gptq_shapes s = shapes_of(rows, cols, bits, q->groupsize);
    char p[96], name[128];
    linear_prefix(wt, layer, p, sizeof p);

    size_t n = (size_t)s.in_words * rows * 4; /* qweight: column o (file order) is a stream along in */
    memset(buf, 0, n);
    if (32 % bits == 0) { /* whole words, written in file order (the general path is strided) */
        int per = 32 / bits;
        for (int64_t wd = 0; wd < s.in_words; wd++) {
            uint8_t *out = buf + (size_t)wd * rows * 4;
            for (int o = 0; o < rows; o++) {
                const uint8_t *codes = q->codes + (size_t)qc_qfmt_src_row(o, heads, c->head_dim) * cols;
                uint32_t v = 0;
                for (int j = 0; j < per && wd * per + j < cols; j++) v |= (uint32_t)codes[wd * per + j] << (j * bits);
                for (int i = 0; i < 4; i++) out[(size_t)o * 4 + i] = (uint8_t)(v >> 8 * i);
            }
        }
    } else {
        for (int o = 0; o < rows; o++) {
            const uint8_t *codes = q->codes + (size_t)qc_qfmt_src_row(o, heads, c->head_dim) * cols;
            for (int k = 0; k < cols; k++) qc_qpack_put(buf + (size_t)o * 4, (size_t)rows * 4, bits, k, codes[k]);
        }
    }
    snprintf(name, sizeof name, "%s.qweight", p);
    qc_status st = qc_st_writer_write(w, name, buf, n, e);
    if (st) return st;

    n = (size_t)ng * s.out_words * 4; /* qzeros: each group's row is a stream along out */
    memset(buf, 0, n);
    for (int o = 0; o < rows; o++) {
        const float *z = q->zeros + (size_t)qc_qfmt_src_row(o, heads, c->head_dim) * ng;
        for (int g = 0; g < ng; g++)
            qc_qpack_put(buf + (size_t)g * s.out_words * 4, 4, bits, o, (uint32_t)(int)z[g] - (uint32_t)zero_offset);
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
    if ((st = qc_st_writer_write(w, name, buf, (size_t)ng * rows * 2, e))) return st;

    for (int k = 0; k < cols; k++) {
        uint32_t g = (uint32_t)q->g_idx[k];
        for (int i = 0; i < 4; i++) buf[(size_t)k * 4 + i] = (uint8_t)(g >> 8 * i);
    }
    snprintf(name, sizeof name, "%s.g_idx", p);
    return qc_st_writer_write(w, name, buf, (size_t)cols * 4, e);
}

/* The fields config.json's quantization_config and quantize_config.json share. */
static void quant_fields(const qc_qweight *f, const qc_gptq_export_opts *o, qc_sb *b, const char *indent) {
    qc_sb_printf(b, "%s\"bits\": %d,\n%s\"group_size\": %d,\n%s\"damp_percent\": ", indent, f->bits, indent,
                 f->groupsize > 0 ? f->groupsize : -1, indent);
    qc_sb_json_float(b, o->damp_percent);
    qc_sb_printf(b, ",\n%s\"desc_act\": %s,\n%s\"static_groups\": %s,\n%s\"sym\": %s,\n%s\"true_sequential\": %s,\n",
                 indent, o->desc_act ? "true" : "false", indent, o->static_groups ? "true" : "false", indent,
                 f->sym ? "true" : "false", indent, o->true_sequential ? "true" : "false");
}

static const char *format_name(const qc_gptq_export_opts *o) {
    return o->checkpoint_format == 1 ? "gptq" : "gptq_v2";
}

qc_status qc_export_gptq_into(const qc_weight_source *src, const qc_outdir *d, const qc_gptq_export_opts *o,
                              const qc_log *log, qc_err *e) {
    const qc_config *c = src->cfg;
    const char *dir = d->path;
    if (o->checkpoint_format != 1 && o->checkpoint_format != 2)
        return qc_fail(e, QC_ERR_ARG, "%s: GPTQ checkpoint_format %d (1: \"gptq\", 2: \"gptq_v2\")", dir,
                       o->checkpoint_format);
    if (!(o->damp_percent > 0.0f && o->damp_percent < 1.0f))
        return qc_fail(e, QC_ERR_ARG, "%s: damp_percent %g: AutoGPTQ requires 0 < damp_percent < 1", dir,
                       (double)o->damp_percent);
    qc_status st = qc_config_validate(c, dir, e);
    if (st) return st;
    const qc_qweight *f;
    if ((st = check_source(src, o, &f, e))) return qc_fail_prefix(e, st, "%s", dir);

    /* Scratch: the largest float tensor (fp32 and F16) and the largest packed tensor. */
    size_t most_f = (size_t)c->vocab_size * c->dim, most_b = most_f * 2;
    for (int k = 0; k < NLINEAR; k++) {
        int rows, cols;
        qc_weight_shape(c, linears[k], &rows, &cols);
        gptq_shapes s = shapes_of(rows, cols, f->bits, f->groupsize);
        size_t need[] = { (size_t)s.in_words * rows * 4, (size_t)s.ngroups * s.out_words * 4,
                          (size_t)s.ngroups * rows * 2, (size_t)cols * 4 };
        for (int i = 0; i < 4; i++)
            if (need[i] > most_b) most_b = need[i];
    }
    float *f32 = qc_malloc(most_f, sizeof(float), e, "GPTQ export buffer");
    uint8_t *buf = f32 ? qc_malloc(most_b, 1, e, "GPTQ export buffer") : NULL;
    char *path = buf ? qc_outdir_file(d, "model.safetensors") : NULL;
    qc_st_writer *w = path ? qc_st_writer_new(e) : NULL;
    if (!w) {
        if (buf && !path) qc_fail(e, QC_ERR_NOMEM, "out of memory");
        free(f32), free(buf), free(path);
        return QC_ERR_NOMEM;
    }
    qc_logf(log, QC_LOG_DEBUG, "writing %s: GPTQ %d-bit, group size %d, %s, checkpoint_format %s", dir, f->bits,
            f->groupsize > 0 ? f->groupsize : -1, f->sym ? "sym" : "asym", format_name(o));

    qc_sb text = { 0 }, qc = { 0 };
    qc_sb_printf(&qc, "{\n    \"quant_method\": \"gptq\",\n");
    quant_fields(f, o, &qc, "    ");
    qc_sb_printf(&qc, "    \"checkpoint_format\": \"%s\"\n  }", format_name(o));
    qc_qfmt_config_json(c, qc.failed ? "{}" : qc.s, &text);
    if (qc.failed) text.failed = true;
    st = qc_qfmt_write_text(d, "config.json", &text, e);
    if (!st) {
        text.len = 0;
        qc_sb_printf(&text, "{\n");
        quant_fields(f, o, &text, "  ");
        qc_sb_printf(&text, "  \"model_name_or_path\": null,\n  \"model_file_base_name\": \"model\",\n"
                            "  \"quant_method\": \"gptq\",\n  \"checkpoint_format\": \"%s\"\n}\n",
                     format_name(o));
        st = qc_qfmt_write_text(d, "quantize_config.json", &text, e);
    }
    qc_sb_free(&text);
    qc_sb_free(&qc);

    if (!st) st = qc_st_writer_meta(w, "format", "pt", e);
    if (!st) st = declare(w, c, f, e);
    if (!st) st = qc_st_writer_begin(w, path, e);
    int done = 0, total = NLINEAR * c->n_layers;
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
            const qc_qweight *q = src->qweight(src->ctx, linears[k], l);
            st = write_linear(w, c, linears[k], l, q, o->checkpoint_format == 1 ? 1 : 0, buf, e);
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

/* One quantized linear as found in the file; the packed tensors are borrowed from the
 * mapping, g_idx is converted once (validated at open). */
typedef struct gptq_aux {
    const uint8_t *qweight, *qzeros, *scales;
    qc_dtype scales_dt;     /* F16 (also accepted: BF16, F32) */
    int in, out, ngroups, bits;
    int64_t zero_words;     /* qzeros row length in words */
    uint32_t zero_offset;   /* 1 for checkpoint_format "gptq" (v1), else 0 */
    char qtype[32];         /* "gptq-4bit-g128", "gptq-4bit-gch" */
    int32_t g_idx[];        /* (in) the file's g_idx, or column / group size without one */
} gptq_aux;

static inline float scale_at(const uint8_t *p, qc_dtype dt) {
    if (dt == QC_DT_F16) return qc_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
    float f;
    qc_convert_to_f32(dt, p, 1, &f);
    return f;
}

/* Rows are decoded in tiles of DECODE_TILE (in parallel when the work is large). A tile first
 * gathers its rows' scales and zero points for every group, then goes through the packed
 * words row of words by row of words, where its rows' words are adjacent in the file. */
#define DECODE_TILE 32
#define DECODE_PAR_MIN ((int64_t)1 << 14)

static void gptq_decode_tile(const gptq_aux *a, int64_t o1, int n, float *sz, float *out) {
    int ng = a->ngroups, bits = a->bits, in = a->in;
    float *sc = sz, *zp = sz + (size_t)DECODE_TILE * ng; /* (n, ngroups) each */
    size_t ssz = qc_dtype_size(a->scales_dt), qstride = (size_t)a->out * 4;
    for (int g = 0; g < ng; g++) {
        const uint8_t *srow = a->scales + (size_t)g * a->out * ssz, *zrow = a->qzeros + (size_t)g * a->zero_words * 4;
        for (int r = 0; r < n; r++) {
            sc[(size_t)r * ng + g] = scale_at(srow + (size_t)(o1 + r) * ssz, a->scales_dt);
            zp[(size_t)r * ng + g] = (float)(qc_qpack_get(zrow, 4, bits, o1 + r) + a->zero_offset);
        }
    }
    if (bits == 3) { /* codes straddle words: the general stream reader */
        for (int k = 0; k < in; k++) {
            int g = a->g_idx[k];
            for (int r = 0; r < n; r++) {
                uint32_t code = qc_qpack_get(a->qweight + (size_t)(o1 + r) * 4, qstride, 3, k);
                out[(size_t)r * in + k] = qc_qvalue((float)code, sc[(size_t)r * ng + g], zp[(size_t)r * ng + g]);
            }
        }
        return;
    }
    int per = 32 / bits;
    uint32_t mask = (1u << bits) - 1;
    for (int wr = 0; wr * per < in; wr++) {
        const uint8_t *words = a->qweight + (size_t)wr * qstride + (size_t)o1 * 4;
        int kend = (wr + 1) * per < in ? (wr + 1) * per : in;
        for (int r = 0; r < n; r++) {
            uint32_t w = qc_le32(words + (size_t)r * 4);
            const float *rs = sc + (size_t)r * ng, *rz = zp + (size_t)r * ng;
            float *o = out + (size_t)r * in;
            for (int k = wr * per; k < kend; k++, w >>= bits) {
                int g = a->g_idx[k];
                o[k] = qc_qvalue((float)(w & mask), rs[g], rz[g]);
            }
        }
    }
}

static qc_status gptq_decode(const qc_checkpoint *ck, const qc_ck_loc *loc, int64_t row0, int nrows, int cols,
                             float *out, qc_err *e) {
    const gptq_aux *a = loc->aux;
    QC_ASSERT(cols == a->in && row0 >= 0 && row0 + nrows <= a->out);
    int ntiles = (nrows + DECODE_TILE - 1) / DECODE_TILE, failed = 0;
#pragma omp parallel if ((int64_t)nrows * cols > DECODE_PAR_MIN)
    {
        float *sz = malloc((size_t)2 * DECODE_TILE * a->ngroups * sizeof(float));
        if (!sz) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int t = 0; t < ntiles; t++) {
            if (!sz) continue;
            int r1 = t * DECODE_TILE, n = nrows - r1 < DECODE_TILE ? nrows - r1 : DECODE_TILE;
            gptq_decode_tile(a, row0 + r1, n, sz, out + (size_t)r1 * cols);
        }
        free(sz);
    }
    if (failed) return qc_fail(e, QC_ERR_NOMEM, "%s: out of memory decoding a %s weight", ck->path, a->qtype);
    return QC_OK;
}

/* "[a, b]" of a tensor's shape. */
static void shape_str(const qc_st_tensor *t, char *buf, size_t size) {
    size_t n = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < t->ndim && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (n < size) snprintf(buf + n, size - n, "]");
}

/* Finds PREFIX.suffix with the given dtype(s) and 2-D shape [r, c] with r in [r_lo, r_hi] and
 * c in [c_lo, c_hi] (1-D [r] when c_hi < 0). */
static qc_status find_checked(qc_hfq_find find, const void *files, const qc_checkpoint *ck, const char *prefix,
                              const char *suffix, bool optional, const qc_dtype *dts, int ndt, int64_t r_lo,
                              int64_t r_hi, int64_t c_lo, int64_t c_hi, const char *why,
                              const qc_st_tensor **out, qc_err *e) {
    char name[160];
    snprintf(name, sizeof name, "%s.%s", prefix, suffix);
    const char *where = NULL;
    const qc_st_tensor *t = find(files, ck, name, &where);
    *out = t;
    if (!t) {
        if (optional) return QC_OK;
        return qc_fail(e, QC_ERR_FORMAT, "%s: missing tensor '%s' (%s)", where, name, why);
    }
    bool dt_ok = false;
    for (int i = 0; i < ndt; i++) dt_ok |= t->dtype == dts[i];
    if (!dt_ok)
        return qc_fail(e, QC_ERR_FORMAT, "%s: tensor '%s': dtype %s, %s expected", where, name,
                       qc_dtype_name(t->dtype), qc_dtype_name(dts[0]));
    bool ok = c_hi < 0 ? t->ndim == 1 && t->shape[0] >= r_lo && t->shape[0] <= r_hi
                       : t->ndim == 2 && t->shape[0] >= r_lo && t->shape[0] <= r_hi && t->shape[1] >= c_lo &&
                             t->shape[1] <= c_hi;
    if (!ok) {
        char got[96], want[96];
        shape_str(t, got, sizeof got);
        if (c_hi < 0) snprintf(want, sizeof want, "[%lld]", (long long)r_lo);
        else snprintf(want, sizeof want, "[%lld, %lld]", (long long)r_lo, (long long)c_lo);
        return qc_fail(e, QC_ERR_FORMAT, "%s: tensor '%s': shape %s, but config.json implies %s (%s)", where, name,
                       got, want, why);
    }
    return QC_OK;
}

qc_status qc_gptq_locate(qc_checkpoint *ck, const qc_hf_quant *q, const char *prefix, int rows, int cols,
                         qc_hfq_find find, const void *files, qc_ck_loc *loc, qc_err *e) {
    int bits = q->bits, gs = q->group_size > 0 ? q->group_size : 0;
    int64_t ng = gs ? (cols + gs - 1) / gs : 1;
    char why[160];
    snprintf(why, sizeof why, "GPTQ %d-bit, group size %d, in %d, out %d", bits, q->group_size, cols, rows);
    static const qc_dtype i32[] = { QC_DT_I32 }, fl[] = { QC_DT_F16, QC_DT_BF16, QC_DT_F32 };
    /* Packed rows: at least ceil(n·bits/32) words, at most n padded to whole 32-code blocks. */
    int64_t in_lo = qc_qpack_min_words(cols, bits), in_hi = (cols + 31) / 32 * bits;
    int64_t out_lo = qc_qpack_min_words(rows, bits), out_hi = (rows + 31) / 32 * bits;
    const qc_st_tensor *qw, *qz, *sc, *gi;
    qc_status st;
    if ((st = find_checked(find, files, ck, prefix, "qweight", false, i32, 1, in_lo, in_hi, rows, rows, why, &qw, e)) ||
        (st = find_checked(find, files, ck, prefix, "qzeros", false, i32, 1, ng, ng, out_lo, out_hi, why, &qz, e)) ||
        (st = find_checked(find, files, ck, prefix, "scales", false, fl, 3, ng, ng, rows, rows, why, &sc, e)) ||
        (st = find_checked(find, files, ck, prefix, "g_idx", !q->desc_act, i32, 1, cols, cols, 0, -1,
                           "required with desc_act", &gi, e)))
        return st;
    if (gi)
        for (int k = 0; k < cols; k++) {
            int32_t g = (int32_t)qc_le32(gi->data + (size_t)k * 4);
            if (g < 0 || g >= ng) {
                const char *where = NULL;
                char name[160];
                snprintf(name, sizeof name, "%s.g_idx", prefix);
                find(files, ck, name, &where);
                return qc_fail(e, QC_ERR_FORMAT, "%s: tensor '%s': g_idx[%d] = %d is outside [0, %lld) (%s)", where,
                               name, k, (int)g, (long long)ng, why);
            }
        }
    gptq_aux *a = qc_calloc(1, sizeof *a + (size_t)cols * sizeof(int32_t), e, prefix);
    if (!a) return QC_ERR_NOMEM;
    a->qweight = qw->data, a->qzeros = qz->data, a->scales = sc->data, a->scales_dt = sc->dtype;
    a->in = cols, a->out = rows, a->ngroups = (int)ng, a->bits = bits, a->zero_words = qz->shape[1];
    a->zero_offset = q->checkpoint_format == 1 ? 1u : 0u;
    for (int k = 0; k < cols; k++) a->g_idx[k] = gi ? (int32_t)qc_le32(gi->data + (size_t)k * 4) : gs ? k / gs : 0;
    if (gs) snprintf(a->qtype, sizeof a->qtype, "gptq-%dbit-g%d", bits, gs);
    else snprintf(a->qtype, sizeof a->qtype, "gptq-%dbit-gch", bits);
    if ((st = qc_ck_own(ck, a, e))) return st;
    *loc = (qc_ck_loc){ .data = qw->data, .dtype = QC_DT_I32, .decode = gptq_decode, .aux = a, .qtype = a->qtype };
    return QC_OK;
}
