/* checkpoint.c — the format-independent half of qc_checkpoint: choosing the reader for a
 * path, and reading weights. Each format's open function (llama2c_checkpoint.c, hf_checkpoint.c) validates its
 * file(s) and fills a table saying where every weight's bytes are (qc_ck_loc: pointer into
 * a mapping, dtype, whether Q/K rows are in HF order); from then on reading is the same for
 * every format: convert the rows asked for to fp32, taking each from its permuted position
 * when the file holds HF rows. Only the rows asked for are touched. Every value read is
 * checked to be finite as it is converted, so nothing downstream ever sees a NaN or an Inf
 * from a file; qc_checkpoint_check_finite reads every weight once, so that a model is
 * refused when it is opened rather than when a run reaches the bad tensor. */
#include "io/internal.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

qc_status qc_checkpoint_open(qc_checkpoint **out, const char *path, qc_err *e) {
    *out = NULL;
    qc_checkpoint *ck = qc_calloc(1, sizeof *ck, e, path);
    if (!ck) return QC_ERR_NOMEM;
    if (!(ck->path = qc_strdup(path, e))) {
        free(ck);
        return QC_ERR_NOMEM;
    }
    qc_status st;
    char *config = qc_path_join(path, "config.json"), *bin = qc_path_join(path, "model.bin");
    char *gguf = qc_path_join(path, "model.gguf");
    bool dir = qc_path_is_dir(path);
    if (!config || !bin || !gguf)
        st = qc_fail(e, QC_ERR_NOMEM, "out of memory");
    else if (dir && !qc_path_exists(config) && qc_path_exists(bin))
        st = qc_llama2c_checkpoint_open(ck, bin, e); /* folders qcalib writes: model.bin or model.gguf */
    else if (dir && !qc_path_exists(config) && qc_path_exists(gguf))
        st = qc_gguf_checkpoint_open(ck, gguf, e);
    else if (qc_str_ends_with(path, ".gguf"))
        st = qc_gguf_checkpoint_open(ck, path, e);
    else if (qc_path_is_dir(path) || qc_str_ends_with(path, ".safetensors"))
        st = qc_hf_checkpoint_open(ck, path, e);
    else
        st = qc_llama2c_checkpoint_open(ck, path, e);
    free(config);
    free(bin);
    free(gguf);
    if (st) {
        qc_checkpoint_close(ck);
        return st;
    }
    *out = ck;
    return QC_OK;
}

void qc_checkpoint_close(qc_checkpoint *ck) {
    if (!ck) return;
    for (int i = 0; i < ck->nshards; i++) qc_safetensors_close(&ck->shards[i]);
    free(ck->shards);
    qc_map_close(&ck->bin);
    free(ck->locs);
    for (int i = 0; i < ck->nfiles; i++) free(ck->files[i].path);
    free(ck->files);
    for (int i = 0; i < ck->nowned; i++) free(ck->owned[i]);
    free(ck->owned);
    free(ck->path);
    free(ck);
}

qc_status qc_ck_add_file(qc_checkpoint *ck, const char *path, bool whole, uint64_t hash, qc_err *e) {
    struct stat sb;
    if (stat(path, &sb) != 0) return qc_fail(e, QC_ERR_IO, "%s: %s", path, strerror(errno));
    qc_ck_file *grown = realloc(ck->files, (size_t)(ck->nfiles + 1) * sizeof *grown);
    if (!grown) return qc_fail(e, QC_ERR_NOMEM, "%s: out of memory", path);
    ck->files = grown;
    char *real = realpath(path, NULL);
    if (!real) return qc_fail(e, QC_ERR_IO, "%s: %s", path, strerror(errno));
    ck->files[ck->nfiles++] = (qc_ck_file){ real, (uint64_t)sb.st_size, whole, hash };
    return QC_OK;
}

int qc_checkpoint_nfiles(const qc_checkpoint *ck) { return ck->nfiles; }

const qc_ck_file *qc_checkpoint_file(const qc_checkpoint *ck, int i) {
    QC_ASSERT(i >= 0 && i < ck->nfiles);
    return &ck->files[i];
}

qc_status qc_ck_alloc_locs(qc_checkpoint *ck, qc_err *e) {
    size_t n = QC_CK_NGLOBAL + (size_t)ck->cfg.n_layers * QC_CK_NLAYER;
    ck->locs = qc_calloc(n, sizeof *ck->locs, e, ck->path);
    return ck->locs ? QC_OK : QC_ERR_NOMEM;
}

const qc_config *qc_checkpoint_config(const qc_checkpoint *ck) { return &ck->cfg; }
const char *qc_checkpoint_format(const qc_checkpoint *ck) { return ck->format; }
const char *qc_checkpoint_path(const qc_checkpoint *ck) { return ck->path; }

static qc_status check_weight(const qc_checkpoint *ck, qc_weight w, int layer, qc_err *e) {
    if ((unsigned)w >= QC_W_COUNT)
        return qc_fail(e, QC_ERR_ARG, "%s: weight %d does not exist", ck->path, (int)w);
    if (!qc_weight_is_global(w) && (layer < 0 || layer >= ck->cfg.n_layers))
        return qc_fail(e, QC_ERR_ARG, "%s: %s weight of layer %d asked for; the model has %d layers",
                       ck->path, qc_weight_short_name(w), layer, ck->cfg.n_layers);
    if (!qc_weight_present(&ck->cfg, w))
        return qc_fail(e, QC_ERR_ARG, "%s: %s asked for; the model has no such weight", ck->path, qc_weight_short_name(w));
    return QC_OK;
}

qc_dtype qc_checkpoint_dtype(const qc_checkpoint *ck, qc_weight w, int layer) {
    QC_ASSERT(check_weight(ck, w, layer, NULL) == QC_OK);
    return ck->locs[qc_ck_slot(w, layer)].dtype;
}

qc_status qc_ck_own(qc_checkpoint *ck, void *p, qc_err *e) {
    void **grown = realloc(ck->owned, (size_t)(ck->nowned + 1) * sizeof *grown);
    if (!grown) {
        free(p);
        return qc_fail(e, QC_ERR_NOMEM, "%s: out of memory", ck->path);
    }
    ck->owned = grown;
    ck->owned[ck->nowned++] = p;
    return QC_OK;
}

/* The row of the file that holds row r (qcalib's interleaved order) of a weight at loc. */
static int64_t file_row(const qc_checkpoint *ck, const qc_ck_loc *loc, int64_t r) {
    if (!loc->hf_rope_heads) return r;
    int64_t hd = ck->cfg.head_dim, h = r / hd, k = r % hd; /* interleaved row 2i+j of a head is HF row j*half + i */
    return h * hd + (k % 2) * (hd / 2) + k / 2;
}

/* Rows [row0, row0+nrows) of weight (w, layer) as read into out: a NaN or an Inf is an
 * error naming the file, the tensor and its position in the file (row and column; the
 * element for a vector). */
static qc_status check_finite(const qc_checkpoint *ck, const qc_ck_loc *loc, qc_weight w, int layer, int64_t row0,
                              int nrows, int cols, const float *out, qc_err *e) {
    size_t n = (size_t)nrows * (size_t)cols;
    for (size_t i = 0; i < n; i++) {
        if (isfinite(out[i])) continue;
        char name[128];
        qc_weight_hf_name(w, layer, name, sizeof name);
        int64_t r = row0 + (int64_t)(i / (size_t)cols);
        if (qc_weight_is_vector(w))
            return qc_fail(e, QC_ERR_NUMERIC, "%s: weight %s has a non-finite value (%g) at element %lld", ck->path,
                           name, (double)out[i], (long long)r);
        return qc_fail(e, QC_ERR_NUMERIC, "%s: weight %s has a non-finite value (%g) at row %lld, column %zu",
                       ck->path, name, (double)out[i], (long long)file_row(ck, loc, r), i % (size_t)cols);
    }
    return QC_OK;
}

/* The file's width of weight w and its row count in the file (both smaller than the
 * model's when the FFN width was padded). */
static void file_shape(const qc_checkpoint *ck, qc_weight w, int *fcols, int64_t *frows) {
    int rows, cols;
    qc_weight_shape(&ck->cfg, w, &rows, &cols);
    *fcols = ck->ffn_file && w == QC_W_DOWN ? ck->ffn_file : cols;
    *frows = ck->ffn_file && (w == QC_W_GATE || w == QC_W_UP) ? ck->ffn_file : rows;
}

/* The mapped rows [row0, row1) of an undecoded weight need not stay resident (advice). */
static void release_rows(const qc_checkpoint *ck, const qc_ck_loc *loc, qc_weight w, int64_t row0, int64_t row1) {
    int fcols;
    int64_t frows;
    file_shape(ck, w, &fcols, &frows);
    if (row1 > frows) row1 = frows;
    if (loc->decode || row0 >= row1) return;
    size_t row_bytes = (size_t)fcols * qc_dtype_size(loc->dtype);
    qc_map_release(loc->data + (size_t)row0 * row_bytes, (size_t)(row1 - row0) * row_bytes);
}

/* Rows [row0, row0+nrows) of the weight at loc, converted to fp32: each row from its file
 * position (HF Q/K rows are un-permuted), decoded when quantized, and zero-padded when the
 * FFN width was padded (gate/up rows past the file's width, down columns past it). With
 * release, the mapped rows are let go after (a weight is read once per load). */
static qc_status read_converted(const qc_checkpoint *ck, const qc_ck_loc *loc, qc_weight w, int64_t row0,
                                int nrows, float *out, bool release, qc_err *e) {
    int rows, cols, fcols;
    int64_t frows;
    qc_weight_shape(&ck->cfg, w, &rows, &cols);
    file_shape(ck, w, &fcols, &frows);
    size_t row_bytes = (size_t)fcols * qc_dtype_size(loc->dtype);
    if (loc->decode && !loc->hf_rope_heads && fcols == cols && row0 + nrows <= frows)
        return loc->decode(ck, loc, row0, nrows, cols, out, e); /* all at once */
    for (int r = 0; r < nrows; r++) {
        int64_t src = row0 + r;
        float *o = out + (size_t)r * cols;
        if (src >= frows) { /* a padding row */
            memset(o, 0, (size_t)cols * sizeof(float));
            continue;
        }
        src = file_row(ck, loc, src);
        if (loc->decode) {
            qc_status st = loc->decode(ck, loc, src, 1, fcols, o, e);
            if (st) return st;
        } else {
            qc_convert_to_f32(loc->dtype, loc->data + (size_t)src * row_bytes, (size_t)fcols, o);
        }
        memset(o + fcols, 0, (size_t)(cols - fcols) * sizeof(float));
    }
    if (release) release_rows(ck, loc, w, row0, row0 + nrows);
    return QC_OK;
}

/* Rows [row0, row0+nrows) of weight (w, layer) at loc, converted to fp32 and checked finite:
 * each row from its file position (HF Q/K rows are un-permuted), decoded when quantized, and
 * zero-padded when the FFN width was padded (gate/up rows past the file's width, down columns
 * past it). */
static qc_status read_rows(const qc_checkpoint *ck, const qc_ck_loc *loc, qc_weight w, int layer, int64_t row0,
                           int nrows, float *out, bool release, qc_err *e) {
    qc_status st = read_converted(ck, loc, w, row0, nrows, out, release, e);
    if (st) return st;
    int rows, cols;
    qc_weight_shape(&ck->cfg, w, &rows, &cols);
    return check_finite(ck, loc, w, layer, row0, nrows, cols, out, e);
}

qc_status qc_checkpoint_read(const qc_checkpoint *ck, qc_weight w, int layer, float *out, qc_err *e) {
    qc_status st = check_weight(ck, w, layer, e);
    if (st) return st;
    int rows, cols;
    qc_weight_shape(&ck->cfg, w, &rows, &cols);
    return read_rows(ck, &ck->locs[qc_ck_slot(w, layer)], w, layer, 0, rows, out, true, e);
}

/* w exists and is a global matrix, whose shape goes into *rows, *cols. */
static qc_status check_global(const qc_checkpoint *ck, qc_weight w, int *rows, int *cols, qc_err *e) {
    qc_status st = check_weight(ck, w, 0, e);
    if (st) return st;
    if (!qc_weight_is_global(w))
        return qc_fail(e, QC_ERR_ARG, "%s: row reads are for global weights; %s is per layer",
                       ck->path, qc_weight_short_name(w));
    qc_weight_shape(&ck->cfg, w, rows, cols);
    return QC_OK;
}

qc_status qc_checkpoint_read_rows(const qc_checkpoint *ck, qc_weight w, int64_t row0, int nrows,
                                  float *out, qc_err *e) {
    int rows, cols;
    qc_status st = check_global(ck, w, &rows, &cols, e);
    if (st) return st;
    if (row0 < 0 || nrows < 0 || row0 > rows - (int64_t)nrows)
        return qc_fail(e, QC_ERR_ARG, "%s: %s rows [%lld, %lld) asked for; it has %d rows", ck->path,
                       qc_weight_short_name(w), (long long)row0, (long long)row0 + nrows, rows);
    return read_rows(ck, &ck->locs[qc_ck_slot(w, 0)], w, 0, row0, nrows, out, true, e);
}

qc_status qc_checkpoint_gather_rows(const qc_checkpoint *ck, qc_weight w, const int32_t *ids, int n, float *out,
                                    qc_err *e) {
    int rows, cols;
    qc_status st = check_global(ck, w, &rows, &cols, e);
    if (st) return st;
    const qc_ck_loc *loc = &ck->locs[qc_ck_slot(w, 0)];
    int64_t lo = rows, hi = 0;
    for (int i = 0; i < n && !st; i++) {
        if (ids[i] < 0 || ids[i] >= rows)
            return qc_fail(e, QC_ERR_ARG, "%s: %s row %d asked for (entry %d); it has %d rows", ck->path,
                           qc_weight_short_name(w), ids[i], i, rows);
        st = read_rows(ck, loc, w, 0, ids[i], 1, out + (size_t)i * cols, false, e);
        lo = ids[i] < lo ? ids[i] : lo;
        hi = ids[i] + 1 > hi ? ids[i] + 1 : hi;
    }
    /* once for the whole lookup: per row, the advice (a TLB flush on every core) and the
     * fault of the next read of the page cost more than the reads themselves */
    release_rows(ck, loc, w, lo, hi);
    return st;
}

#define SCAN_FLOATS ((size_t)1 << 20) /* rows read at a time by the scan: 4 MB of fp32 (or one row) */

qc_status qc_checkpoint_check_finite(const qc_checkpoint *ck, qc_err *e) {
    const qc_config *c = &ck->cfg;
    float *buf = NULL;
    size_t cap = 0;
    qc_status st = QC_OK;
    for (int w = 0; w < QC_W_COUNT && !st; w++) {
        if (!qc_weight_present(c, (qc_weight)w) || (w == QC_W_CLASSIFIER && c->tied_classifier)) continue;
        int rows, cols;
        qc_weight_shape(c, (qc_weight)w, &rows, &cols);
        int chunk = (size_t)cols >= SCAN_FLOATS ? 1 : (int)(SCAN_FLOATS / (size_t)cols);
        if (chunk > rows) chunk = rows;
        size_t need = (size_t)chunk * (size_t)cols;
        if (need > cap) {
            free(buf);
            if (!(buf = qc_malloc(need, sizeof(float), e, "the finiteness scan"))) return QC_ERR_NOMEM;
            cap = need;
        }
        int nl = qc_weight_is_global((qc_weight)w) ? 1 : c->n_layers;
        for (int l = 0; l < nl && !st; l++) {
            const qc_ck_loc *loc = &ck->locs[qc_ck_slot((qc_weight)w, l)];
            for (int r = 0; r < rows && !st; r += chunk)
                st = read_rows(ck, loc, (qc_weight)w, l, r, rows - r < chunk ? rows - r : chunk, buf, true, e);
        }
    }
    free(buf);
    return st;
}

qc_status qc_checkpoint_pad_ffn(qc_checkpoint *ck, int multiple, qc_err *e) {
    if (multiple < 1) return qc_fail(e, QC_ERR_ARG, "FFN padding to a multiple of %d", multiple);
    int hidden = ck->ffn_file ? ck->ffn_file : ck->cfg.hidden_dim;
    int padded = (hidden + multiple - 1) / multiple * multiple;
    for (int l = 0; l < ck->cfg.n_layers && padded != hidden; l++)
        for (qc_weight w = QC_W_GATE; w <= QC_W_DOWN; w++)
            if (ck->locs[qc_ck_slot(w, l)].decode)
                return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: a quantized checkpoint cannot be padded", ck->path);
    ck->ffn_file = padded != hidden ? hidden : 0;
    ck->cfg.hidden_dim = padded;
    return QC_OK;
}

const char *qc_checkpoint_qtype(const qc_checkpoint *ck, qc_weight w, int layer) {
    QC_ASSERT(check_weight(ck, w, layer, NULL) == QC_OK);
    return ck->locs[qc_ck_slot(w, layer)].qtype;
}

static qc_status source_read(void *ctx, qc_weight w, int layer, float *out, qc_err *e) {
    return qc_checkpoint_read(ctx, w, layer, out, e);
}

qc_weight_source qc_checkpoint_source(const qc_checkpoint *ck) {
    return (qc_weight_source){ .cfg = &ck->cfg, .read = source_read, .ctx = (void *)ck };
}
