/* spill.c — where quantized results wait for the writer without filling memory.
 *
 * A whole model's quantized linears (one byte of code per weight, plus parameters) are as
 * large as the model in 8 bits; the writers want them only after calibration, in their
 * own order (GGUF and the GPTQ/AWQ writers check every linear before writing the first
 * byte, llama2.c's int8 file is ordered by matrix kind across layers). So each result is
 * appended to a scratch file as soon as it is solved and freed; after the last block the
 * file is mapped and every result's arrays point into the mapping, for the whole export.
 * Pages of a result become resident when a writer reads them and are dropped again when
 * the writer asks for another result (qc_spill_touch), so memory holds about one result at
 * a time while the bytes written are the same as from results held in memory.
 *
 * The scratch file is created in the given folder (the output's temporary folder, on the
 * disk that receives the output) and unlinked at once: it never appears in the output and
 * disappears with the process whatever happens. Each array starts 64-byte aligned. */
#include "calib/calib.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SPILL_ALIGN 64

/* Where one result's arrays are in the file; -1: absent (mins and super of most formats). */
typedef struct spill_entry {
    int64_t codes, scales, zeros, mins, g_idx, perm, super;
} spill_entry;

struct qc_spill {
    int fd;
    uint64_t size;        /* bytes written */
    spill_entry *entries; /* (n) by result index */
    size_t n;
    uint8_t *map;         /* after qc_spill_map */
    const qc_qweight *last; /* the result a writer read last, whose pages are resident */
};

qc_status qc_spill_open(qc_spill **out, const char *dir, size_t n, qc_err *e) {
    *out = NULL;
    char *path = qc_path_join(dir, ".qcalib-results.spill");
    if (!path) return qc_fail(e, QC_ERR_NOMEM, "out of memory");
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        qc_status st = qc_fail(e, QC_ERR_IO, "%s: cannot create the results' scratch file: %s", path, strerror(errno));
        free(path);
        return st;
    }
    unlink(path);
    free(path);
    qc_spill *s = qc_calloc(1, sizeof *s, e, "results scratch file");
    spill_entry *ent = s ? qc_malloc(n, sizeof *ent, e, "results scratch file") : NULL;
    if (!ent) {
        free(s);
        close(fd);
        return QC_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) ent[i] = (spill_entry){ -1, -1, -1, -1, -1, -1, -1 };
    *s = (qc_spill){ .fd = fd, .entries = ent, .n = n };
    *out = s;
    return QC_OK;
}

/* Appends n bytes at the next aligned offset; *at receives it (-1 for NULL data). */
static qc_status append(qc_spill *s, const void *data, size_t n, int64_t *at, qc_err *e) {
    *at = -1;
    if (!data) return QC_OK;
    static const uint8_t pad[SPILL_ALIGN];
    size_t gap = (size_t)((SPILL_ALIGN - s->size % SPILL_ALIGN) % SPILL_ALIGN);
    const uint8_t *parts[2] = { pad, data };
    size_t lens[2] = { gap, n };
    for (int k = 0; k < 2; k++)
        for (size_t done = 0; done < lens[k];) {
            ssize_t w = write(s->fd, parts[k] + done, lens[k] - done);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0)
                return qc_fail(e, QC_ERR_IO, "writing the quantized results' scratch file (in the output folder): %s",
                               w < 0 ? strerror(errno) : "no progress");
            done += (size_t)w;
        }
    *at = (int64_t)(s->size + gap);
    s->size += gap + n;
    return QC_OK;
}

/* Bytes of a K-quant result's super-block parameters (0: none). */
static size_t super_bytes(const qc_qweight *q) {
    return q->super ? (size_t)q->rows * (q->cols / QC_KQ_SUPER) * QC_KQ_SB_FLOATS(q->groupsize) * sizeof(float) : 0;
}

qc_status qc_spill_put(qc_spill *s, size_t i, qc_qweight *q, qc_err *e) {
    QC_ASSERT(i < s->n && !s->map);
    size_t n = (size_t)q->rows * q->cols, ng = (size_t)q->rows * q->ngroups;
    spill_entry *t = &s->entries[i];
    qc_status st = append(s, q->codes, n, &t->codes, e);
    if (!st) st = append(s, q->scales, ng * sizeof(float), &t->scales, e);
    if (!st) st = append(s, q->zeros, ng * sizeof(float), &t->zeros, e);
    if (!st) st = append(s, q->mins, ng * sizeof(float), &t->mins, e);
    if (!st) st = append(s, q->g_idx, (size_t)q->cols * sizeof(int32_t), &t->g_idx, e);
    if (!st) st = append(s, q->perm, (size_t)q->cols * sizeof(int32_t), &t->perm, e);
    if (!st) st = append(s, q->super, super_bytes(q), &t->super, e);
    if (st) return st;
    qc_qweight shape = *q;
    qc_qweight_free(q);
    *q = shape;
    q->codes = NULL, q->scales = q->zeros = q->mins = q->super = NULL, q->g_idx = q->perm = NULL;
    return QC_OK;
}

qc_status qc_spill_map(qc_spill *s, qc_qweight *res, qc_err *e) {
    QC_ASSERT(!s->map);
    if (s->size == 0) return QC_OK; /* nothing was quantized */
    void *p = mmap(NULL, (size_t)s->size, PROT_READ, MAP_SHARED, s->fd, 0);
    if (p == MAP_FAILED) return qc_fail(e, QC_ERR_IO, "mapping the quantized results' scratch file: %s", strerror(errno));
    s->map = p;
    for (size_t i = 0; i < s->n; i++) {
        const spill_entry *t = &s->entries[i];
        if (t->codes < 0) continue;
        qc_qweight *q = &res[i];
        q->codes = s->map + t->codes;
        q->scales = (float *)(void *)(s->map + t->scales);
        q->zeros = (float *)(void *)(s->map + t->zeros);
        q->mins = t->mins < 0 ? NULL : (float *)(void *)(s->map + t->mins);
        q->g_idx = (int32_t *)(void *)(s->map + t->g_idx);
        q->perm = (int32_t *)(void *)(s->map + t->perm);
        q->super = t->super < 0 ? NULL : (float *)(void *)(s->map + t->super);
    }
    qc_map_release(s->map, (size_t)s->size); /* written through the page cache: start with nothing resident */
    return QC_OK;
}

bool qc_spill_mapped(const qc_spill *s) { return s && s->map; }

static size_t result_bytes(const qc_qweight *q) {
    size_t ng = (size_t)q->rows * q->ngroups;
    return (size_t)q->rows * q->cols + ng * sizeof(float) * (q->mins ? 3 : 2) + (size_t)q->cols * 8 + super_bytes(q) +
           6 * SPILL_ALIGN;
}

void qc_spill_touch(qc_spill *s, const qc_qweight *q) {
    if (!s || !s->map || s->last == q) return;
    if (s->last) { /* the arrays are contiguous from codes; the last result's alignment slack ends with the file */
        size_t off = (size_t)(s->last->codes - s->map), n = result_bytes(s->last);
        qc_map_release(s->last->codes, off + n < (size_t)s->size ? n : (size_t)s->size - off);
    }
    s->last = q;
}

void qc_spill_close(qc_spill *s) {
    if (!s) return;
    if (s->map) munmap(s->map, (size_t)s->size);
    close(s->fd);
    free(s->entries);
    free(s);
}
