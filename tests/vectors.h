/* vectors.h — reading the reference test vectors ($QCALIB_TESTVECTORS, default
 * ../shared/testvectors; README.md there): a case's case.json and its raw little-endian
 * arrays, each checked against its declared dtype and shape. For the AWQ and SmoothQuant
 * tests; include after tests/check.h. */
#ifndef QC_TEST_VECTORS_H
#define QC_TEST_VECTORS_H

#include "base/base.h"

#include <cjson/cJSON.h>

static inline const char *vectors_dir(void) {
    const char *d = getenv("QCALIB_TESTVECTORS");
    return d && *d ? d : shared_path("testvectors");
}

typedef struct tv_case {
    char dir[1024];
    cJSON *json;
    const cJSON *options, *arrays, *scalars;
} tv_case;

/* Opens case `name` (e.g. "awq/L0.mlp_w4_g32"); false (with a failed CHECK) if it cannot. */
static inline bool tv_open(tv_case *c, const char *name) {
    memset(c, 0, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "%s/%s", vectors_dir(), name);
    char *path = qc_path_join(c->dir, "case.json"), *text = NULL;
    size_t len;
    qc_err e = { "" };
    CHECK_OK(qc_read_file(path, 1 << 20, &text, &len, &e), e);
    free(path);
    c->json = text ? cJSON_Parse(text) : NULL;
    free(text);
    CHECK(c->json != NULL, "%s: case.json parses", name);
    if (!c->json) return false;
    c->options = cJSON_GetObjectItemCaseSensitive(c->json, "options");
    c->arrays = cJSON_GetObjectItemCaseSensitive(c->json, "arrays");
    c->scalars = cJSON_GetObjectItemCaseSensitive(c->json, "scalars");
    return c->arrays != NULL;
}

static inline void tv_close(tv_case *c) { cJSON_Delete(c->json); }

/* Dimension k of array `name`'s shape (0 if absent). */
static inline int tv_dim(const tv_case *c, const char *name, int k) {
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c->arrays, name), "shape");
    const cJSON *d = cJSON_GetArrayItem(sh, k);
    return cJSON_IsNumber(d) ? d->valueint : 0;
}

/* Array `name` (dtype "f32" or "u8"), its element count in *count; NULL (a failed CHECK)
 * when absent or when the file's size is not the shape's. */
static inline void *tv_array(const tv_case *c, const char *name, const char *dtype, size_t *count) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(c->arrays, name);
    const cJSON *file = cJSON_GetObjectItemCaseSensitive(a, "file"), *dt = cJSON_GetObjectItemCaseSensitive(a, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(a, "shape"), *d;
    bool ok = cJSON_IsString(file) && cJSON_IsString(dt) && cJSON_IsArray(shape) && strcmp(dt->valuestring, dtype) == 0;
    CHECK(ok, "%s: array %s described with dtype %s", c->dir, name, dtype);
    if (!ok) return NULL;
    size_t n = 1, el = strcmp(dtype, "u8") == 0 ? 1 : 4;
    cJSON_ArrayForEach(d, shape) n *= cJSON_IsNumber(d) && d->valuedouble >= 0 ? (size_t)d->valuedouble : 0;
    char *path = qc_path_join(c->dir, file->valuestring), *buf = NULL;
    size_t len = 0;
    qc_err e = { "" };
    qc_status st = qc_read_file(path, (size_t)1 << 30, &buf, &len, &e);
    CHECK(st == QC_OK && len == n * el, "%s: %s (%zu bytes, shape says %zu)", path, e.msg, len, n * el);
    free(path);
    if (st || len != n * el) {
        free(buf);
        return NULL;
    }
    if (count) *count = n;
    return buf;
}

static inline double tv_scalar(const tv_case *c, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->scalars, name);
    CHECK(cJSON_IsNumber(v), "%s: scalar %s", c->dir, name);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* manifest.json parsed (NULL, with a failed CHECK, if it cannot be). */
static inline cJSON *tv_manifest(void) {
    char *path = qc_path_join(vectors_dir(), "manifest.json"), *text = NULL;
    size_t len;
    qc_err e = { "" };
    CHECK_OK(qc_read_file(path, 1 << 24, &text, &len, &e), e);
    free(path);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    free(text);
    CHECK(root != NULL, "manifest.json parses");
    return root;
}

/* Runs run(name) for each of a family's cases listed in manifest.json; returns how many. */
static inline int tv_run_cases(const char *family, void (*run)(const char *name)) {
    cJSON *root = tv_manifest();
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "cases"), family), *it;
    CHECK(cJSON_IsArray(list) && cJSON_GetArraySize(list) > 0, "manifest.json lists %s cases", family);
    int n = 0;
    cJSON_ArrayForEach(it, list) {
        if (cJSON_IsString(it)) run(it->valuestring), n++;
    }
    cJSON_Delete(root);
    return n;
}

/* The number of a family's cases manifest.json's "counts" declares (-1, with a failed CHECK,
 * if none). */
static inline int tv_manifest_count(const char *family) {
    cJSON *root = tv_manifest();
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "counts"), family);
    CHECK(cJSON_IsNumber(v), "manifest.json counts %s cases", family);
    int n = cJSON_IsNumber(v) ? v->valueint : -1;
    cJSON_Delete(root);
    return n;
}

/* max |a − b| / max(|b|, tiny) over n values. */
static inline double tv_max_rel(const float *a, const float *b, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]) / (fabs((double)b[i]) > 1e-30 ? fabs((double)b[i]) : 1.0);
        m = d > m ? d : m;
    }
    return m;
}

#endif
