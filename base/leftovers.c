/* leftovers.c — what a run leaves behind when it is stopped, and what it finds of runs that
 * died. Three parts:
 *
 * - A registry of the temporaries this process has made (qc_outfile's and qc_outdir's
 *   "<path>.tmp.XXXXXX", a work folder with nothing in it yet). SIGINT, SIGTERM and SIGHUP
 *   (unless ignored when the process started, as under nohup) remove every registered path,
 *   then end the process as the signal would have (exit status 128 + signal). The handler
 *   uses only async-signal-safe calls (open, getdents64, unlinkat, close, raise): no
 *   allocation, no stdio. The registry is a fixed table of path copies, so
 *   registering never allocates either; a path beyond the table (64 at once) or PATH_MAX is
 *   simply not registered, the sweep below still finds it after the process ends. While a
 *   caller holds the registry (qc_cleanup_hold, around the two renames of a replace on a
 *   filesystem without RENAME_EXCHANGE) a signal is only noted and acted on at
 *   qc_cleanup_release, so it cannot strike between the renames.
 *
 * - Liveness by lock: every temporary is flock'ed (LOCK_EX) by the process writing it for as
 *   long as it writes it (a file until it is closed, just before its rename); the kernel
 *   drops the lock when the process dies, SIGKILL included. A temporary whose lock can be
 *   taken therefore belongs to a dead process (or to one done with it).
 *
 * - The sweep: before writing <path>, the folder holding it is searched for "<name>.tmp.XXXXXX"
 *   and "<name>.old.XXXXXX" entries (six characters of mkstemp's alphabet, nothing else);
 *   each whose lock can be taken is a dead run's and is removed,
 *   except an ".old." folder when nothing is at <path>: that is a previous output that a dead
 *   run had moved aside for a replace (filesystems without RENAME_EXCHANGE), and it is
 *   renamed back to <path>. */
#include "base/base.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SLOTS 64
#define MAX_DEPTH 8 /* output folders are flat; a deeper tree is left for the sweep */

enum { SLOT_FREE, SLOT_FILLING, SLOT_READY };

static struct {
    atomic_int state;
    char path[PATH_MAX];
} slots[SLOTS];

static atomic_int held, pending;

void qc_cleanup_add(const char *path) {
    size_t n = strlen(path);
    if (n >= PATH_MAX) return;
    for (int i = 0; i < SLOTS; i++) {
        int expect = SLOT_FREE;
        if (atomic_compare_exchange_strong(&slots[i].state, &expect, SLOT_FILLING)) {
            memcpy(slots[i].path, path, n + 1);
            atomic_store(&slots[i].state, SLOT_READY);
            return;
        }
    }
}

void qc_cleanup_drop(const char *path) {
    for (int i = 0; i < SLOTS; i++)
        if (atomic_load(&slots[i].state) == SLOT_READY && strcmp(slots[i].path, path) == 0) {
            atomic_store(&slots[i].state, SLOT_FREE);
            return;
        }
}

/* linux_dirent64, as getdents64 fills it */
struct dirent64_raw {
    uint64_t ino;
    int64_t off;
    unsigned short reclen;
    unsigned char type;
    char name[];
};

/* Removes name (a file, or a folder with its contents) relative to dirfd; async-signal-safe. */
static void remove_at(int dirfd, const char *name, int depth) {
    if (unlinkat(dirfd, name, 0) == 0 || (errno != EISDIR && errno != EPERM)) return;
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return;
    bool removed = depth < MAX_DEPTH;
    /* entries removed while reading may make getdents skip some: read again until a pass
     * removes nothing */
    for (int pass = 0; removed && pass < 4; pass++) {
        removed = false;
        char buf[4096];
        long n;
        lseek(fd, 0, SEEK_SET);
        while ((n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0)
            for (long off = 0; off < n;) {
                struct dirent64_raw *de = (struct dirent64_raw *)(buf + off);
                off += de->reclen;
                if (strcmp(de->name, ".") == 0 || strcmp(de->name, "..") == 0) continue;
                remove_at(fd, de->name, depth + 1);
                removed = true;
            }
    }
    close(fd);
    unlinkat(dirfd, name, AT_REMOVEDIR);
}

void qc_remove_tree(const char *path) { remove_at(AT_FDCWD, path, 0); }

void qc_cleanup_run(void) {
    for (int i = 0; i < SLOTS; i++)
        if (atomic_load(&slots[i].state) == SLOT_READY) {
            remove_at(AT_FDCWD, slots[i].path, 0);
            atomic_store(&slots[i].state, SLOT_FREE);
        }
}

static void on_signal(int sig) {
    if (atomic_load(&held)) {
        atomic_store(&pending, sig);
        return;
    }
    int saved = errno;
    qc_cleanup_run();
    signal(sig, SIG_DFL);
    raise(sig);
    errno = saved;
}

void qc_cleanup_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaddset(&sa.sa_mask, SIGHUP);
    const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
    for (int i = 0; i < 3; i++) {
        struct sigaction was;
        /* a signal ignored on entry stays ignored (nohup, a background job of a script) */
        if (sigaction(sigs[i], NULL, &was) == 0 && was.sa_handler != SIG_IGN) sigaction(sigs[i], &sa, NULL);
    }
}

void qc_cleanup_hold(void) { atomic_store(&held, 1); }

void qc_cleanup_release(void) {
    atomic_store(&held, 0);
    int sig = atomic_exchange(&pending, 0);
    if (sig) raise(sig);
}

/* ---- liveness and the sweep ---------------------------------------------------------------- */

bool qc_lock_try(int fd) { return flock(fd, LOCK_EX | LOCK_NB) == 0; }

/* Whether the entry `name` of dir (a temporary of a dead run) could be locked; its fd, still
 * holding the lock, into *fd (-1 if it could not be opened: gone already, or not ours). */
static bool dead_entry(const char *path, int *fd) {
    *fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (*fd < 0) return false;
    if (qc_lock_try(*fd)) return true;
    close(*fd);
    *fd = -1;
    return false;
}

/* Whether s is "<name>.<kind>.XXXXXX", the XXXXXX six characters of mkstemp's alphabet. */
static bool temp_name(const char *s, const char *name, size_t len, const char *kind) {
    if (strncmp(s, name, len) != 0 || strncmp(s + len, kind, 5) != 0 || strlen(s + len + 5) != 6) return false;
    for (const char *c = s + len + 5; *c; c++)
        if (!(*c >= 'a' && *c <= 'z') && !(*c >= 'A' && *c <= 'Z') && !(*c >= '0' && *c <= '9')) return false;
    return true;
}

int qc_leftovers_sweep(const char *out) {
    char *path = strndup(out, qc_path_trimmed_len(out)), *dir = path ? qc_path_dirname(path) : NULL;
    const char *slash = path ? strrchr(path, '/') : NULL;
    const char *name = slash ? slash + 1 : path;
    size_t len = name ? strlen(name) : 0;
    int swept = 0;
    DIR *d = dir && len ? opendir(dir) : NULL;
    for (struct dirent *de; d && (de = readdir(d));) {
        bool tmp = temp_name(de->d_name, name, len, ".tmp."), old = temp_name(de->d_name, name, len, ".old.");
        if (!tmp && !old) continue;
        char *p = qc_path_join(dir, de->d_name);
        int fd;
        if (p && dead_entry(p, &fd)) {
            struct stat sb;
            if (old && lstat(path, &sb) != 0 && errno == ENOENT && rename(p, path) == 0) swept++;
            else remove_at(AT_FDCWD, p, 0), swept++;
            close(fd);
        }
        free(p);
    }
    if (d) closedir(d);
    free(dir);
    free(path);
    return swept;
}
