/* common.c — the fuzz targets' scratch files and the full read of an opened checkpoint. */
#include "fuzz/fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static _Noreturn void die(const char *what, const char *path) {
    fprintf(stderr, "fuzz: %s %s: %s\n", what, path, strerror(errno));
    abort();
}

const char *fuzz_dir(void) {
    static char dir[512];
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/qcalib-fuzz.XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(dir)) die("cannot create", dir);
    }
    return dir;
}

const char *fuzz_write(const char *name, const uint8_t *data, size_t size) {
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f)) die("cannot write", path);
    return path;
}

const char *fuzz_fixture(const char *name) {
    static char path[1024];
    const char *root = getenv("QCALIB_FUZZ_FIXTURES");
    snprintf(path, sizeof path, "%s/%s", root && *root ? root : "build-fuzz/fixtures", name);
    if (!qc_path_exists(path)) {
        fprintf(stderr, "fuzz: fixture %s missing: build it with `make fuzz` (fuzz/seeds)\n", path);
        abort();
    }
    return path;
}

const char *fuzz_dir_with_fixture(const char *sub, const char *fixture, const char *skip) {
    static char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", fuzz_dir(), sub);
    if (qc_path_is_dir(dir)) return dir;
    if (mkdir(dir, 0755)) die("cannot create", dir);
    const char *from = fuzz_fixture(fixture);
    DIR *d = opendir(from);
    if (!d) die("cannot list", from);
    for (struct dirent *de; (de = readdir(d));) {
        if (de->d_name[0] == '.' || !strcmp(de->d_name, skip)) continue;
        char src[1024], dst[1024];
        snprintf(src, sizeof src, "%s/%s", from, de->d_name);
        snprintf(dst, sizeof dst, "%s/%s", dir, de->d_name);
        char *abs = realpath(src, NULL);
        if (!abs || symlink(abs, dst)) die("cannot link", dst);
        free(abs);
    }
    closedir(d);
    return dir;
}

int fuzz_read_checkpoint(const qc_checkpoint *ck) {
    const qc_config *c = qc_checkpoint_config(ck);
    int ok = 0;
    for (int l = 0; l < c->n_layers; l++)
        for (int w = 0; w < QC_W_COUNT; w++) {
            if ((qc_weight_is_global((qc_weight)w) && l > 0) || !qc_weight_present(c, (qc_weight)w)) continue;
            int rows, cols;
            qc_weight_shape(c, (qc_weight)w, &rows, &cols);
            qc_err e;
            float *buf = qc_malloc((size_t)rows * (size_t)cols, sizeof *buf, &e, "fuzz");
            if (!buf) continue;
            ok += qc_checkpoint_read(ck, (qc_weight)w, l, buf, &e) == QC_OK;
            if (w == QC_W_EMBED || w == QC_W_CLASSIFIER) /* the row reader, one row at a time */
                for (int r = 0; r < rows; r++) ok += qc_checkpoint_read_rows(ck, (qc_weight)w, r, 1, buf, &e) == QC_OK;
            free(buf);
        }
    return ok;
}

void fuzz_checkpoint(const char *path) {
    qc_checkpoint *ck = NULL;
    qc_err e;
    if (qc_checkpoint_open(&ck, path, &e) == QC_OK) {
        fuzz_read_checkpoint(ck);
        qc_tokenizer t;
        if (qc_checkpoint_tokenizer(ck, &t, &e) == QC_OK) qc_tokenizer_free(&t);
    }
    qc_checkpoint_close(ck);
}

void fuzz_tokenizer_use(const qc_tokenizer *t, const char *text, size_t len) {
    int32_t *ids;
    size_t n;
    qc_err e;
    if (qc_tokenizer_encode(t, text, len, true, true, &ids, &n, &e) == QC_OK) {
        char *back;
        size_t blen;
        if (qc_tokenizer_decode(t, t->bos_id, ids, n, &back, &blen, &e) == QC_OK) free(back);
        free(ids);
    }
    for (int32_t id = -1; id <= t->vocab_size; id++) {
        char byte[2];
        size_t plen;
        (void)qc_tokenizer_piece(t, t->bos_id, id, byte, &plen);
        if (id >= 0 && id < t->vocab_size) (void)qc_tokenizer_token_type(t, id);
    }
}
