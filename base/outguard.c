/* outguard.c — which existing folder a new output may replace (--force). Only a folder qcalib
 * wrote itself: every output folder gets the marker file QC_OUTDIR_MARKER (".qcalib-output",
 * one line of text) as its first file, and a folder without it is not replaced, whatever it
 * holds. Even a marked folder is refused when it is, after resolving symbolic links and "..":
 *   - the root folder or the home folder ($HOME);
 *   - the folder of any input of the run (the model file's folder, a model folder itself, the
 *     calibration and evaluation texts' folders, ...) or a folder containing one.
 * A path that is not a folder (a file, a symbolic link, a device) is never replaced.
 * Single-file outputs (GGUF, llama2.c) cannot carry a marker: --force replaces only a regular
 * file that is not an input of the run (qc_outfile_check_replace); the caller also makes sure
 * it is a model file of the format being written (cli/ opens it as a checkpoint). */
#include "base/base.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Whether folder `outer` (a resolved path) is `inner` or one of its ancestors. */
static bool contains(const char *outer, const char *inner) {
    size_t n = strlen(outer);
    if (strncmp(outer, inner, n) != 0) return false;
    return inner[n] == '\0' || inner[n] == '/' || (n == 1 && outer[0] == '/');
}

/* The resolved folder an input lives in: the input itself when a folder, else its folder. */
static char *input_folder(const char *input) {
    char *real = realpath(input, NULL);
    if (!real) return NULL;
    if (qc_path_is_dir(real)) return real;
    char *dir = qc_path_dirname(real);
    free(real);
    return dir;
}

/* What --force would replace at path, resolved into *real: NULL when nothing is there; else
 * it must be of the given type (S_IFDIR or S_IFREG, named `kind`) and not a symbolic link,
 * the refusal saying what --force replaces (`replaces`). */
static qc_status existing(const char *path, mode_t type, const char *kind, const char *replaces, char **real,
                          qc_err *e) {
    struct stat sb;
    *real = NULL;
    if (lstat(path, &sb) != 0) {
        if (errno == ENOENT) return QC_OK; /* nothing to replace */
        return qc_fail(e, QC_ERR_IO, "%s: cannot be examined: %s", path, strerror(errno));
    }
    if (S_ISLNK(sb.st_mode))
        return qc_fail(e, QC_ERR_ARG, "%s: is a symbolic link; --force replaces only %s", path, replaces);
    if ((sb.st_mode & S_IFMT) != type)
        return qc_fail(e, QC_ERR_ARG, "%s: exists and is not a %s; --force replaces only %s", path, kind, replaces);
    if (!(*real = realpath(path, NULL))) return qc_fail(e, QC_ERR_IO, "%s: cannot be resolved: %s", path, strerror(errno));
    return QC_OK;
}

qc_status qc_outdir_check_replace(const char *path, const char *const *inputs, int ninputs, qc_err *e) {
    char *real;
    qc_status st = existing(path, S_IFDIR, "folder", "a folder qcalib wrote", &real, e);
    if (st || !real) return st;
    const char *home = getenv("HOME");
    char *home_real = home && *home ? realpath(home, NULL) : NULL;
    if (strcmp(real, "/") == 0)
        st = qc_fail(e, QC_ERR_ARG, "%s: is the root folder; --force will not replace it", path);
    else if (home_real && strcmp(real, home_real) == 0)
        st = qc_fail(e, QC_ERR_ARG, "%s: is the home folder; --force will not replace it", path);
    for (int i = 0; i < ninputs && !st; i++) {
        if (!inputs[i]) continue;
        char *in = input_folder(inputs[i]);
        if (in && contains(real, in))
            st = qc_fail(e, QC_ERR_ARG, "%s: holds %s, an input of this run (in %s); --force will not replace it",
                         path, inputs[i], in);
        free(in);
    }
    if (!st) {
        char *marker = qc_path_join(real, QC_OUTDIR_MARKER);
        struct stat sb;
        if (!marker) st = qc_fail(e, QC_ERR_NOMEM, "out of memory");
        else if (lstat(marker, &sb) != 0 || !S_ISREG(sb.st_mode))
            st = qc_fail(e, QC_ERR_ARG, "%s: not a folder qcalib wrote (it has no %s); --force replaces only qcalib's "
                         "own output folders: remove it yourself, or choose another --out", path, QC_OUTDIR_MARKER);
        free(marker);
    }
    free(home_real);
    free(real);
    return st;
}

qc_status qc_outfile_check_replace(const char *path, const char *const *inputs, int ninputs, qc_err *e) {
    char *real;
    qc_status st = existing(path, S_IFREG, "regular file", "a model file qcalib can read", &real, e);
    if (st || !real) return st;
    for (int i = 0; i < ninputs && !st; i++) {
        char *in = inputs[i] ? realpath(inputs[i], NULL) : NULL;
        if (in && strcmp(in, real) == 0)
            st = qc_fail(e, QC_ERR_ARG, "%s: is %s, an input of this run; --force will not replace it", path, inputs[i]);
        free(in);
    }
    free(real);
    return st;
}
