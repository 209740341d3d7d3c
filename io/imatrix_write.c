/* imatrix_write.c — qcalib's Σx² statistics as llama.cpp's importance matrix, the file
 * `llama-quantize --imatrix` reads (llama.cpp's tools/imatrix and common/imatrix-loader).
 * One entry per linear weight, named as in a GGUF model ("blk.3.attn_q.weight"; q, k and v
 * share their input, so their entries are equal), in byte order of the names, as
 * llama-imatrix sorts them. Two layouts, chosen by the path:
 *
 * GGUF (path ends in ".gguf"), the container of gguf.h with
 *   metadata  general.type = "imatrix", imatrix.datasets = [the calibration files] (string
 *             array), imatrix.chunk_count = windows (u32), imatrix.chunk_size = tokens per
 *             window (u32)
 *   tensors   per entry NAME.in_sum2, F32 ne = [n, 1]: Σx² of each input channel over every
 *             token; then NAME.counts, F32 ne = [1, 1]: the number of tokens
 *   (llama.cpp's reader divides in_sum2 by counts; every tensor F32, offsets padded to 32).
 *
 * legacy .dat (any other path), little endian, no alignment:
 *   i32 n_entries
 *   per entry: i32 name length, the name's bytes, i32 ncall, i32 n, n × f32 (Σx² / tokens) · ncall
 *   i32 chunk count, i32 length of the dataset name, its bytes
 *   where ncall = ceil(tokens / chunk size) is the number of chunks the entry saw (llama.cpp
 *   divides the values by it again, so what it uses is the mean of x² per token either way).
 *
 * The file is built in memory (4 bytes per input channel of every linear: 4 MB for a 7B
 * model) and written through an atomic output file: nothing appears at `path` unless all of
 * it was written. */
#include "io/gguf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    char name[QC_GGUF_MAX_NAME];
    qc_weight w;
    int layer, n;
} entry;

static int cmp_entry(const void *a, const void *b) { return strcmp(((const entry *)a)->name, ((const entry *)b)->name); }

/* A C string as GGUF writes it (u64 length, bytes). */
static void put_str(qc_sb *b, const char *s) { qc_gguf_put_str(b, s, strlen(s)); }

static void put_gguf(qc_sb *b, const qc_imatrix_src *m, const entry *es, int ne) {
    qc_sb_append(b, QC_GGUF_MAGIC, 4);
    qc_gguf_put_u32(b, QC_GGUF_VERSION);
    qc_gguf_put_u64(b, 2 * (uint64_t)ne);
    qc_gguf_put_u64(b, 4);
    qc_gguf_put_key(b, "general.type", QC_GGUF_V_STRING), put_str(b, "imatrix");
    qc_gguf_put_key(b, "imatrix.datasets", QC_GGUF_V_ARRAY), qc_gguf_put_u32(b, QC_GGUF_V_STRING);
    qc_gguf_put_u64(b, (uint64_t)m->ndatasets);
    for (int i = 0; i < m->ndatasets; i++) put_str(b, m->datasets[i]);
    qc_gguf_put_key(b, "imatrix.chunk_count", QC_GGUF_V_U32), qc_gguf_put_u32(b, (uint32_t)m->chunks);
    qc_gguf_put_key(b, "imatrix.chunk_size", QC_GGUF_V_U32), qc_gguf_put_u32(b, (uint32_t)m->chunk_size);
    uint64_t off = 0;
    for (int i = 0; i < ne; i++) {
        char name[QC_GGUF_MAX_NAME + 16];
        for (int k = 0; k < 2; k++) { /* in_sum2 [n, 1], then counts [1, 1] */
            snprintf(name, sizeof name, "%s.%s", es[i].name, k ? "counts" : "in_sum2");
            put_str(b, name);
            qc_gguf_put_u32(b, 2);
            qc_gguf_put_u64(b, k ? 1 : (uint64_t)es[i].n), qc_gguf_put_u64(b, 1);
            qc_gguf_put_u32(b, QC_GGUF_F32);
            qc_gguf_put_u64(b, off);
            uint64_t bytes = 4 * (k ? 1 : (uint64_t)es[i].n);
            off += (bytes + QC_GGUF_ALIGNMENT - 1) / QC_GGUF_ALIGNMENT * QC_GGUF_ALIGNMENT;
        }
    }
    qc_gguf_put_pad(b);
    for (int i = 0; i < ne; i++) {
        const double *s = m->sum_sq(m->ctx, es[i].w, es[i].layer);
        for (int j = 0; j < es[i].n; j++) qc_gguf_put_f32(b, (float)s[j]);
        qc_gguf_put_pad(b);
        qc_gguf_put_f32(b, (float)m->tokens);
        qc_gguf_put_pad(b);
    }
}

static void put_dat(qc_sb *b, const qc_imatrix_src *m, const entry *es, int ne) {
    int64_t ncall = (m->tokens + m->chunk_size - 1) / m->chunk_size;
    qc_gguf_put_u32(b, (uint32_t)ne);
    for (int i = 0; i < ne; i++) {
        qc_gguf_put_u32(b, (uint32_t)strlen(es[i].name));
        qc_sb_append(b, es[i].name, strlen(es[i].name));
        qc_gguf_put_u32(b, (uint32_t)ncall);
        qc_gguf_put_u32(b, (uint32_t)es[i].n);
        const double *s = m->sum_sq(m->ctx, es[i].w, es[i].layer);
        for (int j = 0; j < es[i].n; j++) qc_gguf_put_f32(b, (float)(s[j] / (double)m->tokens * (double)ncall));
    }
    qc_gguf_put_u32(b, (uint32_t)m->chunks);
    const char *ds = m->ndatasets ? m->datasets[m->ndatasets - 1] : "";
    qc_gguf_put_u32(b, (uint32_t)strlen(ds));
    qc_sb_append(b, ds, strlen(ds));
}

qc_status qc_imatrix_write(const char *path, const qc_imatrix_src *m, qc_err *e) {
    const qc_config *c = m->cfg;
    if (m->tokens < 1 || m->chunk_size < 1 || m->chunks < 1 || m->tokens > INT32_MAX)
        return qc_fail(e, QC_ERR_ARG, "%s: an importance matrix needs statistics of at least one window "
                       "(%lld tokens in %d windows of %d)", path, (long long)m->tokens, m->chunks, m->chunk_size);
    int ne = 0;
    entry *es = qc_calloc((size_t)c->n_layers * 7, sizeof *es, e, path);
    if (!es) return QC_ERR_NOMEM;
    for (int l = 0; l < c->n_layers; l++)
        for (qc_weight w = QC_W_Q; w <= QC_W_DOWN; w++) {
            if (!qc_weight_is_linear(w)) continue;
            int rows;
            entry *x = &es[ne++];
            x->w = w, x->layer = l;
            qc_weight_shape(c, w, &rows, &x->n);
            qc_gguf_tensor_name(w, l, x->name, sizeof x->name);
            const double *s = m->sum_sq(m->ctx, w, l);
            for (int j = 0; j < x->n; j++)
                if (!isfinite((float)s[j])) {
                    qc_status st = qc_fail(e, QC_ERR_NUMERIC, "%s: %s: Σx² of input channel %d is %g, beyond fp32",
                                           path, x->name, j, s[j]);
                    free(es);
                    return st;
                }
        }
    qsort(es, (size_t)ne, sizeof *es, cmp_entry);
    qc_sb b = { 0 };
    if (qc_str_ends_with(path, ".gguf")) put_gguf(&b, m, es, ne);
    else put_dat(&b, m, es, ne);
    free(es);
    qc_status st = b.failed ? qc_fail(e, QC_ERR_NOMEM, "%s: out of memory", path) : QC_OK;
    qc_outfile of = { 0 };
    if (!st) st = qc_out_open(&of, path, e);
    if (!st) st = qc_out_write(&of, b.s, b.len, e);
    if (!st) st = qc_out_commit(&of, e);
    else qc_out_abort(&of);
    qc_sb_free(&b);
    return st;
}
