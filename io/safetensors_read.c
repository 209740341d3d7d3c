/* safetensors_read.c — the safetensors reader. The file is mapped, the header validated in full,
 * and each tensor described by a pointer into the mapping (nothing is copied).
 *
 * Layout (all little endian):
 *   bytes [0, 8)        u64 N, the header length
 *   bytes [8, 8+N)      JSON object, not NUL-terminated, possibly padded with trailing spaces:
 *                         {"name": {"dtype": "F32", "shape": [d0, d1, ...],
 *                                   "data_offsets": [begin, end]}, ...,
 *                          "__metadata__": {"key": "value", ...}}   (optional)
 *   bytes [8+N, size)   the data; tensor `name` is bytes [8+N+begin, 8+N+end)
 *
 * Checked before anything is trusted: N against the file and QC_ST_MAX_HEADER; the JSON;
 * for every tensor a known dtype, at most QC_ST_MAX_DIMS non-negative integral dims whose
 * product (times the dtype size) does not overflow and equals end - begin, integral offsets
 * with begin <= end <= data size; no name twice (cJSON keeps duplicate keys, so this is
 * checked after sorting); no two tensors' byte ranges overlapping; every "__metadata__"
 * value a string. Gaps between tensors are tolerated (the reference writer leaves none, but
 * nothing here depends on it).
 *
 * "__metadata__" entries are kept (sorted by key): besides free-form notes ("format": "pt"),
 * an entry whose key is a tensor name the file does not store is an alias of the tensor its
 * value names (qc_safetensors_lookup), the way safetensors' save_model writes a shared tensor once. */
#include "io/internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The largest integer a JSON number (a double, in cJSON) holds exactly. */
#define JSON_MAX_EXACT 9007199254740992.0 /* 2^53 */

static bool json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= JSON_MAX_EXACT) || d != floor(d)) return false;
    *out = (uint64_t)d;
    return true;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const qc_safetensors_tensor *)a)->name, ((const qc_safetensors_tensor *)b)->name);
}

static int cmp_data(const void *a, const void *b) {
    const qc_safetensors_tensor *x = *(const qc_safetensors_tensor *const *)a, *y = *(const qc_safetensors_tensor *const *)b;
    if (x->data != y->data) return x->data < y->data ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

/* Fills t from one header entry; data is the start of the data section, dsize its size. */
static qc_status parse_tensor(const char *file, const cJSON *entry, const uint8_t *data,
                              size_t dsize, qc_safetensors_tensor *t, qc_err *e) {
    const char *name = entry->string;
    if (!cJSON_IsObject(entry))
        return qc_fail(e, QC_ERR_FORMAT, "%s: tensor '%s': header entry is not a JSON object", file, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(entry, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    if (!cJSON_IsString(dt))
        return qc_fail(e, QC_ERR_FORMAT, "%s: tensor '%s': missing or non-string \"dtype\"", file, name);
    if (!qc_dtype_parse(dt->valuestring, &t->dtype))
        return qc_fail(e, QC_ERR_FORMAT, "%s: tensor '%s': unknown dtype \"%s\"", file, name,
                       dt->valuestring);
    if (!cJSON_IsArray(shape))
        return qc_fail(e, QC_ERR_FORMAT, "%s: tensor '%s': missing or non-array \"shape\"", file, name);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > QC_ST_MAX_DIMS)
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: tensor '%s': %d dimensions, more than the %d supported",
                       file, name, ndim, QC_ST_MAX_DIMS);
    t->ndim = ndim;
    size_t count = 1;
    int k = 0;
    for (const cJSON *d = shape->child; d; d = d->next, k++) {
        uint64_t v;
        if (!json_uint(d, &v) || v > INT64_MAX)
            return qc_fail(e, QC_ERR_FORMAT, "%s: tensor '%s': shape[%d] is not a non-negative integer",
                           file, name, k);
        t->shape[k] = (int64_t)v;
        if (v > SIZE_MAX || !qc_mul_size(count, (size_t)v, &count))
            return qc_fail(e, QC_ERR_FORMAT, "%s: tensor '%s': shape overflows", file, name);
    }
    if (!qc_mul_size(count, qc_dtype_size(t->dtype), &t->nbytes))
        return qc_fail(e, QC_ERR_FORMAT, "%s: tensor '%s': shape overflows", file, name);
    uint64_t begin, end;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || !json_uint(offs->child, &begin) ||
        !json_uint(offs->child->next, &end))
        return qc_fail(e, QC_ERR_FORMAT,
                       "%s: tensor '%s': \"data_offsets\" must be two non-negative integers [begin, end]",
                       file, name);
    if (end < begin)
        return qc_fail(e, QC_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] end before begin",
                       file, name, (unsigned long long)begin, (unsigned long long)end);
    if (end > dsize)
        return qc_fail(e, QC_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets [%llu, %llu] past the end of the data (%zu bytes)",
                       file, name, (unsigned long long)begin, (unsigned long long)end, dsize);
    if (end - begin != t->nbytes)
        return qc_fail(e, QC_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes, but %s shape needs %zu",
                       file, name, (unsigned long long)begin, (unsigned long long)end,
                       (unsigned long long)(end - begin), qc_dtype_name(t->dtype), t->nbytes);
    t->data = data + begin;
    return QC_OK;
}

static int cmp_meta(const void *a, const void *b) {
    return strcmp(((const qc_safetensors_meta *)a)->key, ((const qc_safetensors_meta *)b)->key);
}

/* Checks "__metadata__" and keeps its entries in f->meta, sorted by key. */
static qc_status read_metadata(qc_safetensors_file *f, const cJSON *meta, qc_err *e) {
    const char *file = f->map.path;
    if (!cJSON_IsObject(meta))
        return qc_fail(e, QC_ERR_FORMAT, "%s: \"__metadata__\" is not a JSON object", file);
    if (f->meta)
        return qc_fail(e, QC_ERR_FORMAT, "%s: \"__metadata__\" appears twice in the header", file);
    int n = cJSON_GetArraySize(meta);
    if (n == 0) return QC_OK;
    f->meta = qc_calloc((size_t)n, sizeof *f->meta, e, file);
    if (!f->meta) return QC_ERR_NOMEM;
    for (const cJSON *m = meta->child; m; m = m->next) {
        if (!cJSON_IsString(m))
            return qc_fail(e, QC_ERR_FORMAT, "%s: \"__metadata__\" entry '%s' is not a string", file,
                           m->string);
        qc_safetensors_meta *x = &f->meta[f->nmeta];
        if (!(x->key = qc_strdup(m->string, e))) return QC_ERR_NOMEM;
        f->nmeta++;
        if (!(x->value = qc_strdup(m->valuestring, e))) return QC_ERR_NOMEM;
    }
    qsort(f->meta, (size_t)f->nmeta, sizeof *f->meta, cmp_meta);
    for (int i = 1; i < f->nmeta; i++)
        if (strcmp(f->meta[i - 1].key, f->meta[i].key) == 0)
            return qc_fail(e, QC_ERR_FORMAT, "%s: \"__metadata__\" entry '%s' appears twice", file,
                           f->meta[i].key);
    return QC_OK;
}

/* Parses the validated-length header into f->tensors. */
static qc_status parse_header(qc_safetensors_file *f, const char *hdr, size_t n, qc_err *e) {
    const char *file = f->map.path;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, n, &end, false);
    if (!root) {
        size_t at = end && end >= hdr && end <= hdr + n ? (size_t)(end - hdr) : 0;
        return qc_fail(e, QC_ERR_FORMAT, "%s: header is not valid JSON (near byte %zu of %zu)", file,
                       at + 8, n);
    }
    qc_status st = QC_OK;
    for (const char *p = end; p < hdr + n && !st; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            st = qc_fail(e, QC_ERR_FORMAT, "%s: header has bytes after its JSON object (at byte %zu)",
                         file, (size_t)(p - hdr) + 8);
    if (!st && !cJSON_IsObject(root)) st = qc_fail(e, QC_ERR_FORMAT, "%s: header is not a JSON object", file);
    int count = 0;
    if (!st)
        for (const cJSON *c = root->child; c; c = c->next) count += strcmp(c->string, "__metadata__") != 0;
    if (!st) {
        f->tensors = qc_calloc((size_t)count, sizeof *f->tensors, e, file);
        if (!f->tensors) st = QC_ERR_NOMEM;
    }
    const uint8_t *data = f->map.data + 8 + n;
    size_t dsize = f->map.size - 8 - n;
    for (const cJSON *c = st ? NULL : root->child; c && !st; c = c->next) {
        if (strcmp(c->string, "__metadata__") == 0) {
            st = read_metadata(f, c, e);
            continue;
        }
        qc_safetensors_tensor *t = &f->tensors[f->ntensors];
        if (!(t->name = qc_strdup(c->string, e))) { st = QC_ERR_NOMEM; break; }
        f->ntensors++;
        st = parse_tensor(file, c, data, dsize, t, e);
    }
    cJSON_Delete(root);
    if (st) return st;

    qsort(f->tensors, (size_t)f->ntensors, sizeof *f->tensors, cmp_name);
    for (int i = 1; i < f->ntensors; i++)
        if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0)
            return qc_fail(e, QC_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", file,
                           f->tensors[i].name);
    const qc_safetensors_tensor **by_data = qc_malloc((size_t)f->ntensors, sizeof *by_data, e, file);
    if (!by_data) return QC_ERR_NOMEM;
    for (int i = 0; i < f->ntensors; i++) by_data[i] = &f->tensors[i];
    qsort(by_data, (size_t)f->ntensors, sizeof *by_data, cmp_data);
    for (int i = 1; i < f->ntensors && !st; i++) {
        const qc_safetensors_tensor *a = by_data[i - 1], *b = by_data[i];
        if (b->data < a->data + a->nbytes)
            st = qc_fail(e, QC_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap (data_offsets [%zu, %zu] and [%zu, %zu])",
                         file, a->name, b->name, (size_t)(a->data - data),
                         (size_t)(a->data - data) + a->nbytes, (size_t)(b->data - data),
                         (size_t)(b->data - data) + b->nbytes);
    }
    free(by_data);
    return st;
}

qc_status qc_safetensors_open(qc_safetensors_file *f, const char *path, qc_err *e) {
    memset(f, 0, sizeof *f);
    qc_status st = qc_map_open(&f->map, path, e);
    if (st) return st;
    if (f->map.size < 8) {
        st = qc_fail(e, QC_ERR_FORMAT, "%s: %zu bytes, too short for the 8-byte header length", path,
                     f->map.size);
    } else {
        uint64_t n = qc_le64(f->map.data);
        if (n > QC_ST_MAX_HEADER)
            st = qc_fail(e, QC_ERR_FORMAT, "%s: header length %llu is beyond the limit of %llu bytes",
                         path, (unsigned long long)n, (unsigned long long)QC_ST_MAX_HEADER);
        else if (n > f->map.size - 8)
            st = qc_fail(e, QC_ERR_FORMAT, "%s: header length %llu runs past the end of the file (%zu bytes)",
                         path, (unsigned long long)n, f->map.size);
        else
            st = parse_header(f, (const char *)f->map.data + 8, (size_t)n, e);
    }
    if (st) qc_safetensors_close(f);
    return st;
}

const qc_safetensors_tensor *qc_safetensors_find(const qc_safetensors_file *f, const char *name) {
    if (!f || !f->ntensors) return NULL;
    qc_safetensors_tensor key = { .name = (char *)name };
    return bsearch(&key, f->tensors, (size_t)f->ntensors, sizeof *f->tensors, cmp_name);
}

const char *qc_safetensors_meta_get(const qc_safetensors_file *f, const char *key) {
    if (!f || !f->nmeta) return NULL;
    qc_safetensors_meta k = { .key = (char *)key };
    const qc_safetensors_meta *m = bsearch(&k, f->meta, (size_t)f->nmeta, sizeof *f->meta, cmp_meta);
    return m ? m->value : NULL;
}

qc_status qc_safetensors_lookup(const qc_safetensors_file *f, const char *name, const qc_safetensors_tensor **out, qc_err *e) {
    *out = qc_safetensors_find(f, name);
    const char *target = *out ? NULL : qc_safetensors_meta_get(f, name);
    if (!target) return QC_OK;
    *out = qc_safetensors_find(f, target);
    if (!*out)
        return qc_fail(e, QC_ERR_FORMAT,
                       "%s: tensor '%s' is an alias (\"__metadata__\") of '%s', which the file does not hold",
                       f->map.path, name, target);
    return QC_OK;
}

void qc_safetensors_close(qc_safetensors_file *f) {
    if (!f) return;
    for (int i = 0; i < f->ntensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    for (int i = 0; i < f->nmeta; i++) {
        free(f->meta[i].key);
        free(f->meta[i].value);
    }
    free(f->meta);
    qc_map_close(&f->map);
    memset(f, 0, sizeof *f);
}
