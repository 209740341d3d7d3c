/* unit/io_qformats.c — the GPTQ and AWQ safetensors formats (io/gptq_format.c, io/awq_format.c,
 * io/qpack.c, and the HF reader that opens them), on real material: the quantized weights of
 * the GPTQ reference vectors for all 35 linears of stories260K (configs w4_g32, w4_g32_act,
 * w4_g32_sym, w4_gch; scales rounded to fp16 first so that they are storable), plus synthetic
 * 2-, 3- and 8-bit weights, with every other weight from stories260K.bin.
 *
 * Checked: export (GPTQ v1 and v2, AWQ GEMM) → qc_checkpoint_open → every linear reads back bit
 * for bit equal to qc_qweight_dequantize of the weight exported, every other tensor equal to its
 * fp16 rounding; the bytes in the files against bit-level formulas written here independently
 * of qpack.c (AutoGPTQ's piecewise 3-bit layout, AutoAWQ's nibble order, HF's rotate-half
 * rows); a file packed by this test's own packer reads back right (row ranges included);
 * refusals with their messages; and one broken folder per failure mode of the reader. */
#include "io/io.h"
#include "io/qformat.h"
#include "tests/check.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <sys/stat.h>

#define NLIN 7
static const qc_weight lin_w[NLIN] = { QC_W_Q, QC_W_K, QC_W_V, QC_W_O, QC_W_GATE, QC_W_UP, QC_W_DOWN };
static const char *const lin_tv[NLIN] = { "wq", "wk", "wv", "wo", "w1", "w3", "w2" }; /* test vector names */
static const char *const lin_hf[NLIN] = { "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                          "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                          "mlp.down_proj" };

static qc_checkpoint *stories; /* stories260K.bin, opened once */

/* tmp_path(rel) copied into buf (tmp_path's own buffers rotate). */
static const char *scratch_into(char *buf, const char *rel) {
    snprintf(buf, 512, "%s", tmp_path(rel));
    return buf;
}

static int lin_index(qc_weight w) {
    for (int k = 0; k < NLIN; k++)
        if (lin_w[k] == w) return k;
    return -1;
}

/* ---- a weight source whose linears are quantized ------------------------------------------------ */

typedef struct qmodel {
    const qc_checkpoint *ck; /* every weight that is not a quantized linear */
    qc_config cfg;
    qc_qweight *q;           /* (n_layers * NLIN) codes NULL: kept unquantized */
    qc_qweight embed;        /* codes NULL: not quantized */
} qmodel;

static const qc_qweight *qm_qweight(void *ctx, qc_weight w, int layer) {
    qmodel *m = ctx;
    int k = lin_index(w);
    const qc_qweight *q = k >= 0 ? &m->q[layer * NLIN + k] : w == QC_W_EMBED ? &m->embed : NULL;
    return q && q->codes ? q : NULL;
}

static qc_status qm_read(void *ctx, qc_weight w, int layer, float *out, qc_err *e) {
    qmodel *m = ctx;
    const qc_qweight *q = qm_qweight(ctx, w, layer);
    if (q) {
        qc_qweight_dequantize(q, out);
        return QC_OK;
    }
    return qc_checkpoint_read(m->ck, w, layer, out, e);
}

static qc_weight_source qm_source(qmodel *m) {
    return (qc_weight_source){ .cfg = &m->cfg, .read = qm_read, .qweight = qm_qweight, .ctx = m };
}

static void qm_free(qmodel *m) {
    for (int i = 0; m->q && i < m->cfg.n_layers * NLIN; i++) qc_qweight_free(&m->q[i]);
    free(m->q);
    qc_qweight_free(&m->embed);
    memset(m, 0, sizeof *m);
}

static bool load_raw(const char *path, void *buf, size_t n) {
    FILE *f = fopen(path, "rb");
    bool ok = f && fread(buf, 1, n, f) == n && fgetc(f) == EOF;
    if (f) fclose(f);
    CHECK(ok, "reading %s (%zu bytes)", path, n);
    return ok;
}

static float f16_round(float x) { return qc_f16_to_f32(qc_f32_to_f16(x)); }

/* The 35 linears of a GPTQ test vector config, scales rounded to fp16. */
static bool qm_load_vectors(qmodel *m, const char *config, int groupsize, bool sym) {
    qc_err e;
    m->ck = stories;
    m->cfg = *qc_checkpoint_config(stories);
    m->q = calloc((size_t)m->cfg.n_layers * NLIN, sizeof *m->q);
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int k = 0; k < NLIN; k++) {
            int rows, cols;
            qc_weight_shape(&m->cfg, lin_w[k], &rows, &cols);
            qc_qweight *q = &m->q[l * NLIN + k];
            CHECK_OK(qc_qweight_init(q, rows, cols, 4, groupsize, sym, &e), e);
            char d[256];
            snprintf(d, sizeof d, "testvectors/gptq/%s/L%d.%s/", config, l, lin_tv[k]);
            char p[5][300];
            const char *names[5] = { "codes.u8", "scales.f32", "zeros.f32", "g_idx.i32", "perm.i32" };
            for (int i = 0; i < 5; i++) snprintf(p[i], sizeof p[i], "%s%s", shared_path(d), names[i]);
            size_t n = (size_t)rows * cols, ng = (size_t)rows * q->ngroups;
            if (!load_raw(p[0], q->codes, n) || !load_raw(p[1], q->scales, ng * 4) ||
                !load_raw(p[2], q->zeros, ng * 4) || !load_raw(p[3], q->g_idx, (size_t)cols * 4) ||
                !load_raw(p[4], q->perm, (size_t)cols * 4))
                return false;
            for (size_t i = 0; i < ng; i++) q->scales[i] = f16_round(q->scales[i]);
        }
    return true;
}

/* Fills q (initialized) with synthetic values (not from any solver): random codes, fp16
 * scales, integral zeros in 1..maxq (so both GPTQ formats hold them), or the symmetric zero;
 * act_order shuffles the columns into groups the way GPTQ's act-order does (g_idx[perm[k]]
 * = k / groupsize). */
static void synthetic_fill(qc_qweight *q, bool act_order, qc_pyrandom *r) {
    int maxq = (1 << q->bits) - 1, cols = q->cols;
    for (size_t i = 0; i < (size_t)q->rows * cols; i++) q->codes[i] = (uint8_t)qc_pyrandom_randint(r, 0, maxq);
    for (size_t i = 0; i < (size_t)q->rows * q->ngroups; i++) {
        q->scales[i] = f16_round((float)(1e-3 + 0.05 * qc_pyrandom_random(r)));
        q->zeros[i] = q->sym ? (float)((maxq + 1) / 2) : (float)qc_pyrandom_randint(r, 1, maxq);
    }
    if (act_order) {
        for (int c = 0; c < cols; c++) q->perm[c] = c;
        for (int c = cols - 1; c > 0; c--) { /* Fisher-Yates */
            int j = (int)qc_pyrandom_randint(r, 0, c), t = q->perm[c];
            q->perm[c] = q->perm[j], q->perm[j] = t;
        }
        for (int i = 0; i < cols; i++) q->g_idx[q->perm[i]] = q->groupsize > 0 ? i / q->groupsize : 0;
    }
}

/* Linear k of layer l of m replaced by a synthetic weight of the given settings. */
static void qm_set_synthetic(qmodel *m, int l, int k, int bits, int groupsize, bool sym, qc_pyrandom *r) {
    qc_err e;
    int rows, cols;
    qc_weight_shape(&m->cfg, lin_w[k], &rows, &cols);
    qc_qweight *q = &m->q[l * NLIN + k];
    qc_qweight_free(q);
    CHECK_OK(qc_qweight_init(q, rows, cols, bits, groupsize, sym, &e), e);
    synthetic_fill(q, false, r);
}

/* Every linear synthetic (synthetic_fill), with the same settings. */
static void qm_synthetic(qmodel *m, int bits, int groupsize, bool sym, bool act_order, uint64_t seed) {
    qc_err e;
    qc_pyrandom r;
    qc_pyrandom_seed(&r, seed);
    m->ck = stories;
    m->cfg = *qc_checkpoint_config(stories);
    m->q = calloc((size_t)m->cfg.n_layers * NLIN, sizeof *m->q);
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int k = 0; k < NLIN; k++) {
            int rows, cols;
            qc_weight_shape(&m->cfg, lin_w[k], &rows, &cols);
            qc_qweight *q = &m->q[l * NLIN + k];
            CHECK_OK(qc_qweight_init(q, rows, cols, bits, groupsize, sym, &e), e);
            synthetic_fill(q, act_order, &r);
        }
}

/* ---- exporting and comparing --------------------------------------------------------------------- */

static qc_status export_gptq(const qc_weight_source *src, const char *dir, int format, bool desc_act, qc_err *e) {
    qc_gptq_export_opts o = { .checkpoint_format = format, .damp_percent = 0.01f, .desc_act = desc_act,
                              .static_groups = false, .true_sequential = true };
    qc_outdir d;
    qc_status st = qc_outdir_open(&d, dir, true, e);
    if (st) return st;
    st = qc_gptq_export_into(src, &d, &o, NULL, e);
    if (!st) st = qc_outdir_commit(&d, e);
    else qc_outdir_abort(&d);
    return st;
}

static qc_status export_awq(const qc_weight_source *src, const char *dir, qc_err *e) {
    qc_outdir d;
    qc_status st = qc_outdir_open(&d, dir, true, e);
    if (st) return st;
    st = qc_awq_export_into(src, &d, NULL, e);
    if (!st) st = qc_outdir_commit(&d, e);
    else qc_outdir_abort(&d);
    return st;
}

/* A GPTQ linear's qtype: "gptq-4bit-g32", "gptq-3bit-gch". */
static const char *gptq_qtype(const qc_qweight *q, char *buf, size_t size) {
    if (q->groupsize > 0) snprintf(buf, size, "gptq-%dbit-g%d", q->bits, q->groupsize);
    else snprintf(buf, size, "gptq-%dbit-gch", q->bits);
    return buf;
}

/* Opens dir and checks every weight against m: quantized linears bit for bit equal to the
 * dequantized qweight, the rest equal to their fp16 rounding; the quantized ones' qtype is
 * `qtype` (NULL: each one's own GPTQ type), the others have none. */
static void check_roundtrip(const qmodel *m, const char *dir, const char *qtype) {
    qc_err e;
    qc_checkpoint *ck = NULL;
    CHECK_OK(qc_checkpoint_open(&ck, dir, &e), e);
    if (!ck) return;
    const qc_config *c = qc_checkpoint_config(ck);
    CHECK(c->dim == m->cfg.dim && c->hidden_dim == m->cfg.hidden_dim && c->n_layers == m->cfg.n_layers &&
              c->n_heads == m->cfg.n_heads && c->n_kv_heads == m->cfg.n_kv_heads &&
              c->vocab_size == m->cfg.vocab_size && c->tied_classifier == m->cfg.tied_classifier,
          "%s: config differs", dir);
    size_t most = (size_t)c->vocab_size * c->dim;
    float *got = malloc(most * sizeof(float)), *want = malloc(most * sizeof(float));
    int bad_lin = 0, bad_float = 0, bad_qtype = 0;
    for (int w = 0; w < QC_W_COUNT; w++) {
        int nl = !qc_weight_present(c, (qc_weight)w) ? 0 : qc_weight_is_global((qc_weight)w) ? 1 : c->n_layers;
        for (int l = 0; l < nl; l++) {
            int rows, cols;
            qc_weight_shape(c, (qc_weight)w, &rows, &cols);
            size_t n = (size_t)rows * cols;
            CHECK_OK(qc_checkpoint_read(ck, (qc_weight)w, l, got, &e), e);
            int k = lin_index((qc_weight)w);
            const qc_qweight *q = k >= 0 && m->q[l * NLIN + k].codes ? &m->q[l * NLIN + k] : NULL;
            if (q) {
                qc_qweight_dequantize(q, want);
                const char *qt = qc_checkpoint_qtype(ck, (qc_weight)w, l);
                char own[32];
                if (!qt || strcmp(qt, qtype ? qtype : gptq_qtype(q, own, sizeof own)) != 0) bad_qtype++;
            } else {
                CHECK_OK(qc_checkpoint_read(m->ck, (qc_weight)w, l, want, &e), e);
                for (size_t i = 0; i < n; i++) want[i] = f16_round(want[i]);
                if (qc_checkpoint_qtype(ck, (qc_weight)w, l)) bad_qtype++;
            }
            if (memcmp(got, want, n * sizeof(float)) != 0) {
                q ? bad_lin++ : bad_float++;
                if (bad_lin + bad_float < 4)
                    for (size_t i = 0; i < n; i++)
                        if (memcmp(&got[i], &want[i], sizeof(float)) != 0) {
                            fprintf(stderr, "  %s: %s layer %d element %zu: %.9g vs %.9g\n", dir,
                                    qc_weight_short_name((qc_weight)w), l, i, (double)got[i], (double)want[i]);
                            break;
                        }
            }
        }
    }
    CHECK(bad_lin == 0, "%s: %d linears differ from their dequantized weight", dir, bad_lin);
    CHECK(bad_float == 0, "%s: %d float tensors differ from their fp16 rounding", dir, bad_float);
    CHECK(bad_qtype == 0, "%s: %d weights with a qtype other than \"%s\" (or a float one with a qtype)", dir,
          bad_qtype, qtype ? qtype : "their own");
    free(got);
    free(want);
    qc_checkpoint_close(ck);
}

/* ---- independent bit-level formulas ------------------------------------------------------------- */

/* HF rotate-half row order: HF row j*head_dim/2 + i of a head holds interleaved row 2i + j. */
static int hf_to_interleaved(int row, int heads, int head_dim) {
    if (!heads) return row;
    int h = row / head_dim, r = row % head_dim, half = head_dim / 2;
    int j = r / half, i = r % half;
    return h * head_dim + 2 * i + j;
}

static uint32_t word_at(const uint8_t *base, size_t stride, int64_t i) {
    const uint8_t *p = base + (size_t)i * stride;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Code k of a GPTQ-packed stream (words `stride` bytes apart), as AutoGPTQ's pack() lays it
 * out: 2/4/8 bits: word k / (32/bits), shift bits * (k % (32/bits)); 3 bits: blocks of 32
 * codes in 3 words w0 w1 w2: codes 0-9 in w0 at 3j, code 10 = w0 bits 30-31 + w1 bit 0 (as
 * its bit 2), codes 11-20 in w1 at 3(j-11)+1, code 21 = w1 bit 31 + w2 bits 0-1 (as its bits
 * 1-2), codes 22-31 in w2 at 3(j-22)+2. */
static uint32_t ref_gptq_code(const uint8_t *base, size_t stride, int bits, int64_t k) {
    if (bits != 3) {
        int per = 32 / bits;
        return word_at(base, stride, k / per) >> (bits * (k % per)) & ((1u << bits) - 1);
    }
    int64_t b = k / 32;
    int j = (int)(k % 32);
    uint32_t w0 = word_at(base, stride, 3 * b), w1 = word_at(base, stride, 3 * b + 1),
             w2 = word_at(base, stride, 3 * b + 2);
    if (j < 10) return w0 >> (3 * j) & 7;
    if (j == 10) return (w0 >> 30) | (w1 & 1) << 2;
    if (j < 21) return w1 >> (3 * (j - 11) + 1) & 7;
    if (j == 21) return (w1 >> 31) | (w2 & 3) << 1;
    return w2 >> (3 * (j - 22) + 2) & 7;
}

/* The inverse: sets code k (words zeroed first). */
static void ref_gptq_put(uint8_t *base, size_t stride, int bits, int64_t k, uint32_t v) {
    for (int i = 0; i < bits; i++) { /* bit i of code k: find it by the formula above, bit by bit */
        if (!(v >> i & 1)) continue;
        int64_t word, pos;
        if (bits != 3) {
            int per = 32 / bits;
            word = k / per, pos = bits * (k % per) + i;
        } else {
            int64_t b = k / 32;
            int j = (int)(k % 32);
            if (j < 10) word = 3 * b, pos = 3 * j + i;
            else if (j == 10) word = 3 * b + (i < 2 ? 0 : 1), pos = i < 2 ? 30 + i : 0;
            else if (j < 21) word = 3 * b + 1, pos = 3 * (j - 11) + 1 + i;
            else if (j == 21) word = 3 * b + (i < 1 ? 1 : 2), pos = i < 1 ? 31 : i - 1;
            else word = 3 * b + 2, pos = 3 * (j - 22) + 2 + i;
        }
        base[(size_t)word * stride + (size_t)(pos / 8)] |= (uint8_t)(1u << (pos % 8));
    }
}

/* Words a GPTQ tensor packs n codes into: whole words for 2/4/8 bits, whole 32-code blocks of
 * 3 words for 3 bits (qcalib's padding; see gptq_format.c). */
static int64_t ref_words(int64_t n, int bits) {
    if (bits == 3) return (n + 31) / 32 * 3;
    return (n + 32 / bits - 1) / (32 / bits);
}

static const qc_safetensors_tensor *tensor(const qc_safetensors_file *f, const char *prefix, const char *suffix) {
    char name[160];
    snprintf(name, sizeof name, "%s.%s", prefix, suffix);
    const qc_safetensors_tensor *t = qc_safetensors_find(f, name);
    CHECK(t != NULL, "tensor %s missing", name);
    return t;
}

/* Every packed tensor of dir's model.safetensors against m, with the formulas above. */
static void check_gptq_bytes(const qmodel *m, const char *dir, int format) {
    qc_err e;
    qc_safetensors_file f;
    char path[640];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK_OK(qc_safetensors_open(&f, path, &e), e);
    const qc_config *c = &m->cfg;
    int bad = 0;
    for (int l = 0; l < c->n_layers; l++)
        for (int k = 0; k < NLIN; k++) {
            const qc_qweight *q = &m->q[l * NLIN + k];
            int heads = lin_w[k] == QC_W_Q ? c->n_heads : lin_w[k] == QC_W_K ? c->n_kv_heads : 0;
            char p[96], name[128];
            snprintf(p, sizeof p, "model.layers.%d.%s", l, lin_hf[k]);
            if (!q->codes) { /* kept unquantized: an F16 weight, no packed tensors */
                const qc_safetensors_tensor *w = tensor(&f, p, "weight");
                snprintf(name, sizeof name, "%s.qweight", p);
                CHECK(w && w->dtype == QC_DT_F16 && qc_safetensors_find(&f, name) == NULL, "%s: F16 weight only", p);
                continue;
            }
            const qc_safetensors_tensor *qw = tensor(&f, p, "qweight"), *qz = tensor(&f, p, "qzeros"),
                               *sc = tensor(&f, p, "scales"), *gi = tensor(&f, p, "g_idx");
            if (!qw || !qz || !sc || !gi) return qc_safetensors_close(&f);
            int64_t inw = ref_words(q->cols, q->bits), outw = ref_words(q->rows, q->bits);
            CHECK(qw->dtype == QC_DT_I32 && qw->ndim == 2 && qw->shape[0] == inw && qw->shape[1] == q->rows,
                  "%s.qweight shape [%lld, %lld]", p, (long long)qw->shape[0], (long long)qw->shape[1]);
            CHECK(qz->dtype == QC_DT_I32 && qz->ndim == 2 && qz->shape[0] == q->ngroups && qz->shape[1] == outw,
                  "%s.qzeros shape", p);
            CHECK(sc->dtype == QC_DT_F16 && sc->shape[0] == q->ngroups && sc->shape[1] == q->rows, "%s.scales", p);
            CHECK(gi->dtype == QC_DT_I32 && gi->ndim == 1 && gi->shape[0] == q->cols, "%s.g_idx", p);
            if (qw->shape[0] != inw || qz->shape[1] != outw) continue;
            for (int o = 0; o < q->rows; o++) {
                int src = hf_to_interleaved(o, heads, c->head_dim);
                for (int64_t kk = 0; kk < inw * 32 / q->bits; kk++) { /* padding codes are 0 */
                    uint32_t want = kk < q->cols ? q->codes[(size_t)src * q->cols + kk] : 0;
                    bad += ref_gptq_code(qw->data + (size_t)o * 4, (size_t)q->rows * 4, q->bits, kk) != want;
                }
                for (int g = 0; g < q->ngroups; g++) {
                    uint32_t want = (uint32_t)q->zeros[(size_t)src * q->ngroups + g] - (format == 1 ? 1 : 0);
                    bad += ref_gptq_code(qz->data + (size_t)g * outw * 4, 4, q->bits, o) != want;
                    const uint8_t *s = sc->data + ((size_t)g * q->rows + o) * 2;
                    bad += qc_f16_to_f32((uint16_t)(s[0] | s[1] << 8)) != q->scales[(size_t)src * q->ngroups + g];
                }
            }
            for (int cc = 0; cc < q->cols; cc++) bad += (int32_t)word_at(gi->data, 4, cc) != q->g_idx[cc];
        }
    CHECK(bad == 0, "%s: %d packed values differ from the reference formulas", dir, bad);
    qc_safetensors_close(&f);
}

static const int awq_order[8] = { 0, 2, 4, 6, 1, 3, 5, 7 }; /* nibble i holds column 8j + awq_order[i] */

static uint32_t ref_awq_code(const uint8_t *row, int o) {
    uint32_t w = word_at(row, 4, o / 8);
    for (int i = 0; i < 8; i++)
        if (awq_order[i] == o % 8) return w >> (4 * i) & 15;
    return 99;
}

static void check_awq_bytes(const qmodel *m, const char *dir) {
    qc_err e;
    qc_safetensors_file f;
    char path[640];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK_OK(qc_safetensors_open(&f, path, &e), e);
    const qc_config *c = &m->cfg;
    int bad = 0;
    for (int l = 0; l < c->n_layers; l++)
        for (int k = 0; k < NLIN; k++) {
            const qc_qweight *q = &m->q[l * NLIN + k];
            int heads = lin_w[k] == QC_W_Q ? c->n_heads : lin_w[k] == QC_W_K ? c->n_kv_heads : 0;
            char p[96];
            snprintf(p, sizeof p, "model.layers.%d.%s", l, lin_hf[k]);
            const qc_safetensors_tensor *qw = tensor(&f, p, "qweight"), *qz = tensor(&f, p, "qzeros"),
                               *sc = tensor(&f, p, "scales");
            CHECK(qc_safetensors_find(&f, "model.layers.0.self_attn.q_proj.g_idx") == NULL, "AWQ has no g_idx");
            if (!qw || !qz || !sc) return qc_safetensors_close(&f);
            int ow = q->rows / 8;
            CHECK(qw->dtype == QC_DT_I32 && qw->shape[0] == q->cols && qw->shape[1] == ow, "%s.qweight shape", p);
            CHECK(qz->dtype == QC_DT_I32 && qz->shape[0] == q->ngroups && qz->shape[1] == ow, "%s.qzeros shape", p);
            CHECK(sc->dtype == QC_DT_F16 && sc->shape[0] == q->ngroups && sc->shape[1] == q->rows, "%s.scales", p);
            for (int o = 0; o < q->rows; o++) {
                int src = hf_to_interleaved(o, heads, c->head_dim);
                for (int kk = 0; kk < q->cols; kk++)
                    bad += ref_awq_code(qw->data + (size_t)kk * ow * 4, o) != q->codes[(size_t)src * q->cols + kk];
                for (int g = 0; g < q->ngroups; g++) {
                    bad += ref_awq_code(qz->data + (size_t)g * ow * 4, o) !=
                           (uint32_t)q->zeros[(size_t)src * q->ngroups + g];
                    const uint8_t *s = sc->data + ((size_t)g * q->rows + o) * 2;
                    bad += qc_f16_to_f32((uint16_t)(s[0] | s[1] << 8)) != q->scales[(size_t)src * q->ngroups + g];
                }
            }
        }
    CHECK(bad == 0, "%s: %d packed values differ from AutoAWQ's layout", dir, bad);
    qc_safetensors_close(&f);
}

static bool file_contains(const char *path, const char *needle) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return false;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

/* ---- tests ------------------------------------------------------------------------------------- */

static const struct {
    const char *config;
    int groupsize;
    bool sym, act;
    const char *qtype;
} vector_sets[] = {
    { "w4_g32", 32, false, false, "gptq-4bit-g32" },
    { "w4_g32_act", 32, false, true, "gptq-4bit-g32" },
    { "w4_g32_sym", 32, true, false, "gptq-4bit-g32" },
    { "w4_gch", -1, false, false, "gptq-4bit-gch" },
};

static void test_gptq_vectors_roundtrip(void) {
    qc_err e;
    for (size_t s = 0; s < sizeof vector_sets / sizeof vector_sets[0]; s++) {
        qmodel m = { 0 };
        if (!qm_load_vectors(&m, vector_sets[s].config, vector_sets[s].groupsize, vector_sets[s].sym)) {
            qm_free(&m);
            continue;
        }
        qc_weight_source src = qm_source(&m);
        for (int format = 1; format <= 2; format++) {
            char dir[64];
            snprintf(dir, sizeof dir, "gptq_%s_v%d", vector_sets[s].config, format);
            char path_buf[512];
    const char *path = scratch_into(path_buf, dir);
            CHECK_OK(export_gptq(&src, path, format, vector_sets[s].act, &e), e);
            check_gptq_bytes(&m, path, format);
            check_roundtrip(&m, path, vector_sets[s].qtype);
            char cfg[640], qcfg[640];
            snprintf(cfg, sizeof cfg, "%s/config.json", path);
            snprintf(qcfg, sizeof qcfg, "%s/quantize_config.json", path);
            CHECK(file_contains(cfg, "\"quant_method\": \"gptq\"") &&
                      file_contains(cfg, format == 1 ? "\"checkpoint_format\": \"gptq\"" : "\"gptq_v2\"") &&
                      file_contains(cfg, vector_sets[s].groupsize > 0 ? "\"group_size\": 32" : "\"group_size\": -1") &&
                      file_contains(cfg, vector_sets[s].act ? "\"desc_act\": true" : "\"desc_act\": false") &&
                      file_contains(cfg, vector_sets[s].sym ? "\"sym\": true" : "\"sym\": false") &&
                      file_contains(cfg, "\"damp_percent\": 0.01") && file_contains(cfg, "\"static_groups\": false") &&
                      file_contains(cfg, "\"true_sequential\": true") && file_contains(cfg, "\"bits\": 4"),
                  "%s: quantization_config fields", cfg);
            CHECK(file_contains(qcfg, "\"bits\": 4") && file_contains(qcfg, "\"model_file_base_name\": \"model\"") &&
                      file_contains(qcfg, "\"quant_method\": \"gptq\""),
                  "%s: AutoGPTQ fields", qcfg);
            CHECK(!file_contains(cfg, "dynamic") && !file_contains(qcfg, "dynamic"), "%s: uniform, no dynamic", path);
        }
        qm_free(&m);
    }
}

/* Synthetic (random, not from a solver) 2-, 3- and 8-bit weights: the packings that straddle
 * words (3-bit) and pad (in = 172 is 21.5 words at 4 bits, 16.1 at 3, 10.75 at 2). */
static void test_gptq_synthetic_bits(void) {
    qc_err e;
    static const struct {
        int bits, groupsize;
        bool sym, act;
        const char *qtype;
    } sets[] = {
        { 2, 16, false, false, "gptq-2bit-g16" },
        { 3, 32, false, true, "gptq-3bit-g32" },
        { 3, -1, true, false, "gptq-3bit-gch" },
        { 8, -1, true, false, "gptq-8bit-gch" },
        { 8, 64, false, true, "gptq-8bit-g64" },
    };
    for (size_t s = 0; s < sizeof sets / sizeof sets[0]; s++) {
        qmodel m = { 0 };
        qm_synthetic(&m, sets[s].bits, sets[s].groupsize, sets[s].sym, sets[s].act, 1000 + s);
        qc_weight_source src = qm_source(&m);
        for (int format = 1; format <= 2; format++) {
            char dir[64];
            snprintf(dir, sizeof dir, "gptq_synth%zu_v%d", s, format);
            char path_buf[512];
    const char *path = scratch_into(path_buf, dir);
            CHECK_OK(export_gptq(&src, path, format, sets[s].act, &e), e);
            check_gptq_bytes(&m, path, format);
            check_roundtrip(&m, path, sets[s].qtype);
        }
        qm_free(&m);
    }
    /* the packing helpers' word counts for the down_proj width (in = 172) */
    CHECK(ref_words(172, 4) == 22 && ref_words(172, 3) == 18 && ref_words(172, 2) == 11 && ref_words(172, 8) == 43,
          "padded word counts");
}

/* The AutoGPTQ 3-bit block, bit by bit: codes with one bit set land where AutoGPTQ's pack()
 * puts them (a check of the reference formula itself, on a single 3-word block). */
static void test_gptq_3bit_block(void) {
    uint8_t w[12];
    memset(w, 0, sizeof w);
    ref_gptq_put(w, 4, 3, 10, 4); /* code 10, bit 2 -> word 1 bit 0 */
    CHECK(word_at(w, 4, 0) == 0 && word_at(w, 4, 1) == 1 && word_at(w, 4, 2) == 0, "code 10 bit 2");
    memset(w, 0, sizeof w);
    ref_gptq_put(w, 4, 3, 10, 3); /* code 10, bits 0-1 -> word 0 bits 30-31 */
    CHECK(word_at(w, 4, 0) == 0xC0000000u && word_at(w, 4, 1) == 0, "code 10 bits 0-1");
    memset(w, 0, sizeof w);
    ref_gptq_put(w, 4, 3, 21, 7); /* code 21: word 1 bit 31, word 2 bits 0-1 */
    CHECK(word_at(w, 4, 1) == 0x80000000u && word_at(w, 4, 2) == 3, "code 21");
    memset(w, 0, sizeof w);
    ref_gptq_put(w, 4, 3, 31, 7); /* code 31: word 2 bits 29-31 */
    CHECK(word_at(w, 4, 2) == 0xE0000000u, "code 31");
    for (int k = 0; k < 32; k++) {
        memset(w, 0, sizeof w);
        ref_gptq_put(w, 4, 3, k, (uint32_t)(k % 7) + 1);
        CHECK(ref_gptq_code(w, 4, 3, k) == (uint32_t)(k % 7) + 1, "3-bit code %d put/get", k);
    }
}

/* AWQ: round trips for the contiguous 4-bit sets, with the FFN padded to 192 (a multiple of 32
 * and 8: AutoAWQ's GEMM needs out % 8 == 0 and in % group == 0); padding rows/columns of the
 * quantized weights get codes equal to their zero point, i.e. exact zeros. */
static bool pad_ffn_qweights(qmodel *m, int hidden) {
    qc_err e;
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int k = 4; k < NLIN; k++) { /* gate, up, down */
            qc_qweight *q = &m->q[l * NLIN + k], p;
            bool down = lin_w[k] == QC_W_DOWN;
            int rows = down ? q->rows : hidden, cols = down ? hidden : q->cols;
            CHECK_OK(qc_qweight_init(&p, rows, cols, q->bits, q->groupsize, q->sym, &e), e);
            for (int r = 0; r < rows; r++)
                for (int g = 0; g < p.ngroups; g++) {
                    bool old = r < q->rows && g < q->ngroups;
                    p.scales[(size_t)r * p.ngroups + g] = old ? q->scales[(size_t)r * q->ngroups + g] : 1.0f;
                    p.zeros[(size_t)r * p.ngroups + g] = old ? q->zeros[(size_t)r * q->ngroups + g] : 8.0f;
                }
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c++)
                    p.codes[(size_t)r * cols + c] =
                        r < q->rows && c < q->cols ? q->codes[(size_t)r * q->cols + c]
                                                   : (uint8_t)p.zeros[(size_t)r * p.ngroups + p.g_idx[c]];
            qc_qweight_free(q);
            *q = p;
        }
    m->cfg.hidden_dim = hidden;
    return true;
}

static void test_awq_roundtrip(void) {
    qc_err e;
    qc_checkpoint *padded = NULL;
    CHECK_OK(qc_checkpoint_open(&padded, shared_path("models/stories260K/stories260K.bin"), &e), e);
    if (!padded) return;
    CHECK_OK(qc_checkpoint_pad_ffn(padded, 32, &e), e);
    for (size_t s = 0; s < sizeof vector_sets / sizeof vector_sets[0]; s++) {
        if (vector_sets[s].act) continue;
        qmodel m = { 0 };
        if (!qm_load_vectors(&m, vector_sets[s].config, vector_sets[s].groupsize, vector_sets[s].sym)) {
            qm_free(&m);
            continue;
        }
        qc_weight_source src = qm_source(&m);
        /* unpadded: refused, naming the linear and the reason */
        char refused_buf[512];
    const char *refused = scratch_into(refused_buf, "awq_refused");
        CHECK_FAILS(export_awq(&src, refused, &e), e, "model.layers.0.mlp.gate_proj: out_features 172");
        CHECK(strstr(e.msg, "pad") != NULL, "message suggests padding: %s", e.msg);
        if (vector_sets[s].groupsize > 0) { /* FFN 176: whole words, but 176 % 32 != 0 for down_proj */
            pad_ffn_qweights(&m, 176);
            CHECK_FAILS(export_awq(&src, refused, &e), e,
                        "model.layers.0.mlp.down_proj: in_features 176 is not a multiple of group size 32");
        }
        CHECK(!qc_path_exists(refused), "nothing written for a refused AWQ export");
        pad_ffn_qweights(&m, 192);
        m.ck = padded;
        src = qm_source(&m);
        char dir[64];
        snprintf(dir, sizeof dir, "awq_%s", vector_sets[s].config);
        char path_buf[512];
    const char *path = scratch_into(path_buf, dir);
        CHECK_OK(export_awq(&src, path, &e), e);
        check_awq_bytes(&m, path);
        check_roundtrip(&m, path, vector_sets[s].groupsize > 0 ? "awq-4bit-g32" : "awq-4bit-gch");
        char cfg[640], qcfg[640];
        snprintf(cfg, sizeof cfg, "%s/config.json", path);
        snprintf(qcfg, sizeof qcfg, "%s/quant_config.json", path);
        CHECK(file_contains(cfg, "\"quant_method\": \"awq\"") && file_contains(cfg, "\"version\": \"gemm\"") &&
                  file_contains(cfg, "\"zero_point\": true") && file_contains(cfg, "\"bits\": 4") &&
                  file_contains(cfg, vector_sets[s].groupsize > 0 ? "\"group_size\": 32" : "\"group_size\": -1") &&
                  file_contains(cfg, "\"intermediate_size\": 192"),
              "%s: quantization_config fields", cfg);
        CHECK(file_contains(qcfg, "\"w_bit\": 4") && file_contains(qcfg, "\"version\": \"GEMM\"") &&
                  file_contains(qcfg, "\"q_group_size\""),
              "%s: AutoAWQ fields", qcfg);
        qm_free(&m);
    }
    qc_checkpoint_close(padded);
}

static void test_awq_refusals(void) {
    qc_err e;
    char path_buf[512];
    const char *path = scratch_into(path_buf, "awq_refused2");
    qmodel m = { 0 };
    if (qm_load_vectors(&m, "w4_g32_act", 32, false)) {
        pad_ffn_qweights(&m, 192); /* shapes fine: the act-order groups are what is refused */
        qc_checkpoint *padded = NULL;
        CHECK_OK(qc_checkpoint_open(&padded, shared_path("models/stories260K/stories260K.bin"), &e), e);
        if (padded) {
            CHECK_OK(qc_checkpoint_pad_ffn(padded, 32, &e), e);
            m.ck = padded;
            qc_weight_source src = qm_source(&m);
            CHECK_FAILS(export_awq(&src, path, &e), e, "act-order");
            CHECK(strstr(e.msg, "model.layers.0.self_attn.q_proj") && strstr(e.msg, "GPTQ"), "names linear: %s", e.msg);
            qc_checkpoint_close(padded);
        }
    }
    qm_free(&m);
    qm_synthetic(&m, 3, 32, false, false, 7); /* synthetic 3-bit */
    qc_weight_source src = qm_source(&m);
    CHECK_FAILS(export_awq(&src, path, &e), e, "4-bit");
    CHECK(strstr(e.msg, "3 bits") != NULL, "says 3 bits: %s", e.msg);
    qm_free(&m);
    /* what only GPTQ's dynamic can hold: a linear of its own group size, one left unquantized */
    qc_pyrandom r;
    qc_pyrandom_seed(&r, 8);
    qm_synthetic(&m, 4, 32, false, false, 8);
    src = qm_source(&m);
    qm_set_synthetic(&m, 0, 0, 4, 64, false, &r);
    CHECK_FAILS(export_awq(&src, path, &e), e, "model.layers.0.self_attn.q_proj: group size 64; most linears have 32");
    qc_qweight_free(&m.q[1 * NLIN + 2]);
    CHECK_FAILS(export_awq(&src, path, &e), e, "model.layers.1.self_attn.v_proj: not quantized");
    /* a quantized embedding */
    CHECK_OK(qc_qweight_init(&m.embed, m.cfg.vocab_size, m.cfg.dim, 4, 32, true, &e), e);
    synthetic_fill(&m.embed, false, &r);
    CHECK_FAILS(export_awq(&src, path, &e), e,
                "model.embed_tokens: the token embedding is quantized, but AWQ checkpoints");
    CHECK(!qc_path_exists(path), "nothing written");
    qm_free(&m);
}

static void test_gptq_refusals(void) {
    qc_err e;
    char path_buf[512];
    const char *path = scratch_into(path_buf, "gptq_refused");
    qmodel m = { 0 };
    if (!qm_load_vectors(&m, "w4_g32", 32, false)) return qm_free(&m);
    qc_weight_source src = qm_source(&m);

    qc_qweight *down3 = &m.q[3 * NLIN + 6], saved = *down3;
    qc_qweight other; /* one linear of its own settings: checked on its own, 5 bits refused */
    CHECK_OK(qc_qweight_init(&other, saved.rows, saved.cols, 5, 32, false, &e), e);
    for (size_t i = 0; i < (size_t)other.rows * other.ngroups; i++) other.scales[i] = 1.0f, other.zeros[i] = 1.0f;
    *down3 = other;
    CHECK_FAILS(export_gptq(&src, path, 2, false, &e), e, "model.layers.3.mlp.down_proj: 5 bits");
    other.bits = 8, *down3 = other;
    other.codes[7] = 255, other.zeros[0] = 0.0f; /* and 8 bits in v1 needs zeros 1..256 */
    CHECK_FAILS(export_gptq(&src, path, 1, false, &e), e, "model.layers.3.mlp.down_proj");
    CHECK(strstr(e.msg, "gptq_v2") != NULL, "zero 0 at 8 bits: %s", e.msg);
    qc_qweight_free(&other);
    *down3 = saved;

    float s0 = m.q[1].scales[5]; /* a scale that is not an fp16 value */
    m.q[1].scales[5] = nextafterf(s0, 1.0f);
    CHECK_FAILS(export_gptq(&src, path, 2, false, &e), e, "not exactly an fp16 value");
    CHECK(strstr(e.msg, "model.layers.0.self_attn.k_proj") && strstr(e.msg, "round its scales to fp16"),
          "names the linear and the fix: %s", e.msg);
    m.q[1].scales[5] = s0;

    float z0 = m.q[2].zeros[3]; /* a zero point of 0: v2 only */
    m.q[2].zeros[3] = 0.0f;
    CHECK_FAILS(export_gptq(&src, path, 1, false, &e), e, "gptq_v2");
    CHECK(strstr(e.msg, "model.layers.0.self_attn.v_proj") != NULL, "names v_proj: %s", e.msg);
    char v2_buf[512];
    const char *v2 = scratch_into(v2_buf, "gptq_zero0_v2");
    CHECK_OK(export_gptq(&src, v2, 2, false, &e), e);
    check_roundtrip(&m, v2, "gptq-4bit-g32");
    m.q[2].zeros[3] = z0;

    z0 = m.q[4].zeros[0]; /* not an integer */
    m.q[4].zeros[0] = 2.5f;
    CHECK_FAILS(export_gptq(&src, path, 2, false, &e), e, "zero point 2.5");
    m.q[4].zeros[0] = z0;

    m.q[0].g_idx[0] = 1, m.q[0].g_idx[40] = 0; /* act-order-like groups without desc_act */
    CHECK_FAILS(export_gptq(&src, path, 2, false, &e), e, "desc_act");
    m.q[0].g_idx[0] = 2; /* out of range */
    CHECK_FAILS(export_gptq(&src, path, 2, true, &e), e, "g_idx[0] = 2");
    m.q[0].g_idx[0] = 0, m.q[0].g_idx[40] = 1;

    qc_weight_source plain = qc_checkpoint_source(stories); /* nothing quantized */
    CHECK_FAILS(export_gptq(&plain, path, 2, false, &e), e, "no linear is quantized");

    const qc_config *c = &m.cfg; /* a quantized embedding: transformers and vLLM load it as fp16 */
    CHECK_OK(qc_qweight_init(&m.embed, c->vocab_size, c->dim, 8, 32, true, &e), e);
    for (size_t i = 0; i < (size_t)c->vocab_size * m.embed.ngroups; i++)
        m.embed.scales[i] = 1.0f, m.embed.zeros[i] = 128;
    CHECK_FAILS(export_gptq(&src, path, 2, false, &e), e, "model.embed_tokens: the token embedding is quantized");
    CHECK(strstr(e.msg, "GPTQ") && strstr(e.msg, "--format gguf, llama2c or fake"), "says why and what instead: %s",
          e.msg);
    qc_qweight_free(&m.embed);
    qc_gptq_export_opts o = { .checkpoint_format = 3, .damp_percent = 0.01f };
    qc_outdir d;
    CHECK_OK(qc_outdir_open(&d, path, true, &e), e);
    CHECK_FAILS(qc_gptq_export_into(&src, &d, &o, NULL, &e), e, "checkpoint_format 3");
    o.checkpoint_format = 1, o.damp_percent = 0.0f;
    CHECK_FAILS(qc_gptq_export_into(&src, &d, &o, NULL, &e), e, "damp_percent");
    qc_outdir_abort(&d);
    CHECK(!qc_path_exists(path), "nothing written for refused exports");
    qm_free(&m);
}

/* ---- hand-built and broken folders --------------------------------------------------------------- */

static char *slurp_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    fclose(f);
    return s;
}

/* s with the first `from` replaced by `to` (newly allocated). */
static char *replace_str(const char *s, const char *from, const char *to) {
    const char *p = strstr(s, from);
    CHECK(p != NULL, "fixture: '%s' not found", from);
    if (!p) return strdup(s);
    size_t a = (size_t)(p - s), n = strlen(s) - strlen(from) + strlen(to);
    char *out = malloc(n + 1);
    memcpy(out, s, a);
    strcpy(out + a, to);
    strcat(out, p + strlen(from));
    return out;
}

typedef struct fixture_tensor { /* a tensor replaced or added */
    const char *name;
    qc_dtype dtype;
    int ndim;
    int64_t shape[2];
    const void *data;
} fixture_tensor;

/* dir = a copy of the folder `good` with tensor `drop` left out, tensors `put` replacing
 * those of the same name (or added), and config.json = config (or the original). */
static void make_fixture(const char *good, const char *dir, const char *drop, const fixture_tensor *put, int nput,
                         const char *config) {
    qc_err e;
    mkdir(dir, 0755);
    char src[640], dst[640];
    snprintf(src, sizeof src, "%s/config.json", good);
    snprintf(dst, sizeof dst, "%s/config.json", dir);
    char *text = config ? strdup(config) : slurp_text(src);
    CHECK(text != NULL, "fixture config");
    if (text) write_str(dst, text);
    free(text);
    snprintf(src, sizeof src, "%s/model.safetensors", good);
    snprintf(dst, sizeof dst, "%s/model.safetensors", dir);
    qc_safetensors_file f;
    CHECK_OK(qc_safetensors_open(&f, src, &e), e);
    qc_safetensors_writer *w = qc_safetensors_writer_new(&e);
    bool *used = calloc((size_t)nput + 1, 1);
    for (int i = 0; i < f.ntensors; i++) {
        const qc_safetensors_tensor *t = &f.tensors[i];
        if (drop && strcmp(t->name, drop) == 0) continue;
        int r = -1;
        for (int k = 0; k < nput; k++)
            if (strcmp(put[k].name, t->name) == 0) r = k;
        if (r >= 0) CHECK_OK(qc_safetensors_writer_add(w, put[r].name, put[r].dtype, put[r].ndim, put[r].shape, &e), e);
        else CHECK_OK(qc_safetensors_writer_add(w, t->name, t->dtype, t->ndim, t->shape, &e), e);
        if (r >= 0) used[r] = true;
    }
    for (int k = 0; k < nput; k++)
        if (!used[k]) CHECK_OK(qc_safetensors_writer_add(w, put[k].name, put[k].dtype, put[k].ndim, put[k].shape, &e), e);
    CHECK_OK(qc_safetensors_writer_begin(w, dst, &e), e);
    for (int i = 0; i < f.ntensors; i++) {
        const qc_safetensors_tensor *t = &f.tensors[i];
        if (drop && strcmp(t->name, drop) == 0) continue;
        int r = -1;
        for (int k = 0; k < nput; k++)
            if (strcmp(put[k].name, t->name) == 0) r = k;
        if (r < 0) {
            CHECK_OK(qc_safetensors_writer_write(w, t->name, t->data, t->nbytes, &e), e);
        } else {
            size_t n = qc_dtype_size(put[r].dtype) * (size_t)put[r].shape[0] * (size_t)(put[r].ndim == 2 ? put[r].shape[1] : 1);
            CHECK_OK(qc_safetensors_writer_write(w, put[r].name, put[r].data, n, &e), e);
        }
    }
    for (int k = 0; k < nput; k++)
        if (!used[k]) {
            size_t n = qc_dtype_size(put[k].dtype) * (size_t)put[k].shape[0] * (size_t)(put[k].ndim == 2 ? put[k].shape[1] : 1);
            CHECK_OK(qc_safetensors_writer_write(w, put[k].name, put[k].data, n, &e), e);
        }
    CHECK_OK(qc_safetensors_writer_finish(w, &e), e);
    qc_safetensors_writer_free(w);
    qc_safetensors_close(&f);
    free(used);
}

/* A quantized lm_head packed by this test's own packer (4-bit g32, v2 zeros), added to the
 * w4_g32 v2 export with the classifier untied: the reader decodes an independently packed
 * tensor, whole and by row ranges. */
static void test_independent_pack_lm_head(void) {
    qc_err e;
    char good_buf[512];
    const char *good = scratch_into(good_buf, "gptq_w4_g32_v2");
    if (!qc_path_exists(good)) return;
    const qc_config *c = qc_checkpoint_config(stories);
    int vocab = c->vocab_size, dim = c->dim, ng = dim / 32;
    qc_qweight lm;
    CHECK_OK(qc_qweight_init(&lm, vocab, dim, 4, 32, false, &e), e);
    qc_pyrandom r;
    qc_pyrandom_seed(&r, 5);
    for (size_t i = 0; i < (size_t)vocab * dim; i++) lm.codes[i] = (uint8_t)qc_pyrandom_randint(&r, 0, 15);
    for (size_t i = 0; i < (size_t)vocab * ng; i++) {
        lm.scales[i] = f16_round((float)(0.01 + 0.1 * qc_pyrandom_random(&r)));
        lm.zeros[i] = (float)qc_pyrandom_randint(&r, 0, 15);
    }
    int64_t inw = dim * 4 / 32, outw = vocab * 4 / 32;
    uint8_t *qweight = calloc((size_t)inw * vocab, 4), *qzeros = calloc((size_t)ng * outw, 4);
    uint8_t *scales = calloc((size_t)ng * vocab, 2);
    int32_t *gidx = calloc((size_t)dim, 4);
    for (int o = 0; o < vocab; o++) {
        for (int k = 0; k < dim; k++) ref_gptq_put(qweight + (size_t)o * 4, (size_t)vocab * 4, 4, k, lm.codes[(size_t)o * dim + k]);
        for (int g = 0; g < ng; g++) {
            ref_gptq_put(qzeros + (size_t)g * outw * 4, 4, 4, o, (uint32_t)lm.zeros[(size_t)o * ng + g]);
            uint16_t h = qc_f32_to_f16(lm.scales[(size_t)o * ng + g]);
            scales[((size_t)g * vocab + o) * 2] = (uint8_t)h, scales[((size_t)g * vocab + o) * 2 + 1] = (uint8_t)(h >> 8);
        }
    }
    for (int k = 0; k < dim; k++) gidx[k] = k / 32;
    fixture_tensor put[] = {
        { "lm_head.qweight", QC_DT_I32, 2, { inw, vocab }, qweight },
        { "lm_head.qzeros", QC_DT_I32, 2, { ng, outw }, qzeros },
        { "lm_head.scales", QC_DT_F16, 2, { ng, vocab }, scales },
        { "lm_head.g_idx", QC_DT_I32, 1, { dim, 0 }, gidx },
    };
    char cfgpath[640];
    snprintf(cfgpath, sizeof cfgpath, "%s/config.json", good);
    char *cfg = slurp_text(cfgpath);
    char *untied = cfg ? replace_str(cfg, "\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false") : NULL;
    char dir_buf[512];
    const char *dir = scratch_into(dir_buf, "gptq_lm_head");
    make_fixture(good, dir, NULL, put, 4, untied);
    qc_checkpoint *ck = NULL;
    CHECK_OK(qc_checkpoint_open(&ck, dir, &e), e);
    if (ck) {
        float *want = malloc((size_t)vocab * dim * sizeof(float)), *got = malloc((size_t)vocab * dim * sizeof(float));
        qc_qweight_dequantize(&lm, want);
        CHECK_OK(qc_checkpoint_read(ck, QC_W_CLASSIFIER, 0, got, &e), e);
        CHECK(memcmp(got, want, (size_t)vocab * dim * sizeof(float)) == 0, "lm_head decodes the independent packing");
        memset(got, 0, (size_t)vocab * dim * sizeof(float));
        CHECK_OK(qc_checkpoint_read_rows(ck, QC_W_CLASSIFIER, 101, 7, got, &e), e);
        CHECK(memcmp(got, want + (size_t)101 * dim, (size_t)7 * dim * sizeof(float)) == 0, "lm_head rows 101..107");
        CHECK(qc_checkpoint_qtype(ck, QC_W_CLASSIFIER, 0) && strcmp(qc_checkpoint_qtype(ck, QC_W_CLASSIFIER, 0), "gptq-4bit-g32") == 0,
              "lm_head qtype");
        CHECK(qc_checkpoint_qtype(ck, QC_W_EMBED, 0) == NULL, "embedding stays float");
        free(want);
        free(got);
        qc_checkpoint_close(ck);
    }
    free(cfg), free(untied), free(qweight), free(qzeros), free(scales), free(gidx);
    qc_qweight_free(&lm);
}

/* dir = the folder `good` with its tensors split over two shards and an index (layers 0-2 in
 * the first); `drop` is left out of both the shards and the index. */
static void make_sharded(const char *good, const char *dir, const char *drop) {
    qc_err e;
    mkdir(dir, 0755);
    char src[640], dst[640];
    snprintf(src, sizeof src, "%s/config.json", good);
    snprintf(dst, sizeof dst, "%s/config.json", dir);
    char *text = slurp_text(src);
    if (text) write_str(dst, text);
    free(text);
    snprintf(src, sizeof src, "%s/model.safetensors", good);
    qc_safetensors_file f;
    CHECK_OK(qc_safetensors_open(&f, src, &e), e);
    static const char *const shard[2] = { "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors" };
    size_t total = 0;
    FILE *idx;
    snprintf(dst, sizeof dst, "%s/model.safetensors.index.json", dir);
    idx = fopen(dst, "w");
    fprintf(idx, "{\"weight_map\": {");
    bool first = true;
    for (int k = 0; k < 2; k++) {
        qc_safetensors_writer *w = qc_safetensors_writer_new(&e);
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 1) {
                snprintf(dst, sizeof dst, "%s/%s", dir, shard[k]);
                CHECK_OK(qc_safetensors_writer_begin(w, dst, &e), e);
            }
            for (int i = 0; i < f.ntensors; i++) {
                const qc_safetensors_tensor *t = &f.tensors[i];
                bool early = strstr(t->name, "layers.0.") || strstr(t->name, "layers.1.") || strstr(t->name, "layers.2.");
                if ((early ? 0 : 1) != k || (drop && strcmp(t->name, drop) == 0)) continue;
                if (pass == 0) {
                    CHECK_OK(qc_safetensors_writer_add(w, t->name, t->dtype, t->ndim, t->shape, &e), e);
                    fprintf(idx, "%s\"%s\": \"%s\"", first ? "" : ", ", t->name, shard[k]);
                    first = false;
                    total += t->nbytes;
                } else {
                    CHECK_OK(qc_safetensors_writer_write(w, t->name, t->data, t->nbytes, &e), e);
                }
            }
        }
        CHECK_OK(qc_safetensors_writer_finish(w, &e), e);
        qc_safetensors_writer_free(w);
    }
    fprintf(idx, "}, \"metadata\": {\"total_size\": %zu}}\n", total);
    CHECK(fclose(idx) == 0, "index written");
    qc_safetensors_close(&f);
}

static void test_sharded(void) {
    qc_err e;
    char good_buf[512], dir_buf[512];
    const char *good = scratch_into(good_buf, "gptq_w4_g32_act_v2");
    if (!qc_path_exists(good)) return;
    qmodel m = { 0 };
    if (qm_load_vectors(&m, "w4_g32_act", 32, false)) {
        const char *dir = scratch_into(dir_buf, "gptq_sharded");
        make_sharded(good, dir, NULL);
        check_roundtrip(&m, dir, "gptq-4bit-g32");
        dir = scratch_into(dir_buf, "gptq_sharded_no_scales");
        make_sharded(good, dir, "model.layers.1.self_attn.v_proj.scales");
        qc_checkpoint *ck = NULL;
        CHECK_FAILS_AT(qc_checkpoint_open(&ck, dir, &e), e, "model.safetensors.index.json",
                       "missing tensor 'model.layers.1.self_attn.v_proj.scales'");
    }
    qm_free(&m);
}

/* One broken folder per failure mode; the message names the file and the tensor or field. */
static void test_broken_folders(void) {
    qc_err e;
    char good_buf[512], awq_buf[512];
    const char *good = scratch_into(good_buf, "gptq_w4_g32_v1"), *awq = scratch_into(awq_buf, "awq_w4_g32");
    if (!qc_path_exists(good) || !qc_path_exists(awq)) return;
    qc_checkpoint *ck = NULL;
    char cfgpath[640];
    snprintf(cfgpath, sizeof cfgpath, "%s/config.json", good);
    char *cfg = slurp_text(cfgpath);
    if (!cfg) return;

    char d_buf[512];
    const char *d = scratch_into(d_buf, "bad_no_qzeros");
    make_fixture(good, d, "model.layers.0.self_attn.q_proj.qzeros", NULL, 0, NULL);
    CHECK_FAILS_AT(qc_checkpoint_open(&ck, d, &e), e, "model.safetensors", "missing tensor 'model.layers.0.self_attn.q_proj.qzeros'");

    d = scratch_into(d_buf, "bad_no_qweight"); /* no qweight and no weight */
    make_fixture(good, d, "model.layers.4.mlp.up_proj.qweight", NULL, 0, NULL);
    CHECK_FAILS_AT(qc_checkpoint_open(&ck, d, &e), e, "model.safetensors", "model.layers.4.mlp.up_proj.weight' (and no quantized .qweight");

    static int32_t zeros[24 * 64];
    fixture_tensor wrong_shape = { "model.layers.1.mlp.down_proj.qweight", QC_DT_I32, 2, { 20, 64 }, zeros };
    d = scratch_into(d_buf, "bad_qweight_shape");
    make_fixture(good, d, NULL, &wrong_shape, 1, NULL);
    CHECK_FAILS_AT(qc_checkpoint_open(&ck, d, &e), e, "model.safetensors", "'model.layers.1.mlp.down_proj.qweight': shape [20, 64]");
    CHECK(strstr(e.msg, "[22, 64]") != NULL, "says the expected shape: %s", e.msg);

    fixture_tensor wrong_dtype = { "model.layers.1.mlp.up_proj.qweight", QC_DT_F32, 2, { 8, 172 }, zeros };
    d = scratch_into(d_buf, "bad_qweight_dtype");
    make_fixture(good, d, NULL, &wrong_dtype, 1, NULL);
    CHECK_FAILS_AT(qc_checkpoint_open(&ck, d, &e), e, "model.safetensors", "'model.layers.1.mlp.up_proj.qweight': dtype F32");

    int32_t gidx[64];
    for (int k = 0; k < 64; k++) gidx[k] = k / 32;
    gidx[37] = 2; /* k_proj has 64 inputs: 2 groups of 32 */
    fixture_tensor bad_gidx = { "model.layers.2.self_attn.k_proj.g_idx", QC_DT_I32, 1, { 64, 0 }, gidx };
    d = scratch_into(d_buf, "bad_gidx");
    make_fixture(good, d, NULL, &bad_gidx, 1, NULL);
    CHECK_FAILS_AT(qc_checkpoint_open(&ck, d, &e), e, "model.safetensors", "'model.layers.2.self_attn.k_proj.g_idx': g_idx[37] = 2 is outside [0, 2)");

    char *c2 = replace_str(cfg, "\"quant_method\": \"gptq\"", "\"quant_method\": \"bitsandbytes\"");
    d = scratch_into(d_buf, "bad_quant_method");
    make_fixture(good, d, NULL, NULL, 0, c2);
    CHECK_FAILS_AT(qc_checkpoint_open(&ck, d, &e), e, "config.json", "quant_method \"bitsandbytes\" is not supported");
    free(c2);

    c2 = replace_str(cfg, "\"checkpoint_format\": \"gptq\"", "\"checkpoint_format\": \"marlin\"");
    d = scratch_into(d_buf, "bad_format");
    make_fixture(good, d, NULL, NULL, 0, c2);
    CHECK_FAILS_AT(qc_checkpoint_open(&ck, d, &e), e, "config.json", "checkpoint_format \"marlin\"");
    free(c2);

    c2 = replace_str(cfg, "\"bits\": 4", "\"bits\": 5");
    d = scratch_into(d_buf, "bad_bits");
    make_fixture(good, d, NULL, NULL, 0, c2);
    CHECK_FAILS_AT(qc_checkpoint_open(&ck, d, &e), e, "config.json", "bits 5");
    free(c2);

    c2 = replace_str(cfg, "\"group_size\": 32", "\"group_size\": 64"); /* the tensors say 32 */
    d = scratch_into(d_buf, "bad_group_size");
    make_fixture(good, d, NULL, NULL, 0, c2);
    CHECK_FAILS_AT(qc_checkpoint_open(&ck, d, &e), e, "model.safetensors", "qzeros': shape [2, 8]");
    free(c2);

    c2 = replace_str(cfg, ",\n  \"quantization_config\"", ",\n  \"unused\""); /* tensors quantized, config not */
    d = scratch_into(d_buf, "bad_no_quant_config");
    make_fixture(good, d, NULL, NULL, 0, c2);
    CHECK_FAILS_AT(qc_checkpoint_open(&ck, d, &e), e, "model.safetensors", "no quantization_config");
    free(c2);

    snprintf(cfgpath, sizeof cfgpath, "%s/config.json", awq);
    char *acfg = slurp_text(cfgpath);
    if (acfg) {
        c2 = replace_str(acfg, "\"version\": \"gemm\"", "\"version\": \"gemv\"");
        d = scratch_into(d_buf, "bad_awq_version");
        make_fixture(awq, d, NULL, NULL, 0, c2);
        CHECK_FAILS_AT(qc_checkpoint_open(&ck, d, &e), e, "config.json", "version \"gemv\"");
        free(c2);
        d = scratch_into(d_buf, "bad_awq_no_scales");
        make_fixture(awq, d, "model.layers.3.mlp.gate_proj.scales", NULL, 0, NULL);
        CHECK_FAILS_AT(qc_checkpoint_open(&ck, d, &e), e, "model.safetensors", "missing tensor 'model.layers.3.mlp.gate_proj.scales'");
        fixture_tensor awq_shape = { "model.layers.0.self_attn.o_proj.qzeros", QC_DT_I32, 2, { 2, 16 }, zeros };
        d = scratch_into(d_buf, "bad_awq_qzeros");
        make_fixture(awq, d, NULL, &awq_shape, 1, NULL);
        CHECK_FAILS_AT(qc_checkpoint_open(&ck, d, &e), e, "model.safetensors", "'model.layers.0.self_attn.o_proj.qzeros': shape [2, 16]");
        free(acfg);
    }
    CHECK(ck == NULL, "no checkpoint handed out on failure");
    free(cfg);
}

/* ---- per-module settings (GPTQModel's "dynamic") ------------------------------------------------- */

/* The w4_g32 vectors (4-bit, groups of 32, asymmetric) with every down_proj replaced by a
 * synthetic 8-bit symmetric g32 weight, layer 1's q_proj by a 3-bit per-channel asymmetric
 * one, and layer 2's v_proj left unquantized: 28 linears keep the base settings. */
static bool qm_mixed(qmodel *m) {
    if (!qm_load_vectors(m, "w4_g32", 32, false)) return false;
    qc_pyrandom r;
    qc_pyrandom_seed(&r, 11);
    for (int l = 0; l < m->cfg.n_layers; l++) qm_set_synthetic(m, l, 6, 8, 32, true, &r);
    qm_set_synthetic(m, 1, 0, 3, -1, false, &r);
    qc_qweight_free(&m->q[2 * NLIN + 2]);
    return true;
}

/* The JSON file `path`, or its member `member` (NULL: the whole file). */
static cJSON *json_file(const char *path) {
    char *text = slurp_text(path);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    CHECK(j != NULL, "%s parses", path);
    free(text);
    return j;
}

/* o has exactly the members of want, in that order, each an object with the fields given:
 * bits, group_size, sym (bits 0: an empty object, a negative entry). */
typedef struct want_entry {
    const char *key;
    int bits, group_size;
    bool sym;
} want_entry;

static void check_dynamic(const cJSON *o, const want_entry *want, int n, const char *what) {
    CHECK(cJSON_IsObject(o) && cJSON_GetArraySize(o) == n, "%s: dynamic has %d entries, want %d", what,
          cJSON_GetArraySize(o), n);
    const cJSON *it = o ? o->child : NULL;
    for (int i = 0; i < n && it; i++, it = it->next) {
        CHECK(strcmp(it->string, want[i].key) == 0, "%s: entry %d is \"%s\", want \"%s\"", what, i, it->string,
              want[i].key);
        const cJSON *b = cJSON_GetObjectItem(it, "bits"), *g = cJSON_GetObjectItem(it, "group_size"),
                    *y = cJSON_GetObjectItem(it, "sym");
        if (!want[i].bits) {
            CHECK(cJSON_IsObject(it) && !it->child, "%s: \"%s\" is {}", what, it->string);
            continue;
        }
        CHECK(cJSON_GetArraySize(it) == 3 && cJSON_IsNumber(b) && b->valueint == want[i].bits && cJSON_IsNumber(g) &&
                  g->valueint == want[i].group_size && cJSON_IsBool(y) && cJSON_IsTrue(y) == want[i].sym,
              "%s: \"%s\" holds bits, group_size, sym = %d, %d, %d", what, it->string, want[i].bits,
              want[i].group_size, (int)want[i].sym);
    }
}

static void test_gptq_mixed_roundtrip(void) {
    qc_err e;
    qmodel m = { 0 };
    if (!qm_mixed(&m)) return qm_free(&m);
    qc_weight_source src = qm_source(&m);
    static const want_entry want[] = { /* the negative entry first, then model order */
        { "-:^model\\.layers\\.2\\.self_attn\\.v_proj$", 0, 0, false },
        { "+:^model\\.layers\\.0\\.mlp\\.down_proj$", 8, 32, true },
        { "+:^model\\.layers\\.1\\.self_attn\\.q_proj$", 3, -1, false },
        { "+:^model\\.layers\\.1\\.mlp\\.down_proj$", 8, 32, true },
        { "+:^model\\.layers\\.2\\.mlp\\.down_proj$", 8, 32, true },
        { "+:^model\\.layers\\.3\\.mlp\\.down_proj$", 8, 32, true },
        { "+:^model\\.layers\\.4\\.mlp\\.down_proj$", 8, 32, true },
    };
    for (int format = 1; format <= 2; format++) {
        char dir[32], path_buf[512], cfg[640], qcfg[640];
        snprintf(dir, sizeof dir, "gptq_mixed_v%d", format);
        const char *path = scratch_into(path_buf, dir);
        CHECK_OK(export_gptq(&src, path, format, false, &e), e);
        check_gptq_bytes(&m, path, format);
        check_roundtrip(&m, path, NULL);
        snprintf(cfg, sizeof cfg, "%s/config.json", path);
        snprintf(qcfg, sizeof qcfg, "%s/quantize_config.json", path);
        cJSON *c = json_file(cfg), *q = json_file(qcfg);
        const cJSON *qc = cJSON_GetObjectItem(c, "quantization_config");
        const cJSON *bits = cJSON_GetObjectItem(qc, "bits"), *gs = cJSON_GetObjectItem(qc, "group_size");
        CHECK(bits && bits->valueint == 4 && gs && gs->valueint == 32 && cJSON_IsFalse(cJSON_GetObjectItem(qc, "sym")),
              "%s: the base is the 28 linears' 4-bit, group size 32, asymmetric", cfg);
        check_dynamic(cJSON_GetObjectItem(qc, "dynamic"), want, 7, cfg);
        check_dynamic(cJSON_GetObjectItem(q, "dynamic"), want, 7, qcfg);
        CHECK(cJSON_GetObjectItem(q, "bits") && cJSON_GetObjectItem(q, "bits")->valueint == 4, "%s: base bits", qcfg);
        cJSON_Delete(c);
        cJSON_Delete(q);
    }
    qm_free(&m);
}

/* m written as GPTQ v2 into scratch folder `dir` and read back (check_roundtrip); its
 * config.json (path into cfg), parsed. */
static cJSON *exported_config(qmodel *m, const char *dir, char *cfg, size_t size) {
    qc_err e;
    qc_weight_source src = qm_source(m);
    char path_buf[512];
    const char *path = scratch_into(path_buf, dir);
    CHECK_OK(export_gptq(&src, path, 2, false, &e), e);
    check_roundtrip(m, path, NULL);
    snprintf(cfg, size, "%s/config.json", path);
    return json_file(cfg);
}

/* vLLM's fused layers: layer 3's gate and up at one 8-bit setting and layer 4's q, k, v
 * unquantized each get one entry naming the members and the fused layer; layer 0's k_proj
 * alone at 8 bits (its q, v at the base) keeps an entry of its own. The reader gives every
 * member its setting, and the entries give vLLM's gate_up_proj / qkv_proj the same. */
static void test_gptq_fused_groups(void) {
    qc_err e;
    qmodel m = { 0 };
    if (!qm_load_vectors(&m, "w4_g32", 32, false)) return qm_free(&m);
    qc_pyrandom r;
    qc_pyrandom_seed(&r, 17);
    qm_set_synthetic(&m, 3, 4, 8, 32, true, &r);
    qm_set_synthetic(&m, 3, 5, 8, 32, true, &r);
    qm_set_synthetic(&m, 0, 1, 8, 32, true, &r);
    for (int k = 0; k < 3; k++) qc_qweight_free(&m.q[4 * NLIN + k]);
    static const want_entry want[] = {
        { "-:^model\\.layers\\.4\\.self_attn\\.(?:q|k|v|qkv)_proj$", 0, 0, false },
        { "+:^model\\.layers\\.0\\.self_attn\\.k_proj$", 8, 32, true },
        { "+:^model\\.layers\\.3\\.mlp\\.(?:gate|up|gate_up)_proj$", 8, 32, true },
    };
    char cfg[640];
    cJSON *c = exported_config(&m, "gptq_fused", cfg, sizeof cfg);
    const cJSON *dyn = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "quantization_config"), "dynamic");
    check_dynamic(dyn, want, 3, cfg);
    qc_hf_quant base = { .bits = 4, .group_size = 32 }, got;
    CHECK_OK(qc_hfq_dynamic_parse(cfg, dyn, &base, &e), e);
    static const struct { const char *name; int bits; const char *skip; } fused[] = {
        { "model.layers.3.mlp.gate_up_proj", 8, NULL },
        { "model.layers.2.mlp.gate_up_proj", 4, NULL },
        { "model.layers.4.self_attn.qkv_proj", 0, want[0].key },
        { "model.layers.3.self_attn.qkv_proj", 4, NULL },
    };
    for (int i = 0; i < 4; i++) {
        const char *skip = NULL;
        CHECK_OK(qc_hfq_module(&base, fused[i].name, cfg, &got, &skip, &e), e);
        CHECK(fused[i].skip ? skip && !strcmp(skip, fused[i].skip) : !skip && got.bits == fused[i].bits,
              "vLLM's %s: %s", fused[i].name, skip ? "unquantized" : "quantized");
    }
    qc_hf_quant_free(&base);
    cJSON_Delete(c);
    qm_free(&m);
}

/* Equal numbers of two settings: the base is the first linear's (layer 0's q_proj, 8-bit). */
static void test_gptq_mixed_tie(void) {
    qmodel m = { 0 };
    qm_synthetic(&m, 4, 32, false, false, 12);
    qc_pyrandom r;
    qc_pyrandom_seed(&r, 13);
    for (int i = 0; i < 17; i++) qm_set_synthetic(&m, i / NLIN, i % NLIN, 8, 32, false, &r);
    qc_qweight_free(&m.q[4 * NLIN + 6]); /* 34 quantized: 17 of each */
    char cfg[640];
    cJSON *c = exported_config(&m, "gptq_mixed_tie", cfg, sizeof cfg);
    const cJSON *qc = cJSON_GetObjectItem(c, "quantization_config"), *dyn = cJSON_GetObjectItem(qc, "dynamic");
    CHECK(cJSON_GetObjectItem(qc, "bits") && cJSON_GetObjectItem(qc, "bits")->valueint == 8, "tie: the first's bits");
    /* the 17 4-bit linears as 10 entries (layers 3 and 4's q, k, v and 2, 3, 4's gate, up
     * as one each) */
    CHECK(cJSON_GetArraySize(dyn) == 11 && dyn->child && strcmp(dyn->child->string,
          "-:^model\\.layers\\.4\\.mlp\\.down_proj$") == 0, "10 overrides and one negative entry first");
    cJSON_Delete(c);
    qm_free(&m);
}

/* What the writer said through its log: the warnings and the other messages, concatenated. */
typedef struct said {
    char warn[2048], info[2048];
} said;

static void said_message(void *ctx, qc_log_level level, const char *text) {
    said *s = ctx;
    char *to = level == QC_LOG_WARN ? s->warn : s->info;
    size_t n = strlen(to);
    snprintf(to + n, sizeof s->warn - n, "%s\n", text);
}

/* m written as GPTQ (v1 or v2) into scratch folder `dir` with its log captured in s, and read
 * back (check_gptq_bytes, check_roundtrip); returns config.json's quantization_config's sym
 * (-1: absent), which quantize_config.json must state alike. */
static int export_said(qmodel *m, const char *dir, int format, said *s) {
    qc_err e;
    memset(s, 0, sizeof *s);
    qc_log log = { .message = said_message, .ctx = s };
    qc_gptq_export_opts o = { .checkpoint_format = format, .damp_percent = 0.01f, .true_sequential = true };
    qc_weight_source src = qm_source(m);
    char path_buf[512], cfg[640], qcfg[640];
    const char *path = scratch_into(path_buf, dir);
    qc_outdir d;
    CHECK_OK(qc_outdir_open(&d, path, true, &e), e);
    CHECK_OK(qc_gptq_export_into(&src, &d, &o, &log, &e), e);
    CHECK_OK(qc_outdir_commit(&d, &e), e);
    check_gptq_bytes(m, path, format);
    check_roundtrip(m, path, NULL);
    snprintf(cfg, sizeof cfg, "%s/config.json", path);
    snprintf(qcfg, sizeof qcfg, "%s/quantize_config.json", path);
    cJSON *c = json_file(cfg), *q = json_file(qcfg);
    const cJSON *a = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "quantization_config"), "sym"),
                *b = cJSON_GetObjectItem(q, "sym");
    int sym = cJSON_IsBool(a) ? cJSON_IsTrue(a) : -1;
    CHECK(cJSON_IsBool(b) && cJSON_IsTrue(b) == sym, "%s: quantize_config.json states the same sym", dir);
    cJSON_Delete(c);
    cJSON_Delete(q);
    return sym;
}

/* vLLM's Marlin rule: the w4_g32_sym vectors (4-bit, groups of 32, symmetric: Marlin's) with
 * layer 1's down_proj at 3 bits symmetric, or at 4 bits asymmetric, get a config stating sym
 * false (vLLM's plain GPTQ kernels for the file); the file still reads back to the same
 * weights, the symmetric linears' stored zero points being the midpoint (checked bytes:
 * midpoint − 1 in v1, which loaders read + 1). An override Marlin takes (8 bits symmetric) and
 * the uniform file keep sym true. A file with a dynamic section is warned about (transformers
 * and optimum ignore it); a uniform one is not. */
static void test_gptq_marlin_config(void) {
    static const struct { int bits; bool sym; int want_sym; bool warn; } cases[] = {
        { 3, true, 0, true }, { 4, false, 0, true }, { 8, true, 1, true }, { 0, true, 1, false },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        for (int format = 1; format <= 2; format++) {
            qmodel m = { 0 };
            if (!qm_load_vectors(&m, "w4_g32_sym", 32, true)) return qm_free(&m);
            qc_pyrandom r;
            qc_pyrandom_seed(&r, 21);
            if (cases[i].bits) qm_set_synthetic(&m, 1, 6, cases[i].bits, 32, cases[i].sym, &r);
            int off_mid = 0; /* zero points of symmetric linears that are not 2^(bits-1) */
            for (int k = 0; k < m.cfg.n_layers * NLIN; k++)
                for (size_t j = 0; m.q[k].sym && j < (size_t)m.q[k].rows * m.q[k].ngroups; j++)
                    off_mid += m.q[k].zeros[j] != (float)(1 << (m.q[k].bits - 1));
            char dir[64];
            snprintf(dir, sizeof dir, "gptq_marlin_%zu_v%d", i, format);
            said s;
            int sym = export_said(&m, dir, format, &s);
            CHECK(sym == cases[i].want_sym, "%s: config sym %d, want %d", dir, sym, cases[i].want_sym);
            CHECK(off_mid == 0, "%s: %d zero points of symmetric linears are not the midpoint", dir, off_mid);
            bool warned = strstr(s.warn, "transformers and optimum ignore it") != NULL;
            CHECK(warned == cases[i].warn, "%s: warning %s: \"%s\"", dir, cases[i].warn ? "expected" : "unexpected",
                  s.warn);
            CHECK((strstr(s.info, "Marlin") != NULL) == !cases[i].want_sym, "%s: the sym false is explained: \"%s\"",
                  dir, s.info);
            qm_free(&m);
        }
}

/* config.json of folder `good` with quantization_config.dynamic replaced by the JSON text
 * dyn (newly allocated). */
static char *config_with_dynamic(const char *good, const char *dyn) {
    char path[640];
    snprintf(path, sizeof path, "%s/config.json", good);
    cJSON *c = json_file(path), *d = cJSON_Parse(dyn);
    CHECK(d != NULL, "fixture dynamic %s parses", dyn);
    cJSON *qc = cJSON_GetObjectItem(c, "quantization_config");
    cJSON_DeleteItemFromObject(qc, "dynamic");
    cJSON_AddItemToObject(qc, "dynamic", d);
    char *text = cJSON_Print(c);
    cJSON_Delete(c);
    return text;
}

/* The reader's matching: GPTQModel's and vLLM's re.match (anchored at the start only), the
 * first matching entry deciding, negative entries tried first, keys without a prefix positive,
 * a positive entry's fields merged over the base. */
static void test_gptq_dynamic_matching(void) {
    qc_err e;
    char good_buf[512], d_buf[512];
    const char *good = scratch_into(good_buf, "gptq_mixed_v2");
    qmodel m = { 0 };
    if (!qc_path_exists(good) || !qm_mixed(&m)) return qm_free(&m);
    qc_checkpoint *ck = NULL;
    char *cfg = config_with_dynamic(good, "{\"+:.*down\": {\"bits\": 8, \"sym\": true},"
                                          " \"model\\\\.layers\\\\.1\\\\.self_attn\\\\.q\":"
                                          " {\"bits\": 3, \"group_size\": -1},"
                                          " \"-:.*\\\\.2\\\\.self_attn\\\\.v\": {}}");
    const char *d = scratch_into(d_buf, "dyn_prefixes");
    make_fixture(good, d, NULL, NULL, 0, cfg);
    check_roundtrip(&m, d, NULL);
    free(cfg);

    cfg = config_with_dynamic(good, "{\"+:.*down_proj\": {\"bits\": 8, \"sym\": true},"
                                    " \"+:.*\\\\.1\\\\.self_attn\\\\.q_proj\": {\"bits\": 3, \"group_size\": -1},"
                                    " \"-:model\\\\.layers\\\\.[0-4]\\\\.mlp\\\\.down_proj$\": {},"
                                    " \"-:.*\\\\.2\\\\.self_attn\\\\.v_proj\": {}}");
    d = scratch_into(d_buf, "dyn_negative_first");
    make_fixture(good, d, NULL, NULL, 0, cfg);
    CHECK_FAILS_AT(qc_checkpoint_open(&ck, d, &e), e, "model.safetensors",
                   "missing tensor 'model.layers.0.mlp.down_proj.weight' (quantization_config.dynamic "
                   "\"-:model\\.layers\\.[0-4]\\.mlp\\.down_proj$\" leaves it unquantized)");
    free(cfg);

    cfg = config_with_dynamic(good, "{\"-:.*\\\\.2\\\\.self_attn\\\\.v_proj$\": {}, \"+:.*down_proj$\": {\"bits\": 8, "
                                    "\"sym\": true}, \"+:layers\\\\.1\\\\.self_attn\\\\.q_proj$\": {\"bits\": 3, "
                                    "\"group_size\": -1}}");
    d = scratch_into(d_buf, "dyn_anchored_start"); /* the q_proj entry matches nothing: read as 4-bit */
    make_fixture(good, d, NULL, NULL, 0, cfg);
    CHECK_FAILS_AT(qc_checkpoint_open(&ck, d, &e), e, "model.safetensors",
                   "'model.layers.1.self_attn.q_proj.qweight': shape [6, 64]");
    free(cfg);
    CHECK(ck == NULL, "no checkpoint handed out on failure");
    qm_free(&m);
}

/* One malformed dynamic per failure mode: refused, naming config.json and the entry. */
static void test_gptq_dynamic_broken(void) {
    qc_err e;
    char good_buf[512], awq_buf[512], d_buf[512];
    const char *good = scratch_into(good_buf, "gptq_mixed_v1"), *awq = scratch_into(awq_buf, "awq_w4_g32");
    if (!qc_path_exists(good) || !qc_path_exists(awq)) return;
    static const struct {
        const char *dyn, *needle;
    } cases[] = {
        { "[]", "quantization_config.dynamic must be an object, not an array" },
        { "{\"-:x\": 1}", "quantization_config.dynamic \"-:x\" must be an object, not a number" },
        { "{\"+:^model\\\\.layers\\\\.0\\\\.mlp\\\\.down_proj$\": {\"bits\": 5}}",
          "quantization_config.dynamic \"+:^model\\.layers\\.0\\.mlp\\.down_proj$\": bits 5 (GPTQ: 2, 3, 4 or 8)" },
        { "{\"+:a\": {\"bits\": \"8\"}}", "\"+:a\": bits must be an integer, not a string" },
        { "{\"+:a\": {\"group_size\": 0}}", "\"+:a\": group_size 0" },
        { "{\"+:a\": {\"group_size\": 2.5}}", "\"+:a\": group_size 2.5" },
        { "{\"+:a\": {\"sym\": 1}}", "\"+:a\": sym must be true or false, not a number" },
        { "{\"+:a\": {\"damp_percent\": 0.1}}", "\"+:a\": unknown field \"damp_percent\"" },
        { "{\"+:model\\\\.layers\\\\.(\": {}}", "\"+:model\\.layers\\.(\": the regex does not compile" },
    };
    qc_checkpoint *ck = NULL;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *cfg = config_with_dynamic(good, cases[i].dyn), dir[32];
        snprintf(dir, sizeof dir, "dyn_bad%zu", i);
        const char *d = scratch_into(d_buf, dir);
        make_fixture(good, d, NULL, NULL, 0, cfg);
        CHECK_FAILS_AT(qc_checkpoint_open(&ck, d, &e), e, "config.json", cases[i].needle);
        free(cfg);
    }
    char *cfg = config_with_dynamic(awq, "{\"+:a\": {}}");
    const char *d = scratch_into(d_buf, "dyn_awq");
    make_fixture(awq, d, NULL, NULL, 0, cfg);
    CHECK_FAILS_AT(qc_checkpoint_open(&ck, d, &e), e, "config.json", "dynamic (per-module settings) is read for GPTQ");
    free(cfg);
    CHECK(ck == NULL, "no checkpoint handed out on failure");
}

int main(void) {
    qc_err e;
    CHECK_OK(qc_checkpoint_open(&stories, shared_path("models/stories260K/stories260K.bin"), &e), e);
    if (!stories) return check_summary();
    RUN(test_gptq_3bit_block);
    RUN(test_gptq_vectors_roundtrip);
    RUN(test_gptq_synthetic_bits);
    RUN(test_gptq_refusals);
    RUN(test_awq_roundtrip);
    RUN(test_awq_refusals);
    RUN(test_independent_pack_lm_head);
    RUN(test_sharded);
    RUN(test_broken_folders);
    RUN(test_gptq_mixed_roundtrip);
    RUN(test_gptq_fused_groups);
    RUN(test_gptq_mixed_tie);
    RUN(test_gptq_marlin_config);
    RUN(test_gptq_dynamic_matching);
    RUN(test_gptq_dynamic_broken);
    qc_checkpoint_close(stories);
    return check_summary();
}
