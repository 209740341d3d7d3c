/* resume.c — checkpoints of a calibration run in a work folder "<out>.work" beside the
 * output folder (where the output's temporary folder is built), and continuing an
 * interrupted run from them. The folder holds:
 *     fingerprint   text, one "key: value" line per thing the results depend on: the run's
 *                   description (qc_run_desc_fingerprint: every setting, the inputs by real
 *                   path and content hash)
 *     block-NNNN    a finished block: the content hash of the model's block as read
 *                   (qc_model_block_hash), its log rows (every field), then each linear's
 *                   quantized weight
 *     state         the number of finished blocks, the content hash of the token embedding,
 *                   then the activations entering the next block (windows × seqlen × dim, in
 *                   the run's activation type)
 *     lock          the run using the folder holds it (calib/worklock.c)
 * Each file is written under a temporary name and renamed (base/'s qc_outfile), a block's
 * file before the state that counts it, so a kill at any moment leaves the old state or the
 * new one, never a torn one. Integers are 8 bytes little endian, floats as in memory (the
 * same machine reads them back). Everything read back is checked against the model and the
 * options (shapes, sizes, group indices), so a damaged work file is an error naming it,
 * never a wild read. A restored block whose model block (or an embedding) hashes otherwise
 * than the interrupted run's is refused, naming it: the model's tensors are checked where
 * they are read, so a resume reads no tensor twice. */
#include "calib/internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATE_MAGIC "QCRSTAT2"
#define BLOCK_MAGIC "QCRBLCK2"
#define FINGERPRINT_MAX ((size_t)1 << 20)
#define REPORT_FIELDS 12

struct qc_resume {
    char *dir;
    char *fingerprint;
    qc_model *model;
    const qc_config *cfg;
    const qc_calib_opts *o;
    bool resume;
    bool existed; /* the folder was there before this run: never removed on failure */
    int lock;     /* the folder's lock, held until qc_resume_close */
    int blocks;   /* finished blocks the folder holds */
    bool have_embed_hash;
    uint64_t embed_hash; /* the token embedding's, once computed */
    qc_calib_checkpoint cp;
};

/* ---- files ------------------------------------------------------------------------------------ */

static char *work_file(const qc_resume *r, const char *name) { return qc_path_join(r->dir, name); }

static char *block_file(const qc_resume *r, int layer) {
    char name[32];
    snprintf(name, sizeof name, "block-%04d", layer);
    return work_file(r, name);
}

static void put64(qc_outfile *f, uint64_t v, qc_status *st, qc_err *e) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    if (!*st) *st = qc_out_write(f, b, 8, e);
}

static void putd(qc_outfile *f, double v, qc_status *st, qc_err *e) {
    uint64_t u;
    memcpy(&u, &v, 8);
    put64(f, u, st, e);
}

static void putbytes(qc_outfile *f, const void *p, size_t n, qc_status *st, qc_err *e) {
    if (!*st) *st = qc_out_write(f, p, n, e);
}

/* A cursor over a mapped work file; a read past the end sets `short_read`. */
typedef struct cursor {
    const uint8_t *p;
    size_t left;
    bool short_read;
} cursor;

static const uint8_t *take(cursor *c, size_t n) {
    if (c->short_read || n > c->left) {
        c->short_read = true;
        return NULL;
    }
    const uint8_t *p = c->p;
    c->p += n;
    c->left -= n;
    return p;
}

static uint64_t get64(cursor *c) {
    const uint8_t *p = take(c, 8);
    return p ? qc_le64(p) : 0;
}

static double getd(cursor *c) {
    uint64_t u = get64(c);
    double v;
    memcpy(&v, &u, 8);
    return v;
}

static void getbytes(cursor *c, void *dst, size_t n) {
    const uint8_t *p = take(c, n);
    if (p) memcpy(dst, p, n);
}

/* The token embedding's content hash (computed once per run: the embedding is read whole). */
static qc_status embed_hash(qc_resume *r, uint64_t *h, qc_err *e) {
    if (!r->have_embed_hash) {
        qc_status st = qc_model_embed_hash(r->model, &r->embed_hash, e);
        if (st) return st;
        r->have_embed_hash = true;
    }
    *h = r->embed_hash;
    return QC_OK;
}

/* ---- saving --------------------------------------------------------------------------------- */

/* Floats of a K-quant result's super-block parameters (0: none). */
static size_t super_floats(const qc_qweight *q) {
    return q->super ? (size_t)q->rows * (q->cols / QC_KQ_SUPER) * QC_KQ_SB_FLOATS(q->groupsize) : 0;
}

static void put_qweight(qc_outfile *f, const qc_qweight *q, qc_status *st, qc_err *e) {
    size_t n = (size_t)q->rows * q->cols, ng = (size_t)q->rows * q->ngroups;
    put64(f, q->codes != NULL, st, e);
    if (!q->codes) return;
    put64(f, q->mins != NULL, st, e);
    putbytes(f, q->codes, n, st, e);
    putbytes(f, q->scales, ng * sizeof(float), st, e);
    putbytes(f, q->zeros, ng * sizeof(float), st, e);
    if (q->mins) putbytes(f, q->mins, ng * sizeof(float), st, e);
    putbytes(f, q->g_idx, (size_t)q->cols * sizeof(int32_t), st, e);
    putbytes(f, q->perm, (size_t)q->cols * sizeof(int32_t), st, e);
    if (q->super) putbytes(f, q->super, super_floats(q) * sizeof(float), st, e);
}

static qc_status save(void *ctx, int layer, const qc_quantized *out, const void *x, size_t nbytes, qc_err *e) {
    qc_resume *r = ctx;
    int first = out->nreports; /* this block's log rows are the last ones */
    while (first > 0 && out->reports[first - 1].block == layer) first--;
    uint64_t bhash, ehash;
    qc_status st = qc_model_block_hash(r->model, layer, &bhash, e); /* hashed when the runner read it */
    if (!st) st = embed_hash(r, &ehash, e);
    char *path = st ? NULL : block_file(r, layer);
    qc_outfile f;
    if (!st) st = path ? qc_out_open(&f, path, e) : qc_fail(e, QC_ERR_NOMEM, "out of memory");
    if (!st) {
        putbytes(&f, BLOCK_MAGIC, 8, &st, e);
        put64(&f, (uint64_t)layer, &st, e);
        put64(&f, bhash, &st, e);
        put64(&f, (uint64_t)(out->nreports - first), &st, e);
        for (int i = first; i < out->nreports; i++) {
            const qc_layer_report *p = &out->reports[i];
            put64(&f, (uint64_t)p->block, &st, e);
            put64(&f, (uint64_t)p->linear, &st, e);
            put64(&f, (uint64_t)p->rows, &st, e);
            put64(&f, (uint64_t)p->cols, &st, e);
            putd(&f, p->loss, &st, e);
            putd(&f, p->rel_err, &st, e);
            putd(&f, p->abs_err, &st, e);
            putd(&f, p->damp, &st, e);
            put64(&f, (uint64_t)p->retries, &st, e);
            put64(&f, p->fallback, &st, e);
            put64(&f, p->kept_f16, &st, e);
            put64(&f, (uint64_t)p->dead, &st, e);
            putd(&f, p->seconds, &st, e);
            put64(&f, (uint64_t)(int64_t)p->awq_grid, &st, e);
            putd(&f, p->awq_loss, &st, e);
            putd(&f, p->awq_loss0, &st, e);
            putd(&f, p->clip_mean, &st, e);
            putd(&f, p->clip_min, &st, e);
            putd(&f, p->smooth_min, &st, e);
            putd(&f, p->smooth_max, &st, e);
        }
        for (int lin = 0; lin < QC_LIN_COUNT; lin++) put_qweight(&f, &out->res[(size_t)layer * QC_LIN_COUNT + lin], &st, e);
        if (!st) st = qc_out_commit(&f, e);
        else qc_out_abort(&f);
    }
    free(path);
    path = st ? NULL : work_file(r, "state");
    if (!st && !path) st = qc_fail(e, QC_ERR_NOMEM, "out of memory");
    if (!st && !(st = qc_out_open(&f, path, e))) {
        putbytes(&f, STATE_MAGIC, 8, &st, e);
        put64(&f, (uint64_t)layer + 1, &st, e);
        put64(&f, ehash, &st, e);
        put64(&f, nbytes, &st, e);
        putbytes(&f, x, nbytes, &st, e);
        if (!st) st = qc_out_commit(&f, e);
        else qc_out_abort(&f);
    }
    free(path);
    if (!st && !r->blocks) qc_cleanup_drop(r->dir); /* worth keeping now, even when interrupted */
    if (!st) r->blocks = layer + 1;
    return st ? qc_fail_prefix(e, st, "checkpointing block %d in %s", layer, r->dir) : QC_OK;
}

/* ---- restoring -------------------------------------------------------------------------------- */

static qc_status get_qweight(cursor *c, const qc_resume *r, int layer, int lin, qc_qweight *q, const char *path,
                             qc_err *e) {
    if (!get64(c)) return QC_OK; /* a linear kept in fp16 */
    const qc_quant_spec *s = qc_calib_spec(r->o, layer, (qc_linear)lin);
    int rows, cols;
    qc_weight_shape(r->cfg, qc_linear_weight(lin), &rows, &cols);
    bool mins = get64(c) != 0;
    if (mins != s->store_min) return qc_fail(e, QC_ERR_FORMAT, "%s: damaged (linear %d's mins)", path, lin);
    qc_status st = qc_qweight_init(q, rows, cols, s->bits, s->groupsize, s->sym, e);
    if (st) return st;
    size_t n = (size_t)rows * cols, ng = (size_t)rows * q->ngroups;
    if (mins && !(q->mins = qc_malloc(ng, sizeof(float), e, path))) return QC_ERR_NOMEM;
    getbytes(c, q->codes, n);
    getbytes(c, q->scales, ng * sizeof(float));
    getbytes(c, q->zeros, ng * sizeof(float));
    if (mins) getbytes(c, q->mins, ng * sizeof(float));
    getbytes(c, q->g_idx, (size_t)cols * sizeof(int32_t));
    getbytes(c, q->perm, (size_t)cols * sizeof(int32_t));
    if (s->kquant && cols % QC_KQ_SUPER != 0) return qc_fail(e, QC_ERR_FORMAT, "%s: damaged (linear %d's shape)", path, lin);
    if (s->kquant && !(q->super = qc_malloc((size_t)rows * (cols / QC_KQ_SUPER) * QC_KQ_SB_FLOATS(s->groupsize),
                                             sizeof(float), e, path)))
        return QC_ERR_NOMEM;
    if (q->super) getbytes(c, q->super, super_floats(q) * sizeof(float));
    if (c->short_read) return qc_fail(e, QC_ERR_FORMAT, "%s: truncated", path);
    int maxq = (1 << s->bits) - 1;
    for (size_t i = 0; i < n; i++)
        if (q->codes[i] > maxq) return qc_fail(e, QC_ERR_FORMAT, "%s: damaged (a code above %d)", path, maxq);
    for (int i = 0; i < cols; i++)
        if (q->g_idx[i] < 0 || q->g_idx[i] >= q->ngroups || q->perm[i] < 0 || q->perm[i] >= cols)
            return qc_fail(e, QC_ERR_FORMAT, "%s: damaged (group index or order of column %d)", path, i);
    return QC_OK;
}

static qc_status restore_block(qc_resume *r, int layer, qc_quantized *out, qc_err *e) {
    char *path = block_file(r, layer);
    if (!path) return qc_fail(e, QC_ERR_NOMEM, "out of memory");
    qc_map m;
    qc_status st = qc_map_open(&m, path, e);
    cursor c = { m.data, m.size, false };
    const uint8_t *magic = st ? NULL : take(&c, 8);
    if (!st && (!magic || memcmp(magic, BLOCK_MAGIC, 8) != 0 || get64(&c) != (uint64_t)layer))
        st = qc_fail(e, QC_ERR_FORMAT, "%s: not the checkpoint of block %d", path, layer);
    uint64_t had = st ? 0 : get64(&c), has = 0;
    if (!st && !(st = qc_model_block_hash(r->model, layer, &has, e)) && had != has)
        st = qc_fail(e, QC_ERR_ARG,
                     "%s: cannot resume: block %d of the model differs from the one the interrupted run quantized "
                     "(its weights hash to %016llx, they hashed to %016llx): the model's file changed; resume with "
                     "the same model, or remove %s to start afresh", r->dir, layer, (unsigned long long)has,
                     (unsigned long long)had, r->dir);
    uint64_t nrep = st ? 0 : get64(&c);
    if (!st && (nrep > QC_LIN_COUNT || (size_t)out->nreports + nrep > (size_t)out->n_layers * QC_LIN_COUNT))
        st = qc_fail(e, QC_ERR_FORMAT, "%s: damaged (%llu log rows)", path, (unsigned long long)nrep);
    for (uint64_t i = 0; i < nrep && !st; i++) {
        qc_layer_report *p = &out->reports[out->nreports];
        p->block = (int)get64(&c);
        uint64_t lin = get64(&c);
        p->rows = (int)get64(&c);
        p->cols = (int)get64(&c);
        p->loss = getd(&c);
        p->rel_err = getd(&c);
        p->abs_err = getd(&c);
        p->damp = getd(&c);
        p->retries = (int)get64(&c);
        p->fallback = get64(&c) != 0;
        p->kept_f16 = get64(&c) != 0;
        p->dead = (int)get64(&c);
        p->seconds = getd(&c);
        p->awq_grid = (int)(int64_t)get64(&c);
        p->awq_loss = getd(&c);
        p->awq_loss0 = getd(&c);
        p->clip_mean = getd(&c);
        p->clip_min = getd(&c);
        p->smooth_min = getd(&c);
        p->smooth_max = getd(&c);
        if (c.short_read || p->block != layer || lin >= QC_LIN_COUNT)
            st = qc_fail(e, QC_ERR_FORMAT, "%s: damaged (log row %llu)", path, (unsigned long long)i);
        else p->linear = (qc_linear)lin, out->nreports++;
    }
    for (int lin = 0; lin < QC_LIN_COUNT && !st; lin++)
        st = get_qweight(&c, r, layer, lin, &out->res[(size_t)layer * QC_LIN_COUNT + lin], path, e);
    if (!st && (c.short_read || c.left != 0)) st = qc_fail(e, QC_ERR_FORMAT, "%s: damaged (size)", path);
    qc_map_close(&m);
    free(path);
    return st;
}

static qc_status restore(void *ctx, qc_quantized *out, void *x, size_t nbytes, int *first, qc_err *e) {
    qc_resume *r = ctx;
    *first = 0;
    char *path = work_file(r, "state");
    if (!path) return qc_fail(e, QC_ERR_NOMEM, "out of memory");
    if (!r->resume || !qc_path_exists(path)) { /* nothing finished yet */
        free(path);
        return QC_OK;
    }
    qc_map m;
    qc_status st = qc_map_open(&m, path, e);
    cursor c = { m.data, m.size, false };
    const uint8_t *magic = st ? NULL : take(&c, 8);
    uint64_t next = st ? 0 : get64(&c), had = st ? 0 : get64(&c), n = st ? 0 : get64(&c);
    if (!st && (!magic || memcmp(magic, STATE_MAGIC, 8) != 0 || next < 1 || next > (uint64_t)r->cfg->n_layers ||
                n != nbytes || c.left != nbytes))
        st = qc_fail(e, QC_ERR_FORMAT, "%s: not a checkpoint of this run (damaged, or for other windows)", path);
    if (!st) memcpy(x, c.p, nbytes);
    qc_map_close(&m);
    free(path);
    uint64_t has = 0;
    if (!st && !(st = embed_hash(r, &has, e)) && had != has)
        st = qc_fail(e, QC_ERR_ARG,
                     "%s: cannot resume: the model's token embedding differs from the interrupted run's (it hashes to "
                     "%016llx, it hashed to %016llx): the model's file changed; resume with the same model, or remove "
                     "%s to start afresh", r->dir, (unsigned long long)has, (unsigned long long)had, r->dir);
    for (int l = 0; l < (int)next && !st; l++) st = restore_block(r, l, out, e);
    if (st && st != QC_ERR_NOMEM)
        return qc_fail_prefix(e, st, "%s cannot be resumed (pass --restart to discard its checkpoints and start afresh)",
                              r->dir);
    if (st) return st;
    *first = r->blocks = (int)next;
    qc_logf(r->o->log, QC_LOG_INFO, "resuming from %s: blocks 1..%d of %d were finished by the interrupted run",
            r->dir, (int)next, r->cfg->n_layers);
    return QC_OK;
}

/* ---- the work folder ---------------------------------------------------------------------------- */

static void remove_folder(const char *dir) {
    DIR *d = opendir(dir);
    for (struct dirent *de; d && (de = readdir(d));) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char *p = qc_path_join(dir, de->d_name);
        if (p) unlink(p);
        free(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

static qc_status write_fingerprint(const qc_resume *r, qc_err *e) {
    char *path = work_file(r, "fingerprint");
    if (!path) return qc_fail(e, QC_ERR_NOMEM, "out of memory");
    qc_outfile f;
    qc_status st = qc_out_open(&f, path, e);
    if (!st) st = qc_out_write(&f, r->fingerprint, strlen(r->fingerprint), e);
    if (!st) st = qc_out_commit(&f, e);
    else qc_out_abort(&f);
    free(path);
    return st;
}

static qc_status check_fingerprint(const qc_resume *r, qc_err *e) {
    char *path = work_file(r, "fingerprint"), *had = NULL;
    size_t len;
    qc_status st = path ? qc_read_file(path, FINGERPRINT_MAX, &had, &len, e) : qc_fail(e, QC_ERR_NOMEM, "out of memory");
    if (st && st != QC_ERR_NOMEM)
        qc_fail_prefix(e, st, "%s cannot be resumed (its fingerprint is unreadable; pass --restart to discard it and "
                       "start afresh)", r->dir);
    if (!st && strcmp(had, r->fingerprint) != 0) {
        char a[512], b[512];
        qc_str_first_difference(had, r->fingerprint, a, b, sizeof a);
        st = qc_fail(e, QC_ERR_ARG,
                     "%s: cannot resume: the interrupted run differs from this one (it had \"%s\", this run has "
                     "\"%s\"); resume with the same model, calibration data and options, or remove the folder to "
                     "start afresh", r->dir, a, b);
    }
    free(had);
    free(path);
    return st;
}

qc_status qc_resume_open(qc_resume **rp, const char *out, qc_model *m, const qc_calib_opts *o,
                         const char *fingerprint, bool resume, qc_err *e) {
    *rp = NULL;
    qc_resume *r = qc_calloc(1, sizeof *r, e, "resume");
    if (!r) return QC_ERR_NOMEM;
    r->dir = qc_strdupf("%.*s.work", (int)qc_path_trimmed_len(out), out);
    r->fingerprint = qc_strdupf("%s", fingerprint);
    r->model = m;
    r->cfg = &m->cfg;
    r->o = o;
    r->resume = resume;
    r->cp = (qc_calib_checkpoint){ restore, save, r };
    r->lock = -1;
    qc_status st = r->dir && r->fingerprint ? QC_OK : qc_fail(e, QC_ERR_NOMEM, "out of memory");
    bool made = !st && mkdir(r->dir, 0755) == 0;
    if (!st && !made && errno != EEXIST)
        st = qc_fail(e, QC_ERR_IO, "%s: cannot create the work folder: %s", r->dir, strerror(errno));
    if (!st && (st = qc_work_lock(r->dir, &r->lock, e)) && made) rmdir(r->dir);
    char *state = st ? NULL : work_file(r, "state");
    if (!st && !state) st = qc_fail(e, QC_ERR_NOMEM, "out of memory");
    r->existed = !st && !made && qc_path_exists(state); /* finished blocks: never removed on failure */
    free(state);
    if (!st && r->existed && !resume) {
        st = qc_fail(e, QC_ERR_ARG,
                     "%s holds the checkpoints of an interrupted run: pass --resume to continue it (the same command "
                     "with --resume), or --restart to discard them and start afresh", r->dir);
    } else if (!st && r->existed) {
        st = check_fingerprint(r, e);
    } else if (!st) { /* new, or left by a run that finished no block: nothing to resume */
        if (!made) qc_work_clear(r->dir);
        qc_cleanup_add(r->dir);
        if ((st = write_fingerprint(r, e))) remove_folder(r->dir);
    }
    if (st) {
        if (r->lock >= 0) close(r->lock);
        if (!r->existed) qc_cleanup_drop(r->dir);
        free(r->dir), free(r->fingerprint), free(r);
        return st;
    }
    *rp = r;
    return QC_OK;
}

const qc_calib_checkpoint *qc_resume_checkpoint(qc_resume *r) { return &r->cp; }

void qc_resume_close(qc_resume *r, bool success, qc_err *e) {
    if (!r) return;
    if (success || (r->blocks == 0 && !r->existed)) {
        remove_folder(r->dir);
        qc_cleanup_drop(r->dir);
    } else if (e && r->blocks > 0) {
        size_t len = strlen(e->msg);
        snprintf(e->msg + len, sizeof e->msg - len,
                 " (the %d finished blocks are kept in %s: rerun with --resume to continue)", r->blocks, r->dir);
    }
    if (r->lock >= 0) close(r->lock);
    free(r->dir);
    free(r->fingerprint);
    free(r);
}
