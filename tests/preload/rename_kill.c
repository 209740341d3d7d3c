/* rename_kill.c — an LD_PRELOAD shim for the e2e tests that kill a run at a chosen moment,
 * compiled by each (tests/lib.sh's preload): it stands between qcalib and libc's rename and
 * renameat2, so the kill lands at the same step on every machine, however fast, from
 * outside the program (nothing in qcalib knows of it).
 *   RENAME_KILL=exchange   SIGKILL right after a successful renameat2(RENAME_EXCHANGE), the
 *                          moment the new folder is in place and the old one not yet removed;
 *                          and right after a rename() moving a folder to "<path>.old.*" (the
 *                          two-rename replace), the moment nothing is at the path.
 *   RENAME_KILL=noexchange renameat2 with RENAME_EXCHANGE fails with EINVAL, as on a
 *                          filesystem without it; the two-rename replace runs to its end.
 *   RENAME_KILL=noexchange-kill  both: no exchange, and SIGKILL after the move aside.
 *   RENAME_KILL=state:N    SIGKILL right after the rename that commits a checkpoint state
 *                          ("<out>.work/state") recording N or more finished blocks: the run
 *                          dies between two blocks, its checkpoints complete.
 *   RENAME_KILL=state:N:rank:R  the same moment in rank 0 of an MPI run (the rank that writes
 *                          the state), but the process killed is rank R, found among rank 0's
 *                          siblings (mpirun's children) by OMPI_COMM_WORLD_RANK.
 *   RENAME_KILL=file:NAME:SIG  the process raises SIG (TERM, INT, KILL or STOP) right after
 *                          the first rename that puts a file named NAME in place: say
 *                          "recipe.json", the output's last file before --eval's evaluation,
 *                          or "state" to stop a run (STOP) between its first two blocks. */
#define _GNU_SOURCE
#include <dirent.h>
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

/* The finished blocks a state file records (calib/resume.c: 8 bytes of magic, then the count). */
static unsigned long long state_blocks(const char *path) {
    unsigned long long n = 0;
    FILE *f = fopen(path, "rb");
    if (f && fseek(f, 8, SEEK_SET) == 0 && fread(&n, sizeof n, 1, f) != 1) n = 0;
    if (f) fclose(f);
    return n;
}

/* Does process pid have env entry want ("NAME=value")? */
static int has_env(const char *pid, const char *want) {
    char path[300], buf[1 << 16];
    snprintf(path, sizeof path, "/proc/%s/environ", pid);
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i += strlen(buf + i) + 1)
        if (strcmp(buf + i, want) == 0) return 1;
    return 0;
}

/* SIGKILL to the sibling (same parent) whose OMPI_COMM_WORLD_RANK is rank. */
static void kill_rank(const char *rank) {
    char want[64], stat[300], line[512];
    snprintf(want, sizeof want, "OMPI_COMM_WORLD_RANK=%s", rank);
    DIR *d = opendir("/proc");
    for (struct dirent *de; d && (de = readdir(d));) {
        if (de->d_name[0] < '1' || de->d_name[0] > '9') continue;
        snprintf(stat, sizeof stat, "/proc/%s/stat", de->d_name);
        FILE *f = fopen(stat, "r");
        const char *after = f && fgets(line, sizeof line, f) ? strrchr(line, ')') : NULL; /* "pid (comm) S ppid" */
        int ppid = -1, sibling = after && sscanf(after + 1, " %*c %d", &ppid) == 1 && ppid == (int)getppid();
        if (f) fclose(f);
        if (sibling && has_env(de->d_name, want)) kill(atoi(de->d_name), SIGKILL);
    }
    if (d) closedir(d);
}

/* RENAME_KILL=state:N[:rank:R] after a successful rename to newpath. */
static void after_state(const char *newpath) {
    unsigned long long n;
    char rank[16] = "";
    const char *slash = strrchr(newpath, '/');
    if (strcmp(slash ? slash + 1 : newpath, "state") != 0) return;
    if (sscanf(mode(), "state:%llu:rank:%15s", &n, rank) < 1 || state_blocks(newpath) < n) return;
    if (rank[0]) kill_rank(rank);
    else raise(SIGKILL);
}

/* RENAME_KILL=file:NAME:SIG after a successful rename to newpath (once per process). */
static void after_file(const char *newpath) {
    static int done;
    char name[256], sig[8];
    const char *slash = strrchr(newpath, '/');
    if (done || sscanf(mode(), "file:%255[^:]:%7s", name, sig) != 2 || strcmp(slash ? slash + 1 : newpath, name) != 0)
        return;
    done = 1;
    raise(strcmp(sig, "TERM") == 0 ? SIGTERM : strcmp(sig, "INT") == 0 ? SIGINT : strcmp(sig, "STOP") == 0 ? SIGSTOP : SIGKILL);
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
    if (r == 0 && strncmp(mode(), "state:", 6) == 0) after_state(newpath);
    if (r == 0 && strncmp(mode(), "file:", 5) == 0) after_file(newpath);
    return r;
}
