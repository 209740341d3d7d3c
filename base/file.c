/* file.c — read-only mappings, whole-file reads with a size limit, and path helpers. */
#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static qc_status open_regular(const char *path, int *fd, size_t *size, qc_err *e) {
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) return qc_fail(e, QC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(*fd, &st) != 0) {
        int err = errno;
        close(*fd);
        return qc_fail(e, QC_ERR_IO, "%s: cannot stat: %s", path, strerror(err));
    }
    if (S_ISDIR(st.st_mode)) {
        close(*fd);
        return qc_fail(e, QC_ERR_IO, "%s: is a directory, expected a file", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(*fd);
        return qc_fail(e, QC_ERR_IO, "%s: not a regular file", path);
    }
    *size = (size_t)st.st_size;
    return QC_OK;
}

qc_status qc_map_open(qc_map *m, const char *path, qc_err *e) {
    memset(m, 0, sizeof *m);
    int fd;
    size_t size = 0;
    qc_status st = open_regular(path, &fd, &size, e);
    if (st) return st;
    m->path = qc_strdup(path, e);
    if (!m->path) { close(fd); return QC_ERR_NOMEM; }
    m->size = size;
    if (size > 0) {
        void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int err = errno;
            close(fd);
            qc_map_close(m);
            return qc_fail(e, QC_ERR_IO, "%s: cannot map: %s", path, strerror(err));
        }
        m->data = p;
    }
    close(fd);
    return QC_OK;
}

void qc_map_close(qc_map *m) {
    if (!m) return;
    if (m->data) munmap((void *)m->data, m->size);
    free(m->path);
    memset(m, 0, sizeof *m);
}

void qc_map_release(const void *p, size_t n) {
    if (!p || !n) return;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)p / page * page, end = ((uintptr_t)p + n + page - 1) / page * page;
    madvise((void *)a, end - a, MADV_DONTNEED); /* advice: a failure only leaves the pages resident */
}

qc_status qc_read_file(const char *path, size_t max_size, char **buf, size_t *len, qc_err *e) {
    *buf = NULL;
    *len = 0;
    int fd;
    size_t size = 0;
    qc_status st = open_regular(path, &fd, &size, e);
    if (st) return st;
    if (size > max_size) {
        close(fd);
        return qc_fail(e, QC_ERR_FORMAT, "%s: %zu bytes, more than the %zu allowed for this kind of file",
                       path, size, max_size);
    }
    char *b = qc_malloc(size + 1, 1, e, path);
    if (!b) { close(fd); return QC_ERR_NOMEM; }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, b + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int err = r < 0 ? errno : 0;
            close(fd);
            free(b);
            return qc_fail(e, QC_ERR_IO, "%s: read failed: %s", path,
                           err ? strerror(err) : "file shrank while reading");
        }
        got += (size_t)r;
    }
    close(fd);
    b[size] = '\0';
    *buf = b;
    *len = size;
    return QC_OK;
}

bool qc_path_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool qc_path_exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

qc_status qc_path_check_readable(const char *path, qc_err *e) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return qc_fail(e, QC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    bool dir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
    close(fd);
    return dir ? qc_fail(e, QC_ERR_IO, "%s: is a folder, not a file", path) : QC_OK;
}

char *qc_path_join(const char *dir, const char *name) {
    size_t n = strlen(dir);
    return qc_strdupf("%s%s%s", dir, (n && dir[n - 1] == '/') ? "" : "/", name);
}

size_t qc_path_trimmed_len(const char *path) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    return n;
}

char *qc_path_dirname(const char *path) {
    size_t n = qc_path_trimmed_len(path); /* "out/" is the folder "out", in "." */
    const char *slash = memrchr(path, '/', n);
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

bool qc_str_ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

void qc_str_first_difference(const char *a, const char *b, char *la, char *lb, size_t size) {
    while (*a || *b) {
        size_t na = strcspn(a, "\n"), nb = strcspn(b, "\n");
        if (na != nb || memcmp(a, b, na) != 0) {
            snprintf(la, size, "%.*s", (int)na, a);
            snprintf(lb, size, "%.*s", (int)nb, b);
            return;
        }
        a += na + (a[na] == '\n');
        b += nb + (b[nb] == '\n');
    }
    snprintf(la, size, "(the same)");
    snprintf(lb, size, "(the same)");
}
