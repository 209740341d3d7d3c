/* safetensors_write.c — the streaming safetensors writer. Tensors are declared first (name, dtype,
 * shape), which fixes the header; their data is then written in declaration order, one
 * whole tensor per call, straight to an atomic output file (base's qc_outfile), so a file
 * of any size is written without holding more than one tensor in memory.
 *
 * Layout written (see safetensors_read.c for the reader):
 *   u64 N little endian | N bytes of JSON header | data
 * The header is {"__metadata__": {...}, "name": {"dtype", "shape", "data_offsets"}, ...}
 * with tensors in declaration order and their data back to back in the same order, no
 * gaps; it is padded with spaces so that N is a multiple of 8 and the data starts 8-byte
 * aligned, as the reference implementation does.
 *
 * States: declaring (add/meta) -> writing (after begin) -> finished, or failed: any error
 * after begin aborts the output file and every later call fails. */
#include "io/internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct st_decl {
    char *name;
    qc_dtype dtype;
    int ndim;
    int64_t shape[QC_ST_MAX_DIMS];
    size_t nbytes;
} st_decl;

typedef enum { ST_DECLARING, ST_WRITING, ST_DONE, ST_FAILED } st_state;

struct qc_safetensors_writer {
    st_decl *decl; /* (ndecl) in declaration order */
    int ndecl, cap;
    qc_sb meta;    /* the "__metadata__" members, comma-separated, or empty */
    qc_outfile out;
    st_state state;
    int next;      /* index of the next tensor to write */
};

qc_safetensors_writer *qc_safetensors_writer_new(qc_err *e) {
    return qc_calloc(1, sizeof(qc_safetensors_writer), e, "safetensors writer");
}

static const char *out_name(const qc_safetensors_writer *w) { return w->out.path ? w->out.path : "safetensors writer"; }

qc_status qc_safetensors_writer_add(qc_safetensors_writer *w, const char *name, qc_dtype dtype, int ndim,
                           const int64_t *shape, qc_err *e) {
    if (w->state != ST_DECLARING)
        return qc_fail(e, QC_ERR_ARG, "%s: tensor '%s' declared after writing began", out_name(w), name);
    if (!*name || strcmp(name, "__metadata__") == 0)
        return qc_fail(e, QC_ERR_ARG, "safetensors writer: invalid tensor name '%s'", name);
    if ((unsigned)dtype >= QC_DT_COUNT)
        return qc_fail(e, QC_ERR_ARG, "safetensors writer: tensor '%s': invalid dtype %d", name, (int)dtype);
    if (ndim < 0 || ndim > QC_ST_MAX_DIMS)
        return qc_fail(e, QC_ERR_ARG, "safetensors writer: tensor '%s': %d dimensions (0 to %d allowed)",
                       name, ndim, QC_ST_MAX_DIMS);
    st_decl d = { .dtype = dtype, .ndim = ndim };
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (uint64_t)shape[i] > SIZE_MAX || !qc_mul_size(count, (size_t)shape[i], &count))
            return qc_fail(e, QC_ERR_ARG, "safetensors writer: tensor '%s': invalid shape[%d] %lld",
                           name, i, (long long)shape[i]);
        d.shape[i] = shape[i];
    }
    if (!qc_mul_size(count, qc_dtype_size(dtype), &d.nbytes))
        return qc_fail(e, QC_ERR_ARG, "safetensors writer: tensor '%s': shape overflows", name);
    if (w->ndecl == w->cap) {
        int cap = w->cap ? 2 * w->cap : 64;
        st_decl *p = realloc(w->decl, (size_t)cap * sizeof *p);
        if (!p) return qc_fail(e, QC_ERR_NOMEM, "safetensors writer: out of memory");
        w->decl = p;
        w->cap = cap;
    }
    if (!(d.name = qc_strdup(name, e))) return QC_ERR_NOMEM;
    w->decl[w->ndecl++] = d;
    return QC_OK;
}

qc_status qc_safetensors_writer_meta(qc_safetensors_writer *w, const char *key, const char *value, qc_err *e) {
    if (w->state != ST_DECLARING)
        return qc_fail(e, QC_ERR_ARG, "%s: metadata '%s' added after writing began", out_name(w), key);
    if (w->meta.len) qc_sb_append(&w->meta, ",", 1);
    qc_sb_json_string(&w->meta, key);
    qc_sb_append(&w->meta, ":", 1);
    qc_sb_json_string(&w->meta, value);
    return w->meta.failed ? qc_fail(e, QC_ERR_NOMEM, "safetensors writer: out of memory") : QC_OK;
}

static qc_status check_unique(const qc_safetensors_writer *w, const char *path, qc_err *e) {
    char **names = qc_malloc((size_t)w->ndecl, sizeof *names, e, path);
    if (!names) return QC_ERR_NOMEM;
    for (int i = 0; i < w->ndecl; i++) names[i] = w->decl[i].name;
    qsort(names, (size_t)w->ndecl, sizeof *names, qc_cmp_str_ptr);
    qc_status st = QC_OK;
    for (int i = 1; i < w->ndecl && !st; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            st = qc_fail(e, QC_ERR_ARG, "%s: tensor '%s' declared twice", path, names[i]);
    free(names);
    return st;
}

static qc_status build_header(const qc_safetensors_writer *w, qc_sb *h, qc_err *e) {
    qc_sb_append(h, "{", 1);
    bool first = true;
    if (w->meta.len) {
        qc_sb_printf(h, "\"__metadata__\":{%s}", w->meta.s);
        first = false;
    }
    size_t off = 0;
    for (int i = 0; i < w->ndecl; i++) {
        const st_decl *d = &w->decl[i];
        if (!first) qc_sb_append(h, ",", 1);
        first = false;
        qc_sb_json_string(h, d->name);
        qc_sb_printf(h, ":{\"dtype\":\"%s\",\"shape\":[", qc_dtype_name(d->dtype));
        for (int k = 0; k < d->ndim; k++) qc_sb_printf(h, "%s%lld", k ? "," : "", (long long)d->shape[k]);
        if (!qc_add_size(off, d->nbytes, &off))
            return qc_fail(e, QC_ERR_ARG, "safetensors writer: total size overflows");
        qc_sb_printf(h, "],\"data_offsets\":[%zu,%zu]}", off - d->nbytes, off);
    }
    qc_sb_append(h, "}", 1);
    while (!h->failed && h->len % 8) qc_sb_append(h, " ", 1);
    return h->failed ? qc_fail(e, QC_ERR_NOMEM, "safetensors writer: out of memory") : QC_OK;
}

qc_status qc_safetensors_writer_begin(qc_safetensors_writer *w, const char *path, qc_err *e) {
    if (w->state != ST_DECLARING)
        return qc_fail(e, QC_ERR_ARG, "%s: safetensors writer begun twice", path);
    qc_status st = check_unique(w, path, e);
    if (st) return st;
    qc_sb h = { 0 };
    st = build_header(w, &h, e);
    if (!st) st = qc_out_open(&w->out, path, e);
    if (!st) {
        uint8_t len[8];
        for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)h.len >> 8 * i);
        st = qc_out_write(&w->out, len, 8, e);
        if (!st) st = qc_out_write(&w->out, h.s, h.len, e);
        if (st) qc_out_abort(&w->out);
    }
    qc_sb_free(&h);
    w->state = st ? ST_FAILED : ST_WRITING;
    return st;
}

static qc_status fail_writing(qc_safetensors_writer *w, qc_status st) {
    qc_out_abort(&w->out);
    w->state = ST_FAILED;
    return st;
}

qc_status qc_safetensors_writer_write(qc_safetensors_writer *w, const char *name, const void *data, size_t nbytes,
                             qc_err *e) {
    if (w->state != ST_WRITING)
        return qc_fail(e, QC_ERR_ARG, "%s: tensor '%s' written %s", out_name(w), name,
                       w->state == ST_DECLARING ? "before qc_safetensors_writer_begin"
                       : w->state == ST_DONE    ? "after the file was finished"
                                                : "after an earlier failure");
    if (w->next == w->ndecl)
        return fail_writing(w, qc_fail(e, QC_ERR_ARG, "%s: tensor '%s' written, but every declared tensor was already written",
                                       w->out.path, name));
    const st_decl *d = &w->decl[w->next];
    if (strcmp(name, d->name) != 0)
        return fail_writing(w, qc_fail(e, QC_ERR_ARG, "%s: tensor '%s' written out of order: '%s' is next",
                                       w->out.path, name, d->name));
    if (nbytes != d->nbytes)
        return fail_writing(w, qc_fail(e, QC_ERR_ARG, "%s: tensor '%s': %zu bytes written, its shape needs %zu",
                                       w->out.path, name, nbytes, d->nbytes));
    qc_status st = qc_out_write(&w->out, data, nbytes, e);
    if (st) return fail_writing(w, qc_fail_prefix(e, st, "tensor '%s'", name));
    w->next++;
    return QC_OK;
}

qc_status qc_safetensors_writer_finish(qc_safetensors_writer *w, qc_err *e) {
    if (w->state != ST_WRITING)
        return qc_fail(e, QC_ERR_ARG, "%s: finish %s", out_name(w),
                       w->state == ST_DECLARING ? "before qc_safetensors_writer_begin"
                       : w->state == ST_DONE    ? "called twice"
                                                : "after an earlier failure");
    if (w->next < w->ndecl)
        return fail_writing(w, qc_fail(e, QC_ERR_ARG, "%s: tensor '%s' declared but never written (%d of %d written)",
                                       w->out.path, w->decl[w->next].name, w->next, w->ndecl));
    qc_status st = qc_out_commit(&w->out, e);
    w->state = st ? ST_FAILED : ST_DONE;
    return st;
}

void qc_safetensors_writer_free(qc_safetensors_writer *w) {
    if (!w) return;
    qc_out_abort(&w->out); /* no-op once committed */
    for (int i = 0; i < w->ndecl; i++) free(w->decl[i].name);
    free(w->decl);
    qc_sb_free(&w->meta);
    free(w);
}
