/* checkpoint.c — the format-independent half of qc_checkpoint: choosing the reader for a
 * path, and reading weights. Each format's open function (llama2c.c, hf.c) validates its
 * file(s) and fills a table saying where every weight's bytes are (qc_ck_loc: pointer into
 * a mapping, dtype, whether Q/K rows are in HF order); from then on reading is the same for
 * every format: convert the rows asked for to fp32, taking each from its permuted position
 * when the file holds HF rows. Only the rows asked for are touched. */
#include "io/internal.h"

#include <stdlib.h>
#include <string.h>

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
    if (!config || !bin)
        st = qc_fail(e, QC_ERR_NOMEM, "out of memory");
    else if (qc_path_is_dir(path) && !qc_path_exists(config) && qc_path_exists(bin))
        st = qc_llama2c_open(ck, bin, e); /* a folder qcalib wrote for a llama2.c model */
    else if (qc_path_is_dir(path) || qc_str_ends_with(path, ".safetensors"))
        st = qc_hf_open(ck, path, e);
    else
        st = qc_llama2c_open(ck, path, e);
    free(config);
    free(bin);
    if (st) {
        qc_checkpoint_close(ck);
        return st;
    }
    *out = ck;
    return QC_OK;
}

void qc_checkpoint_close(qc_checkpoint *ck) {
    if (!ck) return;
    for (int i = 0; i < ck->nshards; i++) qc_st_close(&ck->shards[i]);
    free(ck->shards);
    qc_map_close(&ck->bin);
    free(ck->locs);
    free(ck->path);
    free(ck);
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
    return QC_OK;
}

qc_dtype qc_checkpoint_dtype(const qc_checkpoint *ck, qc_weight w, int layer) {
    QC_ASSERT(check_weight(ck, w, layer, NULL) == QC_OK);
    return ck->locs[qc_ck_slot(w, layer)].dtype;
}

/* Rows [row0, row0+nrows) of the weight at loc, converted to fp32. */
static void read_rows(const qc_checkpoint *ck, const qc_ck_loc *loc, qc_weight w, int64_t row0,
                      int nrows, float *out) {
    int rows, cols;
    qc_weight_shape(&ck->cfg, w, &rows, &cols);
    size_t row_bytes = (size_t)cols * qc_dtype_size(loc->dtype);
    int half = ck->cfg.head_dim / 2;
    for (int r = 0; r < nrows; r++) {
        int64_t src = row0 + r;
        if (loc->hf_rope_heads) { /* interleaved row 2i+j of a head is HF row j*half + i */
            int64_t h = src / ck->cfg.head_dim, k = src % ck->cfg.head_dim;
            src = h * ck->cfg.head_dim + (k % 2) * half + k / 2;
        }
        qc_convert_to_f32(loc->dtype, loc->data + (size_t)src * row_bytes, (size_t)cols,
                          out + (size_t)r * cols);
    }
}

qc_status qc_checkpoint_read(const qc_checkpoint *ck, qc_weight w, int layer, float *out, qc_err *e) {
    qc_status st = check_weight(ck, w, layer, e);
    if (st) return st;
    int rows, cols;
    qc_weight_shape(&ck->cfg, w, &rows, &cols);
    read_rows(ck, &ck->locs[qc_ck_slot(w, layer)], w, 0, rows, out);
    return QC_OK;
}

qc_status qc_checkpoint_read_rows(const qc_checkpoint *ck, qc_weight w, int64_t row0, int nrows,
                                  float *out, qc_err *e) {
    qc_status st = check_weight(ck, w, 0, e);
    if (st) return st;
    if (!qc_weight_is_global(w))
        return qc_fail(e, QC_ERR_ARG, "%s: row reads are for global weights; %s is per layer",
                       ck->path, qc_weight_short_name(w));
    int rows, cols;
    qc_weight_shape(&ck->cfg, w, &rows, &cols);
    if (row0 < 0 || nrows < 0 || row0 > rows - (int64_t)nrows)
        return qc_fail(e, QC_ERR_ARG, "%s: %s rows [%lld, %lld) asked for; it has %d rows", ck->path,
                       qc_weight_short_name(w), (long long)row0, (long long)row0 + nrows, rows);
    read_rows(ck, &ck->locs[qc_ck_slot(w, 0)], w, row0, nrows, out);
    return QC_OK;
}

static qc_status source_read(void *ctx, qc_weight w, int layer, float *out, qc_err *e) {
    return qc_checkpoint_read(ctx, w, layer, out, e);
}

qc_weight_source qc_checkpoint_source(const qc_checkpoint *ck) {
    return (qc_weight_source){ .cfg = &ck->cfg, .read = source_read, .ctx = (void *)ck };
}
