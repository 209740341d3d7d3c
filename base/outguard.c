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

qc_status qc_outdir_check_replace(const char *path, const char *const *inputs, int ninputs, qc_err *e) {
    struct stat sb;
    if (lstat(path, &sb) != 0) {
        if (errno == ENOENT) return QC_OK; /* nothing to replace */
        return qc_fail(e, QC_ERR_IO, "%s: cannot be examined: %s", path, strerror(errno));
    }
    if (S_ISLNK(sb.st_mode))
        return qc_fail(e, QC_ERR_ARG, "%s: is a symbolic link; --force replaces only a folder qcalib wrote", path);
    if (!S_ISDIR(sb.st_mode))
        return qc_fail(e, QC_ERR_ARG, "%s: exists and is not a folder; --force replaces only a folder qcalib wrote", path);
    char *real = realpath(path, NULL);
    if (!real) return qc_fail(e, QC_ERR_IO, "%s: cannot be resolved: %s", path, strerror(errno));
    qc_status st = QC_OK;
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
    struct stat sb;
    if (lstat(path, &sb) != 0) {
        if (errno == ENOENT) return QC_OK; /* nothing to replace */
        return qc_fail(e, QC_ERR_IO, "%s: cannot be examined: %s", path, strerror(errno));
    }
    if (S_ISLNK(sb.st_mode))
        return qc_fail(e, QC_ERR_ARG, "%s: is a symbolic link; --force replaces only a model file qcalib can read", path);
    if (!S_ISREG(sb.st_mode))
        return qc_fail(e, QC_ERR_ARG, "%s: exists and is not a regular file; --force replaces only a model file", path);
    char *real = realpath(path, NULL);
    if (!real) return qc_fail(e, QC_ERR_IO, "%s: cannot be resolved: %s", path, strerror(errno));
    qc_status st = QC_OK;
    for (int i = 0; i < ninputs && !st; i++) {
        char *in = inputs[i] ? realpath(inputs[i], NULL) : NULL;
        if (in && strcmp(in, real) == 0)
            st = qc_fail(e, QC_ERR_ARG, "%s: is %s, an input of this run; --force will not replace it", path, inputs[i]);
        free(in);
    }
    free(real);
    return st;
}
