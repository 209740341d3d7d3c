/* gptq_format.c — GPTQ safetensors checkpoints (AutoGPTQ / GPTQModel / transformers / vLLM),
 * written from a weight source whose linears are quantized, and read back with on-the-fly
 * dequantization (QUANT-SPEC §7).
 *
 * Folder written (inside a qc_outdir):
 *   config.json           hf_export.c's fields (torch_dtype "float16") + "quantization_config":
 *                         {quant_method "gptq", bits, group_size (−1: per channel),
 *                          damp_percent, desc_act, static_groups, sym, true_sequential,
 *                          checkpoint_format "gptq" | "gptq_v2"} (transformers' GPTQConfig),
 *                         bits, group_size and sym being those most linears have (ties: the
 *                         first linear's) — except sym false where true would send vLLM to
 *                         its Marlin kernel, which refuses some linear's own setting
 *                         (qc_gptq_config_sym, gptq_dynamic.c); then, only when some linear differs from them or is
 *                         not quantized, GPTQModel's "dynamic": {"-:^<module>$": {} for each
 *                         unquantized linear, then "+:^<module>$": {bits, group_size, sym} for
 *                         each that differs, in model order; <module> the name with its dots
 *                         escaped, e.g. "+:^model\\.layers\\.1\\.mlp\\.down_proj$"} (gptq_dynamic.c)
 *   quantize_config.json  AutoGPTQ's BaseQuantizeConfig.to_dict(): the same fields plus
 *                         model_name_or_path null, model_file_base_name "model" (and dynamic)
 *   model.safetensors     per quantized linear PREFIX (model.layers.L.self_attn.{q,k,v,o}_proj,
 *                         model.layers.L.mlp.{gate,up,down}_proj), in its own bits and group
 *                         size, for in × out = cols × rows:
 *     PREFIX.qweight  I32 [in_words, out]     codes packed along the input dimension: column
 *                                             o is a bit stream, code k at bits [k·bits,
 *                                             (k+1)·bits), lowest first (qpack.c; 3-bit codes
 *                                             straddle words exactly as AutoGPTQ packs them)
 *     PREFIX.qzeros   I32 [ngroups, out_words] zero points packed the same way along the
 *                                             output dimension; v1 ("gptq") stores zero − 1,
 *                                             v2 ("gptq_v2") the zero itself
 *     PREFIX.scales   F16 [ngroups, out]
 *     PREFIX.g_idx    I32 [in]                the group of each input column
 *                         and F16 PREFIX.weight for each linear not quantized,
 *                         model.embed_tokens.weight, the norms, and lm_head.weight unless tied
 *                         (from the source's read(), rounded to fp16).
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
 * Refused (before anything is written), each linear checked on its own settings: bits other
 * than 2, 3, 4, 8, groups with mins, scales that are not exactly fp16 values, zero points that
 * are not integers the format can hold (v1 cannot hold a zero of 0: loaders add 1 to the
 * stored value without wrapping), symmetric weights whose zero points are not 2^(bits−1), and
 * act-order g_idx with desc_act false (loaders skip g_idx then); and a model with no quantized
 * linear, or with a quantized token embedding (transformers and vLLM load a GPTQ checkpoint's
 * embedding as fp16; GGUF and llama2.c int8 can hold it).
 *
 * Reading: the config's settings, or for a linear a dynamic entry matches, that entry's (a
 * "-:" one: a plain PREFIX.weight, hf_checkpoint.c), decide the shapes every tensor is checked against
 * and the qtype reported ("gptq-8bit-g32").
 *
 * Memory: one linear's packed tensors (plus the source's qweight) at a time. */
#include "io/qformat.h"

#include <stdlib.h>
#include <string.h>

bool qc_gptq_format_holds_bits(int bits) { return bits == 2 || bits == 3 || bits == 4 || bits == 8; }

/* ---- writing (the walk over the model is qfmt_write.c's) ------------------------------------------ */

/* Checks one linear against the format (qc_qfmt.check); its settings may differ from the
 * base's ("dynamic"). */
static qc_status gptq_check(const void *opts, const qc_qweight *q, const qc_qweight *base, const char *name, int rows,
                            int cols, qc_err *e) {
    const qc_gptq_export_opts *o = opts;
    const char *how = o->checkpoint_format == 1
                          ? "GPTQ v1 (\"gptq\": qzeros hold zero - 1, and loaders add 1 back without wrapping, "
                            "so a zero point of 0 needs checkpoint_format gptq_v2)"
                          : "GPTQ v2 (\"gptq_v2\")";
    if (!qc_gptq_format_holds_bits(q->bits))
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: %d bits; GPTQ checkpoints hold 2, 3, 4 or 8", name, q->bits);
    float maxq = (float)((1 << q->bits) - 1);
    qc_status st = o->checkpoint_format == 1 ? qc_qfmt_check_qweight(q, name, rows, cols, 1.0f, maxq + 1.0f, how, e)
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
    return QC_OK;
}

/* qweight [in_words, out]: column o (file order) is a stream of codes along in. */
static void pack_qweight(const qc_qfmt_linear *l, const qc_qfmt_tensor *t, uint8_t *buf) {
    const qc_qweight *q = l->q;
    int rows = q->rows, cols = q->cols, bits = q->bits;
    if (32 % bits == 0) { /* whole words, written in file order (the general path is strided) */
        int per = 32 / bits;
#pragma omp parallel for schedule(static) if (t->shape[0] * rows > (1 << 16))
        for (int64_t wd = 0; wd < t->shape[0]; wd++) {
            uint8_t *out = buf + (size_t)wd * rows * 4;
            for (int o = 0; o < rows; o++) {
                const uint8_t *codes = q->codes + (size_t)qc_qfmt_src_row(o, l->heads, l->head_dim) * cols;
                uint32_t v = 0;
                for (int j = 0; j < per && wd * per + j < cols; j++) v |= (uint32_t)codes[wd * per + j] << (j * bits);
                for (int i = 0; i < 4; i++) out[(size_t)o * 4 + i] = (uint8_t)(v >> 8 * i);
            }
        }
    } else {
        for (int o = 0; o < rows; o++) {
            const uint8_t *codes = q->codes + (size_t)qc_qfmt_src_row(o, l->heads, l->head_dim) * cols;
            for (int k = 0; k < cols; k++) qc_qpack_put(buf + (size_t)o * 4, (size_t)rows * 4, bits, k, codes[k]);
        }
    }
}

/* qzeros [ngroups, out_words]: each group's row is a stream along out, of zero − 1 in v1. */
static void pack_qzeros(const qc_qfmt_linear *l, const qc_qfmt_tensor *t, uint8_t *buf) {
    const qc_qweight *q = l->q;
    const qc_gptq_export_opts *o = l->opts;
    uint32_t zero_offset = o->checkpoint_format == 1 ? 1 : 0;
    int ng = q->ngroups;
    for (int r = 0; r < q->rows; r++) {
        const float *z = q->zeros + (size_t)qc_qfmt_src_row(r, l->heads, l->head_dim) * ng;
        for (int g = 0; g < ng; g++)
            qc_qpack_put(buf + (size_t)g * t->shape[1] * 4, 4, q->bits, r, (uint32_t)(int)z[g] - zero_offset);
    }
}

/* g_idx [in]. */
static void pack_g_idx(const qc_qfmt_linear *l, const qc_qfmt_tensor *t, uint8_t *buf) {
    for (int k = 0; k < l->q->cols; k++) {
        uint32_t g = (uint32_t)l->q->g_idx[k];
        for (int i = 0; i < 4; i++) buf[(size_t)k * 4 + i] = (uint8_t)(g >> 8 * i);
    }
}

static int gptq_tensors(int rows, int cols, const qc_qweight *q, qc_qfmt_tensor t[QC_QFMT_MAX_TENSORS]) {
    int64_t in_words = qc_qpack_words(cols, q->bits), out_words = qc_qpack_words(rows, q->bits);
    int64_t ng = q->groupsize > 0 ? (cols + q->groupsize - 1) / q->groupsize : 1;
    t[0] = (qc_qfmt_tensor){ "qweight", QC_DT_I32, 2, { in_words, rows }, pack_qweight };
    t[1] = (qc_qfmt_tensor){ "qzeros", QC_DT_I32, 2, { ng, out_words }, pack_qzeros };
    t[2] = (qc_qfmt_tensor){ "scales", QC_DT_F16, 2, { ng, rows }, qc_qfmt_pack_scales };
    t[3] = (qc_qfmt_tensor){ "g_idx", QC_DT_I32, 1, { cols }, pack_g_idx };
    return 4;
}

static const char *format_name(const qc_gptq_export_opts *o) {
    return o->checkpoint_format == 1 ? "gptq" : "gptq_v2";
}

/* The fields config.json's quantization_config and quantize_config.json share. */
static void quant_fields(const qc_qfmt_plan *p, const qc_gptq_export_opts *o, qc_sb *b, const char *indent) {
    const qc_qweight *base = p->base;
    qc_sb_printf(b, "%s\"bits\": %d,\n%s\"group_size\": %d,\n%s\"damp_percent\": ", indent, base->bits, indent,
                 base->groupsize > 0 ? base->groupsize : -1, indent);
    qc_sb_json_float(b, o->damp_percent);
    qc_sb_printf(b, ",\n%s\"desc_act\": %s,\n%s\"static_groups\": %s,\n%s\"sym\": %s,\n%s\"true_sequential\": %s,\n",
                 indent, o->desc_act ? "true" : "false", indent, o->static_groups ? "true" : "false", indent,
                 qc_gptq_config_sym(p) ? "true" : "false", indent, o->true_sequential ? "true" : "false");
}

static void gptq_quant_config(const void *opts, const qc_qfmt_plan *p, qc_sb *b) {
    qc_sb_printf(b, "{\n    \"quant_method\": \"gptq\",\n");
    quant_fields(p, opts, b, "    ");
    qc_sb_printf(b, "    \"checkpoint_format\": \"%s\"", format_name(opts));
    qc_gptq_dynamic_json(p, "    ", b);
    qc_sb_printf(b, "\n  }");
}

static void gptq_extra_json(const void *opts, const qc_qfmt_plan *p, qc_sb *b) {
    qc_sb_printf(b, "{\n");
    quant_fields(p, opts, b, "  ");
    qc_sb_printf(b, "  \"model_name_or_path\": null,\n  \"model_file_base_name\": \"model\",\n"
                    "  \"quant_method\": \"gptq\",\n  \"checkpoint_format\": \"%s\"",
                 format_name(opts));
    qc_gptq_dynamic_json(p, "  ", b);
    qc_sb_printf(b, "\n}\n");
}

static void gptq_describe(const void *opts, const qc_qweight *base, char *buf, size_t size) {
    snprintf(buf, size, "GPTQ %d-bit, group size %d, %s, checkpoint_format %s", base->bits,
             base->groupsize > 0 ? base->groupsize : -1, base->sym ? "sym" : "asym", format_name(opts));
}

/* A file with per-module settings reads right only where "dynamic" is followed; a config
 * made asymmetric for vLLM's sake is said too. */
static void gptq_notes(const void *opts, const qc_qfmt_plan *p, const char *dir, const qc_log *log) {
    int own = 0, f16 = 0, sym = 0;
    for (int i = 0; i < p->n; i++) {
        const qc_qweight *q = p->m[i].q;
        if (!q) f16++;
        else own += qc_qfmt_differs(q, p->base), sym += q->sym;
    }
    const qc_qweight *b = p->base;
    if (own + f16)
        qc_logf(log, QC_LOG_WARN,
                "%s: %d linear%s with settings of their own and %d unquantized are recorded in quantization_config's "
                "\"dynamic\", which vLLM and GPTQModel follow; transformers and optimum ignore it and build every "
                "linear as %d-bit, group size %d, so they do not load this file correctly",
                dir, own, own == 1 ? "" : "s", f16, b->bits, b->groupsize > 0 ? b->groupsize : -1);
    if (b->sym && !qc_gptq_config_sym(p))
        qc_logf(log, QC_LOG_INFO,
                "%s: the config says sym false although %d linears are symmetric: sym true would send vLLM to its "
                "Marlin kernel, which refuses the linears set to other bits, group sizes or asymmetric; their zero "
                "points are stored, so every weight reads the same",
                dir, sym);
}

static const qc_qfmt gptq_format = {
    .name = "GPTQ",
    .extra_file = "quantize_config.json",
    .mixed = true,
    .check = gptq_check,
    .tensors = gptq_tensors,
    .quant_config = gptq_quant_config,
    .extra_json = gptq_extra_json,
    .describe = gptq_describe,
    .notes = gptq_notes,
};

qc_status qc_gptq_export_into(const qc_weight_source *src, const qc_outdir *d, const qc_gptq_export_opts *o,
                              const qc_log *log, qc_err *e) {
    const char *dir = d->path;
    if (o->checkpoint_format != 1 && o->checkpoint_format != 2)
        return qc_fail(e, QC_ERR_ARG, "%s: GPTQ checkpoint_format %d (1: \"gptq\", 2: \"gptq_v2\")", dir,
                       o->checkpoint_format);
    if (!(o->damp_percent > 0.0f && o->damp_percent < 1.0f))
        return qc_fail(e, QC_ERR_ARG, "%s: damp_percent %g: AutoGPTQ requires 0 < damp_percent < 1", dir,
                       (double)o->damp_percent);
    return qc_qfmt_export(&gptq_format, o, src, d, log, e);
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

/* A tile (qfmt_read.c's loop) first gathers its rows' scales and zero points for every group
 * into scratch (2 · QC_QFMT_TILE · ngroups floats), then goes through the packed words row of
 * words by row of words, where its rows' words are adjacent in the file. */
static void gptq_decode_tile(const void *aux, int64_t o1, int n, float *scratch, float *out) {
    const gptq_aux *a = aux;
    int ng = a->ngroups, bits = a->bits, in = a->in;
    float *sc = scratch, *zp = scratch + (size_t)QC_QFMT_TILE * ng; /* (n, ngroups) each */
    size_t ssz = qc_dtype_size(a->scales_dt), qstride = (size_t)a->out * 4;
    for (int g = 0; g < ng; g++) {
        const uint8_t *srow = a->scales + (size_t)g * a->out * ssz, *zrow = a->qzeros + (size_t)g * a->zero_words * 4;
        for (int r = 0; r < n; r++) {
            sc[(size_t)r * ng + g] = qc_qfmt_scale(srow + (size_t)(o1 + r) * ssz, a->scales_dt);
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
    return qc_qfmt_decode(ck, a, a->qtype, gptq_decode_tile, (size_t)2 * QC_QFMT_TILE * a->ngroups, row0, nrows,
                          cols, out, e);
}

qc_status qc_gptq_locate(qc_checkpoint *ck, const qc_hf_quant *q, const char *prefix, int rows, int cols,
                         qc_hfq_find find, const void *files, qc_ck_loc *loc, qc_err *e) {
    int bits = q->bits, gs = q->group_size > 0 ? q->group_size : 0;
    int64_t ng = gs ? (cols + gs - 1) / gs : 1;
    char why[160];
    snprintf(why, sizeof why, "GPTQ %d-bit, group size %d, in %d, out %d", bits, q->group_size, cols, rows);
    /* Packed rows: at least ceil(n·bits/32) words, at most n padded to whole 32-code blocks. */
    int64_t in_lo = qc_qpack_min_words(cols, bits), in_hi = (cols + 31) / 32 * bits;
    int64_t out_lo = qc_qpack_min_words(rows, bits), out_hi = (rows + 31) / 32 * bits;
    const qc_safetensors_tensor *qw, *qz, *sc, *gi;
    qc_status st;
    if ((st = qc_qfmt_find_tensor(find, files, ck, prefix, "qweight", false, false, in_lo, in_hi, rows, rows, why,
                                  &qw, e)) ||
        (st = qc_qfmt_find_tensor(find, files, ck, prefix, "qzeros", false, false, ng, ng, out_lo, out_hi, why, &qz,
                                  e)) ||
        (st = qc_qfmt_find_tensor(find, files, ck, prefix, "scales", false, true, ng, ng, rows, rows, why, &sc, e)) ||
        (st = qc_qfmt_find_tensor(find, files, ck, prefix, "g_idx", !q->desc_act, false, cols, cols, 0, -1,
                                  "required with desc_act", &gi, e)))
        return st;
    if (gi)
        for (int k = 0; k < cols; k++) {
            int32_t g = (int32_t)qc_le32(gi->data + (size_t)k * 4);
            if (g < 0 || g >= ng) {
                const char *where = NULL;
                char name[160];
                snprintf(name, sizeof name, "%s.g_idx", prefix);
                const qc_safetensors_tensor *t;
                if ((st = find(files, ck, name, &t, &where, e))) return st;
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
