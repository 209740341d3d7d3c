/* llama2c_q8.c — llama2.c's "ak42" checkpoints: the reader for export.py's version 1 (fp32)
 * and version 2 (Q8_0 int8, the file runq.c loads), and the version 2 writer. The reader
 * maps nothing itself (llama2c_checkpoint.c has mapped the file and dispatched here on the magic
 * number); the writer goes through an atomic output file, one tensor at a time.
 *
 * Layout (little endian; L = n_layers, hd = dim / n_heads, kv = n_kv_heads; export.py's
 * version1_export / version2_export, runq.c's read_checkpoint / memory_map_weights):
 *     0  u32 magic 0x616b3432 ("ak42" as a number; the bytes on disk are "24ka")
 *     4  i32 version: 1 or 2
 *     8  i32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (> 0), max_seq_len
 *    36  u8  shared_classifier: 1 = the classifier is the token embedding, 0 = stored last
 *    37  i32 group_size (version 2 only; unaligned, as struct.pack writes it)
 *   ...  zeros up to byte 256
 *   256  fp32 rms_att (L, dim), rms_ffn (L, dim), rms_final (dim)
 *   then the matrices, each per-layer one for all layers back to back:
 *        token_embedding (vocab, dim), wq (L, n_heads*hd, dim), wk (L, kv*hd, dim),
 *        wv (L, kv*hd, dim), wo (L, dim, n_heads*hd), w1 (L, hidden_dim, dim) gate,
 *        w2 (L, dim, hidden_dim) down, w3 (L, hidden_dim, dim) up,
 *        wcls (vocab, dim) only when shared_classifier is 0
 *     version 1: each in fp32
 *     version 2: each as Q8_0 — all its int8 codes q (numel), then its fp32 scales s
 *                (numel / group_size); element i (row-major) is q[i] · s[i / group_size]
 *   and nothing after. No freq_cis tables (unlike the legacy format); Q/K rows interleaved.
 *
 * Groups are runs of group_size consecutive elements of the flattened tensor. export.py only
 * asserts that group_size divides dim (hence every tensor's size), so a group may straddle
 * two rows of w2 when it does not divide hidden_dim — export.py writes such files (e.g.
 * stories260K, hidden_dim 172, at its default group size 64) but runq.c's matmul, which
 * walks each row in whole groups, computes garbage with them. The reader accepts them and
 * decodes every element by its flat index (the values export.py meant); the writer refuses
 * a group size that does not divide both dim and hidden_dim.
 *
 * Q8_0 writer: a matrix whose weight source offers an 8-bit symmetric qweight (zero point
 * 128) in groups of exactly group_size consecutive columns is stored as the solver made it
 * — int8 code − 128 and its fp32 scale — so the file holds exactly the weights the solver
 * compensated for (q · s = scale · (code − 128), the same float product); a linear's qweight
 * that does not fit is refused, the token embedding's (e.g. 4-bit) is not stored as it is but
 * re-quantized from its read() values. Every other matrix (an unquantized embedding, the
 * classifier unless its qweight fits, every matrix of an unquantized source) goes through
 * q80_quantize, export.py's quantize_q80: s = max|w| / 127 in fp32, q = round-half-even(w / s)
 * (torch.round, a real division). runq.c hard-codes rope_theta 10000 and norm_eps 1e-5 and
 * derives head_dim = dim / n_heads; models that differ are refused, as the legacy writer does. */
#include "io/internal.h"
#include "io/llama2c.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define AK42_FLAG_OFFSET 36   /* shared_classifier */
#define AK42_GS_OFFSET 37     /* group_size, version 2 */
#define Q8_MAX 127.0f         /* export.py's range [-127, 127] */
#define PAR_MIN_WORK (1 << 15) /* below this many elements a decode runs on one thread */

/* The matrices in file order (export.py's `weights` list, before the optional classifier). */
static const qc_weight mat_order[] = { QC_W_EMBED, QC_W_Q,    QC_W_K,    QC_W_V,
                                       QC_W_O,     QC_W_GATE, QC_W_DOWN, QC_W_UP };
#define NMAT ((int)(sizeof mat_order / sizeof *mat_order))

/* llama2.c's names for messages. */
static const char *l2c_name(qc_weight w) {
    switch (w) {
    case QC_W_EMBED: return "token_embedding";
    case QC_W_CLASSIFIER: return "wcls";
    case QC_W_Q: return "wq";
    case QC_W_K: return "wk";
    case QC_W_V: return "wv";
    case QC_W_O: return "wo";
    case QC_W_GATE: return "w1 (gate)";
    case QC_W_DOWN: return "w2 (down)";
    case QC_W_UP: return "w3 (up)";
    default: return qc_weight_short_name(w);
    }
}

/* "wq of layer 3" / "token_embedding", into buf. */
static const char *tensor_name(qc_weight w, int layer, char *buf, size_t size) {
    if (qc_weight_is_global(w)) snprintf(buf, size, "%s", l2c_name(w));
    else snprintf(buf, size, "%s of layer %d", l2c_name(w), layer);
    return buf;
}

/* ---- Q8_0 decoding ------------------------------------------------------------------------------ */

/* What a version 2 matrix's loc->aux points to; loc->data is its int8 codes. */
typedef struct q8_tensor {
    const uint8_t *scales; /* (numel / gs) fp32, little endian, any alignment; borrowed */
    int gs;
} q8_tensor;

static inline float i8(uint8_t b) { return (float)((int)b - ((b & 0x80) << 1)); }

/* Rows [row0, row0+nrows) of a cols-wide Q8_0 matrix: element k (flat) = q[k] · s[k / gs],
 * group by group, so a group straddling two rows is handled like any other. */
static qc_status q8_decode(const qc_checkpoint *ck, const qc_ck_loc *loc, int64_t row0, int nrows, int cols,
                           float *out, qc_err *e) {
    (void)ck, (void)e;
    const q8_tensor *t = loc->aux;
    const uint8_t *q = loc->data;
    size_t gs = (size_t)t->gs;
#pragma omp parallel for schedule(static) if ((int64_t)nrows * cols > PAR_MIN_WORK)
    for (int r = 0; r < nrows; r++) {
        size_t start = (size_t)(row0 + r) * (size_t)cols, end = start + (size_t)cols;
        float *o = out + (size_t)r * cols; /* o[k - start] is flat element k */
        for (size_t k = start; k < end;) {
            size_t g = k / gs, gend = (g + 1) * gs < end ? (g + 1) * gs : end;
            float s = qc_lef32(t->scales + 4 * g);
            for (; k < gend; k++) o[k - start] = i8(q[k]) * s;
        }
    }
    return QC_OK;
}

/* ---- reading ------------------------------------------------------------------------------------ */

/* Lays out a version 1 or 2 file: its total size into *size (false on overflow) and, when
 * locs is not NULL, every weight's place relative to base (version 2 matrices get decode,
 * aux from `aux` (one per matrix, in file order) and qtype). */
static bool ak42_layout(const qc_config *c, int version, int gs, const uint8_t *base, qc_ck_loc *locs,
                        q8_tensor *aux, const char *qtype, size_t *size) {
    size_t off = QC_AK42_HEADER_BYTES, dim = (size_t)c->dim, bytes;
    static const qc_weight norms[3] = { QC_W_ATTN_NORM, QC_W_FFN_NORM, QC_W_FINAL_NORM };
    for (int i = 0; i < 3; i++) {
        int nl = qc_weight_is_global(norms[i]) ? 1 : c->n_layers;
        for (int l = 0; l < nl; l++) {
            if (locs) locs[qc_ck_slot(norms[i], l)] = (qc_ck_loc){ .data = base + off, .dtype = QC_DT_F32 };
            if (!qc_add_size(off, dim * sizeof(float), &off)) return false;
        }
    }
    int na = 0;
    for (int i = 0; i <= NMAT; i++) {
        qc_weight w = i < NMAT ? mat_order[i] : QC_W_CLASSIFIER;
        if (w == QC_W_CLASSIFIER && c->tied_classifier) break;
        int rows, cols;
        qc_weight_shape(c, w, &rows, &cols);
        size_t n = (size_t)rows * (size_t)cols; /* both at most 2^22: no overflow */
        if (version == 1) {
            if (!qc_mul_size(n, sizeof(float), &bytes)) return false;
        } else {
            if (!qc_add_size(n, n / (size_t)gs * sizeof(float), &bytes)) return false;
        }
        int nl = qc_weight_is_global(w) ? 1 : c->n_layers;
        for (int l = 0; l < nl; l++) {
            if (locs && version == 1) {
                locs[qc_ck_slot(w, l)] = (qc_ck_loc){ .data = base + off, .dtype = QC_DT_F32 };
            } else if (locs) {
                aux[na] = (q8_tensor){ .scales = base + off + n, .gs = gs };
                locs[qc_ck_slot(w, l)] = (qc_ck_loc){ .data = base + off, .dtype = QC_DT_I8, .decode = q8_decode,
                                                      .aux = &aux[na], .qtype = qtype };
            }
            na++;
            if (!qc_add_size(off, bytes, &off)) return false;
        }
    }
    if (locs && c->tied_classifier) locs[QC_W_CLASSIFIER] = locs[QC_W_EMBED];
    *size = off;
    return true;
}

qc_status qc_llama2c_ak42_open(qc_checkpoint *ck, const char *path, qc_err *e) {
    const qc_map *m = &ck->bin;
    const uint8_t *p = m->data;
    if (m->size < 8)
        return qc_fail(e, QC_ERR_FORMAT, "%s: truncated: %zu bytes, the llama2.c \"ak42\" header alone needs %d",
                       path, m->size, QC_AK42_HEADER_BYTES);
    int32_t version = (int32_t)qc_le32(p + 4);
    if (version != 1 && version != 2)
        return qc_fail(e, QC_ERR_UNSUPPORTED,
                       "%s: llama2.c \"ak42\" file of version %d; versions 1 (fp32) and 2 (Q8_0 int8) are supported",
                       path, (int)version);
    if (m->size < QC_AK42_HEADER_BYTES)
        return qc_fail(e, QC_ERR_FORMAT, "%s: truncated: %zu bytes, the llama2.c version %d header alone needs %d",
                       path, m->size, (int)version, QC_AK42_HEADER_BYTES);
    int32_t h[7];
    for (int i = 0; i < 7; i++) h[i] = (int32_t)qc_le32(p + 8 + 4 * i);
    uint8_t flag = p[AK42_FLAG_OFFSET];
    if (flag > 1)
        return qc_fail(e, QC_ERR_FORMAT, "%s: shared_classifier flag %u (byte %d) is neither 0 nor 1", path,
                       (unsigned)flag, AK42_FLAG_OFFSET);
    qc_status st = qc_llama2c_config(path, h, flag == 1, &ck->cfg, e);
    if (st) return st;
    const qc_config *c = &ck->cfg;
    int gs = 0;
    if (version == 2) {
        int32_t g = (int32_t)qc_le32(p + AK42_GS_OFFSET);
        if (g <= 0)
            return qc_fail(e, QC_ERR_FORMAT, "%s: group_size %d (byte %d) must be positive", path, (int)g,
                           AK42_GS_OFFSET);
        if (c->dim % g != 0) /* export.py's own condition; it makes every tensor a whole number of groups */
            return qc_fail(e, QC_ERR_FORMAT, "%s: group_size %d does not divide dim %d: the tensors are not whole groups",
                           path, (int)g, c->dim);
        gs = g;
    }
    size_t want;
    if (!ak42_layout(c, version, gs ? gs : 1, NULL, NULL, NULL, NULL, &want))
        return qc_fail(e, QC_ERR_FORMAT, "%s: the sizes in the header overflow", path);
    if (m->size < want)
        return qc_fail(e, QC_ERR_FORMAT, "%s: truncated: the version %d header implies %zu bytes, the file has %zu",
                       path, (int)version, want, m->size);
    if (m->size > want)
        return qc_fail(e, QC_ERR_FORMAT,
                       "%s: %zu extra bytes after the weights: the version %d header implies %zu bytes, the file has %zu",
                       path, m->size - want, (int)version, want, m->size);
    if ((st = qc_ck_alloc_locs(ck, e))) return st;
    q8_tensor *aux = NULL;
    char *qtype = NULL;
    if (version == 2) {
        size_t nmat = 1 + (size_t)(NMAT - 1) * (size_t)c->n_layers + !c->tied_classifier;
        if (!(aux = qc_calloc(nmat, sizeof *aux, e, path))) return QC_ERR_NOMEM;
        if ((st = qc_ck_own(ck, aux, e))) return st;
        if (!(qtype = qc_strdupf("q8_0-g%d", gs))) return qc_fail(e, QC_ERR_NOMEM, "%s: out of memory", path);
        if ((st = qc_ck_own(ck, qtype, e))) return st;
    }
    ak42_layout(c, version, gs ? gs : 1, p, ck->locs, aux, qtype, &want);
    return QC_OK;
}

/* ---- writing ------------------------------------------------------------------------------------ */

qc_status qc_llama2c_q8_check(const qc_config *c, const char *path, int gs, qc_err *e) {
    qc_status st = qc_llama2c_check_config(c, path, "runq.c", e);
    if (st) return st;
    if (gs <= 0) return qc_fail(e, QC_ERR_ARG, "%s: group size %d: it must be positive", path, gs);
    if (c->dim % gs != 0 || c->hidden_dim % gs != 0) {
        int a = c->dim, b = c->hidden_dim; /* the largest group size that would do: gcd */
        while (b) { int t = a % b; a = b; b = t; }
        return qc_fail(e, QC_ERR_ARG,
                       "%s: group size %d does not divide %s %d: runq.c's matmul and activation quantization work in "
                       "whole groups of each row (rows of %d and %d values here); group sizes that divide both are "
                       "the divisors of %d",
                       path, gs, c->dim % gs ? "dim" : "hidden_dim", c->dim % gs ? c->dim : c->hidden_dim, c->dim,
                       c->hidden_dim, a);
    }
    for (int i = 1; i < NMAT; i++) { /* runq.c's sizes are C ints */
        int rows, cols;
        qc_weight_shape(c, mat_order[i], &rows, &cols);
        if ((int64_t)rows * cols > INT32_MAX)
            return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: %s has %lld values; runq.c indexes tensors with 32-bit ints",
                           path, l2c_name(mat_order[i]), (long long)rows * cols);
    }
    if ((int64_t)c->vocab_size * c->dim > INT32_MAX)
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: the embedding has %lld values; runq.c indexes tensors with 32-bit ints",
                       path, (long long)c->vocab_size * c->dim);
    return QC_OK;
}

/* A quantized weight the file can hold as it is: the weight's shape, 8 bits, symmetric with
 * zero point 128 everywhere, groups of exactly gs consecutive columns, finite scales. */
static qc_status check_qweight(const qc_qweight *q, int rows, int cols, int gs, const char *path, const char *name,
                               qc_err *e) {
    if (q->rows != rows || q->cols != cols)
        return qc_fail(e, QC_ERR_ARG, "%s: %s: the quantized weight is (%d, %d), the model says (%d, %d)", path, name,
                       q->rows, q->cols, rows, cols);
    if (q->bits != 8)
        return qc_fail(e, QC_ERR_UNSUPPORTED,
                       "%s: %s is quantized to %d bits; llama2.c version 2 (Q8_0) stores 8-bit codes only", path, name,
                       q->bits);
    if (!q->sym || q->mins)
        return qc_fail(e, QC_ERR_UNSUPPORTED,
                       "%s: %s is quantized asymmetrically (zero points%s); Q8_0 is symmetric", path, name,
                       q->mins ? ", mins" : "");
    if ((q->groupsize > 0 ? q->groupsize : cols) != gs || q->ngroups != cols / gs)
        return qc_fail(e, QC_ERR_UNSUPPORTED,
                       "%s: %s is quantized in groups of %d columns (%d per row); the file's group_size is %d", path,
                       name, q->groupsize > 0 ? q->groupsize : cols, q->ngroups, gs);
    for (int c = 0; c < cols; c++)
        if (q->g_idx[c] != c / gs)
            return qc_fail(e, QC_ERR_UNSUPPORTED,
                           "%s: %s: column %d is in group %d (act-order); Q8_0 groups are runs of %d consecutive columns",
                           path, name, c, (int)q->g_idx[c], gs);
    for (size_t i = 0; i < (size_t)rows * (size_t)q->ngroups; i++) {
        if (q->zeros[i] != 128.0f)
            return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: %s: row %zu, group %zu has zero point %g; Q8_0 needs 128", path,
                           name, i / (size_t)q->ngroups, i % (size_t)q->ngroups, (double)q->zeros[i]);
        if (!isfinite(q->scales[i]))
            return qc_fail(e, QC_ERR_NUMERIC, "%s: %s: row %zu, group %zu has scale %g", path, name,
                           i / (size_t)q->ngroups, i % (size_t)q->ngroups, (double)q->scales[i]);
    }
    return QC_OK;
}

/* export.py's quantize_q80 on n values (n a multiple of gs): per group, s = max|w| / 127 in
 * fp32 and q = round-half-even(w / s). A group whose s is 0 (all zeros, or so tiny that
 * max|w| / 127 underflows) gets q = 0 (export.py divides by zero there; its int8 cast of
 * NaN gives 0 on the usual platforms). q is clamped to ±127, which only ever matters when s
 * is subnormal. Returns the largest |q·s − w| (export.py's max error). */
static float q80_quantize(const float *w, size_t n, int gs, uint8_t *q, float *s) {
    float maxerr = 0;
    for (size_t g = 0; g < n / (size_t)gs; g++) {
        const float *x = w + g * (size_t)gs;
        float wmax = 0;
        for (int i = 0; i < gs; i++) wmax = fmaxf(wmax, fabsf(x[i]));
        float scale = wmax / Q8_MAX;
        s[g] = scale;
        for (int i = 0; i < gs; i++) {
            float v = scale > 0 ? nearbyintf(x[i] / scale) : 0.0f;
            v = fminf(fmaxf(v, -Q8_MAX), Q8_MAX);
            q[g * (size_t)gs + i] = (uint8_t)(int8_t)(int)v;
            maxerr = fmaxf(maxerr, fabsf(v * scale - x[i]));
        }
    }
    return maxerr;
}

/* Writes n fp32 values little endian through bytes (n * 4 bytes of scratch). */
static qc_status write_f32(qc_outfile *o, const float *x, size_t n, uint8_t *bytes, qc_err *e) {
    qc_convert_from_f32(QC_DT_F32, x, n, bytes);
    return qc_out_write(o, bytes, n * sizeof(float), e);
}

/* The qweight stored as it is for matrix (w, layer), or NULL for export.py's quantizer of
 * read(): a linear's (checked to fit before anything is written); the embedding's only when it
 * fits, else its dequantized values are quantized like those of any unquantized matrix. */
static const qc_qweight *stored_qweight(const qc_weight_source *src, qc_weight w, int layer, int gs) {
    const qc_qweight *qw = src->qweight ? src->qweight(src->ctx, w, layer) : NULL;
    int rows, cols;
    qc_weight_shape(src->cfg, w, &rows, &cols);
    if (qw && w == QC_W_EMBED && check_qweight(qw, rows, cols, gs, "", "", NULL) != QC_OK) return NULL;
    return qw;
}

/* Scratch for one tensor: its fp32 values, its codes, its scales, and bytes to write from. */
typedef struct q8_scratch {
    float *w, *s;
    uint8_t *q, *bytes;
} q8_scratch;

/* One matrix as Q8_0: its codes, then its scales. *from_solver counts qweights stored as
 * they are; *maxerr grows with the reference quantizer's error. */
static qc_status write_matrix(const qc_weight_source *src, qc_weight w, int layer, int gs, qc_outfile *o,
                              q8_scratch *b, int *from_solver, float *maxerr, const char *path, qc_err *e) {
    int rows, cols;
    qc_weight_shape(src->cfg, w, &rows, &cols);
    size_t n = (size_t)rows * (size_t)cols, ng = n / (size_t)gs;
    char name[64];
    const qc_qweight *qw = stored_qweight(src, w, layer, gs);
    if (qw) { /* checked before the file was opened */
        for (size_t i = 0; i < n; i++) b->q[i] = (uint8_t)(qw->codes[i] ^ 0x80); /* code − 128, two's complement */
        memcpy(b->s, qw->scales, ng * sizeof(float));                            /* (rows, cols/gs) = flat groups */
        ++*from_solver;
    } else {
        qc_status st = src->read(src->ctx, w, layer, b->w, e);
        if (st) return qc_fail_prefix(e, st, "%s: reading %s", path, tensor_name(w, layer, name, sizeof name));
        for (size_t i = 0; i < n; i++)
            if (!isfinite(b->w[i]))
                return qc_fail(e, QC_ERR_NUMERIC, "%s: %s holds %g at row %zu, column %zu", path,
                               tensor_name(w, layer, name, sizeof name), (double)b->w[i], i / (size_t)cols,
                               i % (size_t)cols);
        *maxerr = fmaxf(*maxerr, q80_quantize(b->w, n, gs, b->q, b->s));
    }
    qc_status st = qc_out_write(o, b->q, n, e);
    return st ? st : write_f32(o, b->s, ng, b->bytes, e);
}

/* The 256-byte version 2 header. */
static void header_v2(const qc_config *c, int gs, uint8_t hb[QC_AK42_HEADER_BYTES]) {
    int32_t v[9] = { (int32_t)QC_AK42_MAGIC, 2, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                     c->vocab_size, c->seq_len };
    memset(hb, 0, QC_AK42_HEADER_BYTES);
    for (int i = 0; i < 9; i++)
        for (int k = 0; k < 4; k++) hb[4 * i + k] = (uint8_t)((uint32_t)v[i] >> 8 * k);
    hb[AK42_FLAG_OFFSET] = c->tied_classifier ? 1 : 0;
    for (int k = 0; k < 4; k++) hb[AK42_GS_OFFSET + k] = (uint8_t)((uint32_t)gs >> 8 * k);
}

qc_status qc_llama2c_q8_export(const qc_weight_source *src, const char *path, int groupsize, const qc_log *log,
                               qc_err *e) {
    const qc_config *c = src->cfg;
    qc_status st = qc_llama2c_q8_check(c, path, groupsize, e);
    if (st) return st;
    /* every stored qweight is checked before anything is written */
    int total = 0, nl = c->n_layers; /* matrices, for progress */
    size_t most = (size_t)c->dim;
    char name[64];
    for (int i = 0; i <= NMAT; i++) {
        qc_weight w = i < NMAT ? mat_order[i] : QC_W_CLASSIFIER;
        if (w == QC_W_CLASSIFIER && c->tied_classifier) break;
        int rows, cols;
        qc_weight_shape(c, w, &rows, &cols);
        if ((size_t)rows * (size_t)cols > most) most = (size_t)rows * (size_t)cols;
        for (int l = 0; l < (qc_weight_is_global(w) ? 1 : nl); l++) {
            const qc_qweight *qw = stored_qweight(src, w, l, groupsize);
            if (qw && (st = check_qweight(qw, rows, cols, groupsize, path, tensor_name(w, l, name, sizeof name), e)))
                return st;
            total++;
        }
    }
    q8_scratch b = { 0 };
    b.w = qc_malloc(most, sizeof(float), e, "export buffer");
    b.s = b.w ? qc_malloc(most / (size_t)groupsize, sizeof(float), e, "export buffer") : NULL;
    b.q = b.s ? qc_malloc(most, 1, e, "export buffer") : NULL;
    b.bytes = b.q ? qc_malloc(most, sizeof(float), e, "export buffer") : NULL;
    qc_outfile o = { 0 };
    if (!b.bytes) st = QC_ERR_NOMEM;
    if (!st) st = qc_out_open(&o, path, e);
    if (!st) {
        uint8_t hb[QC_AK42_HEADER_BYTES];
        header_v2(c, groupsize, hb);
        st = qc_out_write(&o, hb, sizeof hb, e);
    }
    static const qc_weight norms[3] = { QC_W_ATTN_NORM, QC_W_FFN_NORM, QC_W_FINAL_NORM };
    for (int i = 0; i < 3 && !st; i++)
        for (int l = 0; l < (qc_weight_is_global(norms[i]) ? 1 : nl) && !st; l++) {
            if ((st = src->read(src->ctx, norms[i], l, b.w, e)))
                st = qc_fail_prefix(e, st, "%s: reading %s", path, tensor_name(norms[i], l, name, sizeof name));
            else
                st = write_f32(&o, b.w, (size_t)c->dim, b.bytes, e);
        }
    int done = 0, from_solver = 0;
    float maxerr = 0;
    for (int i = 0; i <= NMAT && !st; i++) {
        qc_weight w = i < NMAT ? mat_order[i] : QC_W_CLASSIFIER;
        if (w == QC_W_CLASSIFIER && c->tied_classifier) break;
        for (int l = 0; l < (qc_weight_is_global(w) ? 1 : nl) && !st; l++) {
            st = write_matrix(src, w, l, groupsize, &o, &b, &from_solver, &maxerr, path, e);
            qc_progress(log, "export", ++done, total, l2c_name(w));
        }
    }
    if (!st) st = qc_out_commit(&o, e);
    else qc_out_abort(&o);
    if (!st)
        qc_logf(log, QC_LOG_DEBUG,
                "wrote %s (llama2.c version 2, Q8_0 groups of %d): %d of %d matrices from the solver's 8-bit codes, "
                "the rest by export.py's quantizer (largest group error %g)",
                path, groupsize, from_solver, total, (double)maxerr);
    free(b.w), free(b.s), free(b.q), free(b.bytes);
    return st;
}
