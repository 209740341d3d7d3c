/* rename_kill.c — an LD_PRELOAD shim for tests/e2e/quantize_force.sh, compiled by that test: it stands
 * between qcalib and libc's rename and renameat2 to put a replace of an output folder in the
 * worst cases, from outside the program (nothing in qcalib knows of it).
 *   RENAME_KILL=exchange   SIGKILL right after a successful renameat2(RENAME_EXCHANGE), the
 *                          moment the new folder is in place and the old one not yet removed;
 *                          and right after a rename() moving a folder to "<path>.old.*" (the
 *                          two-rename replace), the moment nothing is at the path.
 *   RENAME_KILL=noexchange renameat2 with RENAME_EXCHANGE fails with EINVAL, as on a
 *                          filesystem without it; the two-rename replace runs to its end.
 *   RENAME_KILL=noexchange-kill  both: no exchange, and SIGKILL after the move aside. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *mode(void) {
    const char *m = getenv("RENAME_KILL");
    return m ? m : "";
}

int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags) {
    if ((flags & RENAME_EXCHANGE) && strncmp(mode(), "noexchange", 10) == 0) {
        errno = EINVAL;
        return -1;
    }
    int (*real)(int, const char *, int, const char *, unsigned int) = dlsym(RTLD_NEXT, "renameat2");
    int r = real(olddirfd, oldpath, newdirfd, newpath, flags);
    if (r == 0 && (flags & RENAME_EXCHANGE) && strcmp(mode(), "exchange") == 0) raise(SIGKILL);
    return r;
}

int rename(const char *oldpath, const char *newpath) {
    int (*real)(const char *, const char *) = dlsym(RTLD_NEXT, "rename");
    int r = real(oldpath, newpath);
    int aside = r == 0 && strstr(newpath, ".old.") != NULL;
    if (aside && (strcmp(mode(), "exchange") == 0 || strcmp(mode(), "noexchange-kill") == 0)) raise(SIGKILL);
    return r;
}
