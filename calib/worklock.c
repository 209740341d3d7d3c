/* worklock.c — who owns a work folder "<out>.work" (calib/resume.c): the file "lock" inside
 * it, flock'ed (LOCK_EX) by the run using the folder and holding that run's pid as text. The
 * kernel drops the lock when the run ends, however it ends, so a lock that cannot be taken
 * means a live run writes the same output; one that can is free, whatever pid it records.
 * Also: emptying a folder whose run left nothing worth resuming, and discarding one
 * (--restart). */
#include "calib/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOCK_NAME "lock"

qc_status qc_work_lock(const char *dir, int *fd, qc_err *e) {
    *fd = -1;
    char *path = qc_path_join(dir, LOCK_NAME);
    if (!path) return qc_fail(e, QC_ERR_NOMEM, "out of memory");
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    qc_status st = QC_OK;
    if (f < 0) {
        st = qc_fail(e, QC_ERR_IO, "%s: cannot open the work folder's lock: %s", path, strerror(errno));
    } else if (!qc_lock_try(f)) {
        char pid[32] = "";
        ssize_t n = pread(f, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        st = qc_fail(e, QC_ERR_IO, "%s: in use by another qcalib run (pid %s) writing the same output; wait for it "
                     "to end, or stop it", dir, *pid ? pid : "unknown");
    } else {
        char pid[32];
        int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
        if (ftruncate(f, 0) != 0 || pwrite(f, pid, (size_t)n, 0) != n)
            st = qc_fail(e, QC_ERR_IO, "%s: cannot record this run's pid: %s", path, strerror(errno));
    }
    if (st && f >= 0) close(f);
    else *fd = f;
    free(path);
    return st;
}

void qc_work_clear(const char *dir) {
    DIR *d = opendir(dir);
    for (struct dirent *de; d && (de = readdir(d));) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || !strcmp(de->d_name, LOCK_NAME)) continue;
        char *p = qc_path_join(dir, de->d_name);
        if (p) qc_remove_tree(p);
        free(p);
    }
    if (d) closedir(d);
}

qc_status qc_resume_discard(const char *out, qc_err *e) {
    char *dir = qc_strdupf("%.*s.work", (int)qc_path_trimmed_len(out), out);
    if (!dir) return qc_fail(e, QC_ERR_NOMEM, "out of memory");
    int fd = -1;
    qc_status st = qc_path_is_dir(dir) ? qc_work_lock(dir, &fd, e) : QC_OK;
    if (!st && fd >= 0) {
        qc_work_clear(dir);
        char *lock = qc_path_join(dir, LOCK_NAME);
        if (lock) unlink(lock);
        free(lock);
        if (rmdir(dir) != 0) st = qc_fail(e, QC_ERR_IO, "%s: cannot remove it: %s", dir, strerror(errno));
        close(fd);
    }
    free(dir);
    return st;
}
