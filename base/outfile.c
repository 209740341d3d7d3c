/* outfile.c — atomic outputs. A file is written as "<path>.tmp.XXXXXX" in the same folder
 * and renamed over <path> only after fflush, fsync and fclose have all succeeded; a
 * directory is built as "<path>.tmp.XXXXXX" and renamed likewise. A crash, a full disk or
 * bad input therefore never leaves a half-written output at the path the user named.
 *
 * A rename is durable only once the folder holding the name is: after each rename the parent
 * folder is opened and fsync'ed (as Redis and SQLite do), its failure an error like any write
 * error. Filesystems that cannot sync a folder at all say so with EINVAL (or EBADF for a
 * folder opened read-only); that is not a failure of this write, and is let pass. Files
 * inside an output folder are committed one by one, so each of their renames syncs the
 * temporary folder; the folder's own rename then syncs its parent.
 *
 * Temporaries are flock'ed by their writer and registered for removal on SIGINT/SIGTERM
 * (base/leftovers.c); a write first sweeps away the temporaries of <path> left by a dead run.
 * A folder replaces an existing one (qc_outdir_check_replace having allowed it) by
 * renameat2's RENAME_EXCHANGE: one step, so the path never lacks an output. Filesystems
 * without it (EINVAL, ENOSYS: some network and FUSE filesystems) get two renames, old aside
 * then new in, with signals held between them; only a SIGKILL or power cut between them can
 * leave the path empty, with the old folder at "<path>.old.XXXXXX" until the next write of
 * <path> renames it back. */
#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* fsync of the folder that holds path, after a rename into it. */
static qc_status sync_parent(const char *path, qc_err *e) {
    char *dir = qc_path_dirname(path);
    if (!dir) return qc_fail(e, QC_ERR_NOMEM, "out of memory");
    qc_status st = QC_OK;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        st = qc_fail(e, QC_ERR_IO, "%s: written, but its folder %s cannot be opened to sync it: %s", path, dir,
                     strerror(errno));
    else if (fsync(fd) != 0 && errno != EINVAL && errno != EBADF)
        st = qc_fail(e, QC_ERR_IO, "%s: written, but its folder %s cannot be synced (the new name may not survive a "
                     "crash): %s", path, dir, strerror(errno));
    if (fd >= 0 && close(fd) != 0 && !st)
        st = qc_fail(e, QC_ERR_IO, "%s: written, but closing its folder %s failed: %s", path, dir, strerror(errno));
    free(dir);
    return st;
}

qc_status qc_out_open(qc_outfile *o, const char *path, qc_err *e) {
    memset(o, 0, sizeof *o);
    if (qc_path_is_dir(path))
        return qc_fail(e, QC_ERR_IO, "%s: is a directory, cannot write a file there", path);
    o->path = qc_strdup(path, e);
    o->tmp = qc_strdupf("%s.tmp.XXXXXX", path);
    if (!o->path || !o->tmp) { qc_out_abort(o); return qc_fail(e, QC_ERR_NOMEM, "out of memory"); }
    qc_leftovers_sweep(path);
    int fd = mkstemp(o->tmp);
    if (fd < 0) {
        int err = errno;
        free(o->tmp);
        o->tmp = NULL;
        qc_out_abort(o);
        return qc_fail(e, QC_ERR_IO, "%s: cannot create: %s", path, strerror(err));
    }
    qc_lock_try(fd); /* a file just made: free; the lock says "alive" to other runs' sweeps */
    qc_cleanup_add(o->tmp);
    fchmod(fd, 0644);
    o->f = fdopen(fd, "wb");
    if (!o->f) {
        close(fd);
        qc_out_abort(o);
        return qc_fail(e, QC_ERR_IO, "%s: cannot open for writing", path);
    }
    return QC_OK;
}

qc_status qc_out_write(qc_outfile *o, const void *data, size_t n, qc_err *e) {
    if (n && fwrite(data, 1, n, o->f) != n)
        return qc_fail(e, QC_ERR_IO, "%s: write failed: %s", o->path, strerror(errno));
    return QC_OK;
}

qc_status qc_out_printf(qc_outfile *o, qc_err *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vfprintf(o->f, fmt, ap);
    va_end(ap);
    if (r < 0) return qc_fail(e, QC_ERR_IO, "%s: write failed: %s", o->path, strerror(errno));
    return QC_OK;
}

qc_status qc_out_commit(qc_outfile *o, qc_err *e) {
    qc_status st = QC_OK;
    if (fflush(o->f) != 0 || fsync(fileno(o->f)) != 0)
        st = qc_fail(e, QC_ERR_IO, "%s: write failed: %s", o->path, strerror(errno));
    if (fclose(o->f) != 0 && !st)
        st = qc_fail(e, QC_ERR_IO, "%s: close failed: %s", o->path, strerror(errno));
    o->f = NULL;
    if (!st && rename(o->tmp, o->path) != 0)
        st = qc_fail(e, QC_ERR_IO, "%s: cannot rename into place: %s", o->path, strerror(errno));
    if (!st) {
        qc_cleanup_drop(o->tmp);
        free(o->tmp); /* the name is the final one now: a failure below must not unlink it */
        o->tmp = NULL;
        st = sync_parent(o->path, e);
    }
    if (st) {
        qc_out_abort(o);
        return st;
    }
    free(o->tmp);
    free(o->path);
    memset(o, 0, sizeof *o);
    return QC_OK;
}

void qc_out_abort(qc_outfile *o) {
    if (!o) return;
    if (o->f) fclose(o->f);
    if (o->tmp) unlink(o->tmp), qc_cleanup_drop(o->tmp);
    free(o->tmp);
    free(o->path);
    memset(o, 0, sizeof *o);
}

qc_status qc_outdir_check(const char *path, bool replace, const char *const *inputs, int ninputs, qc_err *e) {
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!replace) return qc_fail(e, QC_ERR_IO, "%s: already exists (remove it, or pass --force to replace it)", path);
        qc_status rc = qc_outdir_check_replace(path, inputs, ninputs, e);
        if (rc) return rc;
    }
    char *dir = qc_path_dirname(path);
    if (!dir) return qc_fail(e, QC_ERR_NOMEM, "out of memory");
    qc_status rc = QC_OK;
    int sr = stat(dir, &st), err = errno;
    if (sr != 0 || !S_ISDIR(st.st_mode))
        rc = qc_fail(e, QC_ERR_IO, "%s: its folder %s cannot hold it: %s", path, dir,
                     sr != 0 ? strerror(err) : "not a folder");
    else if (access(dir, W_OK | X_OK) != 0)
        rc = qc_fail(e, QC_ERR_IO, "%s: cannot write in its folder %s: %s", path, dir, strerror(errno));
    free(dir);
    return rc;
}

qc_status qc_outdir_open(qc_outdir *d, const char *path, bool replace, qc_err *e) {
    memset(d, 0, sizeof *d);
    d->path = strndup(path, qc_path_trimmed_len(path)); /* "out/" names the folder "out" */
    d->tmp = d->path ? qc_strdupf("%s.tmp.XXXXXX", d->path) : NULL;
    d->replace = replace;
    if (!d->path || !d->tmp) { qc_outdir_abort(d); return qc_fail(e, QC_ERR_NOMEM, "out of memory"); }
    qc_leftovers_sweep(d->path); /* first: it may put a dead run's moved-aside output back */
    qc_status st = qc_outdir_check(d->path, replace, NULL, 0, e);
    if (st) {
        free(d->tmp);
        d->tmp = NULL;
        qc_outdir_abort(d);
        return st;
    }
    if (!mkdtemp(d->tmp)) {
        int err = errno;
        free(d->tmp);
        d->tmp = NULL;
        qc_outdir_abort(d);
        return qc_fail(e, QC_ERR_IO, "%s: cannot create a folder beside it: %s", path, strerror(err));
    }
    qc_cleanup_add(d->tmp);
    d->lock = open(d->tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d->lock >= 0) qc_lock_try(d->lock);
    chmod(d->tmp, 0755);
    static const char marker[] = "written by qcalib; `--force` may replace this folder as a whole\n";
    st = qc_outdir_put(d, QC_OUTDIR_MARKER, marker, sizeof marker - 1, e);
    if (st) qc_outdir_abort(d);
    return st;
}

char *qc_outdir_file(const qc_outdir *d, const char *name) { return qc_path_join(d->tmp, name); }

qc_status qc_outdir_put(const qc_outdir *d, const char *name, const void *data, size_t len, qc_err *e) {
    char *path = qc_outdir_file(d, name);
    if (!path) return qc_fail(e, QC_ERR_NOMEM, "out of memory");
    qc_outfile f;
    qc_status st = qc_out_open(&f, path, e);
    if (!st) {
        st = qc_out_write(&f, data, len, e);
        st = st ? (qc_out_abort(&f), st) : qc_out_commit(&f, e);
    }
    free(path);
    return st;
}

/* The replace where RENAME_EXCHANGE is missing: the old folder aside, the new one in, no
 * signal acted on between the two; *old names the old folder's new place. */
static qc_status replace_in_two(qc_outdir *d, char **old, qc_err *e) {
    *old = qc_strdupf("%s.old.XXXXXX", d->path);
    if (!*old || !mkdtemp(*old)) {
        int err = errno;
        free(*old);
        *old = NULL;
        return qc_fail(e, QC_ERR_IO, "%s: cannot move the old folder aside: %s", d->path, strerror(err));
    }
    int lock = open(d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* the old folder: alive while moved */
    if (lock >= 0) qc_lock_try(lock);
    qc_status st = QC_OK;
    qc_cleanup_hold();
    if (rename(d->path, *old) != 0) {
        st = qc_fail(e, QC_ERR_IO, "%s: cannot move the old folder aside: %s", d->path, strerror(errno));
        rmdir(*old);
    } else if (rename(d->tmp, d->path) != 0) {
        st = qc_fail(e, QC_ERR_IO, "%s: cannot rename into place: %s", d->path, strerror(errno));
        rename(*old, d->path);
    } else {
        qc_cleanup_drop(d->tmp);
        qc_cleanup_add(*old);
    }
    qc_cleanup_release();
    if (lock >= 0) close(lock);
    if (st) free(*old), *old = NULL;
    return st;
}

qc_status qc_outdir_commit(qc_outdir *d, qc_err *e) {
    qc_status st = QC_OK;
    char *old = NULL;
    if (!qc_path_exists(d->path)) {
        if (rename(d->tmp, d->path) != 0)
            st = qc_fail(e, QC_ERR_IO, "%s: cannot rename into place: %s", d->path, strerror(errno));
        else
            qc_cleanup_drop(d->tmp);
    } else if (!d->replace) {
        st = qc_fail(e, QC_ERR_IO, "%s: appeared while writing; not replaced", d->path);
    } else if (!(st = qc_outdir_check_replace(d->path, NULL, 0, e))) { /* again: it may have changed since */
        if (renameat2(AT_FDCWD, d->tmp, AT_FDCWD, d->path, RENAME_EXCHANGE) == 0)
            old = d->tmp; /* the old folder is at the temporary name now, still registered */
        else if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)
            st = replace_in_two(d, &old, e);
        else
            st = qc_fail(e, QC_ERR_IO, "%s: cannot swap the new folder into place: %s", d->path, strerror(errno));
    }
    if (st) {
        qc_outdir_abort(d);
        return st;
    }
    st = sync_parent(d->path, e); /* the new name durable before the old folder goes */
    if (old) {
        qc_remove_tree(old);
        qc_cleanup_drop(old);
    }
    if (old != d->tmp) free(old);
    if (d->lock >= 0) close(d->lock);
    free(d->tmp);
    free(d->path);
    memset(d, 0, sizeof *d);
    return st;
}

void qc_outdir_abort(qc_outdir *d) {
    if (!d) return;
    if (d->tmp) {
        qc_remove_tree(d->tmp);
        qc_cleanup_drop(d->tmp);
        if (d->lock >= 0) close(d->lock);
    }
    free(d->tmp);
    free(d->path);
    memset(d, 0, sizeof *d);
}
