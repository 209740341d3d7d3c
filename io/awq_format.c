/* awq_format.c — AutoAWQ "GEMM" safetensors checkpoints (AutoAWQ, transformers' AwqConfig,
 * vLLM), written from a weight source whose linears are quantized, and read back with
 * on-the-fly dequantization (QUANT-SPEC §7).
 *
 * Folder written (inside a qc_outdir):
 *   config.json        hf_export.c's fields (torch_dtype "float16") + "quantization_config":
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

/* ---- writing (the walk over the model is qfmt_write.c's) ------------------------------------------ */

/* Checks one linear against AutoAWQ's requirements and the base linear (qc_qfmt.check). */
static qc_status awq_check(const void *opts, const qc_qweight *q, const qc_qweight *base, const char *name, int rows,
                           int cols, qc_err *e) {
    if (q->bits != 4)
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: %d bits; AutoAWQ's GEMM format holds 4-bit weights only "
                       "(use the GPTQ format for %d bits)", name, q->bits, q->bits);
    if (q->groupsize != base->groupsize)
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: group size %d; most linears have %d: an AWQ checkpoint "
                       "has one group size for every linear (the GPTQ format can mix them)", name, q->groupsize,
                       base->groupsize);
    qc_status st = qc_qfmt_check_qweight(q, name, rows, cols, 0.0f, 15.0f, "AWQ", e);
    if (st) return st;
    if (!qc_qfmt_gidx_trivial(q))
        return qc_fail(e, QC_ERR_UNSUPPORTED,
                       "%s: act-order groups (g_idx is not column / group size): AWQ stores no g_idx, "
                       "only contiguous groups; use the GPTQ format (desc_act) for act-order results", name);
    return qc_awq_check_shape(name, rows, cols, q->groupsize, e);
}

qc_status qc_awq_check_shape(const char *name, int rows, int cols, int groupsize, qc_err *e) {
    if (groupsize > 0 && cols % groupsize != 0)
        return qc_fail(e, QC_ERR_UNSUPPORTED,
                       "%s: in_features %d is not a multiple of group size %d; AutoAWQ's GEMM layout has no "
                       "short last group (pad the FFN width first, e.g. qc_checkpoint_pad_ffn)",
                       name, cols, groupsize);
    if (rows % 8 != 0)
        return qc_fail(e, QC_ERR_UNSUPPORTED,
                       "%s: out_features %d is not a multiple of 8; AutoAWQ's GEMM layout packs 8 output "
                       "columns per word (pad the FFN width first, e.g. qc_checkpoint_pad_ffn)", name, rows);
    return QC_OK;
}

/* ORs 4-bit v into the little-endian word holding output column o, at its AutoAWQ nibble. */
static void or_nibble(uint8_t *word, int o, uint32_t v) {
    word[qc_awq_nibble[o % 8] / 2] |= (uint8_t)(v << 4 * (qc_awq_nibble[o % 8] % 2));
}

/* qweight [in, out/8]. */
static void pack_qweight(const qc_qfmt_linear *l, const qc_qfmt_tensor *t, uint8_t *buf) {
    const qc_qweight *q = l->q;
    int cols = q->cols, ow = q->rows / 8;
    for (int o = 0; o < q->rows; o++) {
        const uint8_t *codes = q->codes + (size_t)qc_qfmt_src_row(o, l->heads, l->head_dim) * cols;
        for (int k = 0; k < cols; k++) or_nibble(buf + ((size_t)k * ow + o / 8) * 4, o, codes[k]);
    }
}

/* qzeros [ngroups, out/8]. */
static void pack_qzeros(const qc_qfmt_linear *l, const qc_qfmt_tensor *t, uint8_t *buf) {
    const qc_qweight *q = l->q;
    int ng = q->ngroups, ow = q->rows / 8;
    for (int o = 0; o < q->rows; o++) {
        const float *z = q->zeros + (size_t)qc_qfmt_src_row(o, l->heads, l->head_dim) * ng;
        for (int g = 0; g < ng; g++) or_nibble(buf + ((size_t)g * ow + o / 8) * 4, o, (uint32_t)z[g]);
    }
}

static int awq_tensors(int rows, int cols, const qc_qweight *q, qc_qfmt_tensor t[QC_QFMT_MAX_TENSORS]) {
    int64_t ng = q->groupsize > 0 ? cols / q->groupsize : 1;
    t[0] = (qc_qfmt_tensor){ "qweight", QC_DT_I32, 2, { cols, rows / 8 }, pack_qweight };
    t[1] = (qc_qfmt_tensor){ "qzeros", QC_DT_I32, 2, { ng, rows / 8 }, pack_qzeros };
    t[2] = (qc_qfmt_tensor){ "scales", QC_DT_F16, 2, { ng, rows }, qc_qfmt_pack_scales };
    return 3;
}

static void awq_quant_config(const void *opts, const qc_qfmt_plan *p, qc_sb *b) {
    qc_sb_printf(b, "{\n    \"quant_method\": \"awq\",\n    \"zero_point\": true,\n    \"group_size\": %d,\n"
                    "    \"bits\": 4,\n    \"version\": \"gemm\",\n    \"modules_to_not_convert\": null\n  }",
                 p->base->groupsize > 0 ? p->base->groupsize : -1);
}

static void awq_extra_json(const void *opts, const qc_qfmt_plan *p, qc_sb *b) {
    qc_sb_printf(b, "{\n    \"zero_point\": true,\n    \"q_group_size\": %d,\n    \"w_bit\": 4,\n"
                    "    \"version\": \"GEMM\",\n    \"modules_to_not_convert\": null\n}\n",
                 p->base->groupsize > 0 ? p->base->groupsize : -1);
}

static void awq_describe(const void *opts, const qc_qweight *base, char *buf, size_t size) {
    snprintf(buf, size, "AWQ GEMM 4-bit, group size %d", base->groupsize > 0 ? base->groupsize : -1);
}

static const qc_qfmt awq_format = {
    .name = "AWQ",
    .extra_file = "quant_config.json",
    .check = awq_check,
    .tensors = awq_tensors,
    .quant_config = awq_quant_config,
    .extra_json = awq_extra_json,
    .describe = awq_describe,
};

qc_status qc_awq_export_into(const qc_weight_source *src, const qc_outdir *d, const qc_log *log, qc_err *e) {
    return qc_qfmt_export(&awq_format, NULL, src, d, log, e);
}

/* ---- reading ------------------------------------------------------------------------------------ */

/* One quantized linear as found in the file. */
typedef struct awq_aux {
    const uint8_t *qweight, *qzeros, *scales; /* borrowed from the mapping */
    qc_dtype scales_dt;
    int in, out, groupsize; /* groupsize: in when per channel */
    char qtype[32];         /* "awq-4bit-g128" */
} awq_aux;

/* A tile (qfmt_read.c's loop) goes input by input: its rows sit in QC_QFMT_TILE/8 adjacent
 * words; scales and zero points are gathered when the group changes. */
static void awq_decode_tile(const void *aux, int64_t o1, int n, float *scratch, float *out) {
    const awq_aux *a = aux;
    float sc[QC_QFMT_TILE], zp[QC_QFMT_TILE];
    size_t ow = (size_t)a->out / 8, ssz = qc_dtype_size(a->scales_dt);
    for (int k = 0; k < a->in; k++) {
        if (k % a->groupsize == 0) {
            size_t g = (size_t)(k / a->groupsize);
            const uint8_t *zrow = a->qzeros + g * ow * 4, *srow = a->scales + g * (size_t)a->out * ssz;
            for (int r = 0; r < n; r++) {
                int64_t o = o1 + r;
                sc[r] = qc_qfmt_scale(srow + (size_t)o * ssz, a->scales_dt);
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
    return qc_qfmt_decode(ck, a, a->qtype, awq_decode_tile, 0, row0, nrows, cols, out, e);
}

qc_status qc_awq_locate(qc_checkpoint *ck, const qc_hf_quant *q, const char *prefix, int rows, int cols,
                        qc_hfq_find find, const void *files, qc_ck_loc *loc, qc_err *e) {
    int gs = q->group_size > 0 ? q->group_size : cols;
    char name[160];
    snprintf(name, sizeof name, "%s.qweight", prefix);
    const char *where = NULL;
    const qc_safetensors_tensor *t;
    qc_status st = find(files, ck, name, &t, &where, e);
    if (st) return st;
    if (rows % 8 != 0 || cols % gs != 0)
        return qc_fail(e, QC_ERR_FORMAT,
                       "%s: '%s': AWQ GEMM needs out %% 8 == 0 and in %% group_size == 0; this linear is %d × %d "
                       "with group_size %d", where, prefix, rows, cols, q->group_size);
    char why[128];
    snprintf(why, sizeof why, "AWQ GEMM 4-bit, group size %d, in %d, out %d", q->group_size, cols, rows);
    const qc_safetensors_tensor *qw, *qz, *sc;
    if ((st = qc_qfmt_find_tensor(find, files, ck, prefix, "qweight", false, false, cols, cols, rows / 8, rows / 8,
                                  why, &qw, e)) ||
        (st = qc_qfmt_find_tensor(find, files, ck, prefix, "qzeros", false, false, cols / gs, cols / gs, rows / 8,
                                  rows / 8, why, &qz, e)) ||
        (st = qc_qfmt_find_tensor(find, files, ck, prefix, "scales", false, true, cols / gs, cols / gs, rows, rows,
                                  why, &sc, e)))
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
