/* gguf_read.c — the GGUF container: a validated view of any GGUF file (qc_gguf_file), its
 * metadata values and tensor infos. Layout in gguf.h; the Llama layer on top of it is
 * gguf_checkpoint.c (as hf_checkpoint.c is safetensors_read.c's).
 *
 * Nothing in the file is trusted before it is checked, in the order it is met: the magic and
 * version (2 and 3 share a layout); the two counts against the bytes left (a metadata entry
 * takes at least 13 bytes, a tensor info 33); every string and array length against the
 * bytes left; value and element types (no nested arrays); duplicate keys; general.alignment
 * (a u32 power of two); tensor names (1..63 bytes, distinct), 1..4 positive dimensions whose
 * product fits, a type qcalib handles, rows that are whole blocks; offsets aligned, inside the
 * file with their whole size; no two tensors overlapping. Every failure is a message naming
 * the file and the problem. */
#include "io/gguf.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- metadata value types ------------------------------------------------------------------------ */

size_t qc_gguf_vtype_size(uint32_t t) {
    switch (t) {
    case QC_GGUF_V_U8: case QC_GGUF_V_I8: case QC_GGUF_V_BOOL: return 1;
    case QC_GGUF_V_U16: case QC_GGUF_V_I16: return 2;
    case QC_GGUF_V_U32: case QC_GGUF_V_I32: case QC_GGUF_V_F32: return 4;
    case QC_GGUF_V_U64: case QC_GGUF_V_I64: case QC_GGUF_V_F64: return 8;
    default: return 0;
    }
}

const char *qc_gguf_vtype_name(uint32_t t) {
    static const char *const names[QC_GGUF_V_COUNT] = { "u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                                        "bool", "str", "arr", "u64", "i64", "f64" };
    return t < QC_GGUF_V_COUNT ? names[t] : "?";
}

const uint8_t *qc_gguf_string_at(const uint8_t *p, const char **s, uint64_t *len) {
    *len = qc_le64(p);
    *s = (const char *)p + 8;
    return p + 8 + *len;
}

bool qc_gguf_kv_int(const qc_gguf_kv *kv, uint64_t i, int64_t *v) {
    if (i >= kv->count) return false;
    const uint8_t *p = kv->data + i * qc_gguf_vtype_size(kv->elem_type);
    switch (kv->elem_type) {
    case QC_GGUF_V_U8: *v = p[0]; return true;
    case QC_GGUF_V_I8: *v = (int8_t)p[0]; return true;
    case QC_GGUF_V_U16: *v = (uint16_t)(p[0] | p[1] << 8); return true;
    case QC_GGUF_V_I16: *v = (int16_t)(uint16_t)(p[0] | p[1] << 8); return true;
    case QC_GGUF_V_U32: *v = qc_le32(p); return true;
    case QC_GGUF_V_I32: *v = (int32_t)qc_le32(p); return true;
    case QC_GGUF_V_U64: {
        uint64_t u = qc_le64(p);
        *v = u > INT64_MAX ? INT64_MAX : (int64_t)u;
        return true;
    }
    case QC_GGUF_V_I64: *v = (int64_t)qc_le64(p); return true;
    default: return false;
    }
}

bool qc_gguf_kv_number(const qc_gguf_kv *kv, uint64_t i, double *v) {
    int64_t n;
    if (i >= kv->count) return false;
    const uint8_t *p = kv->data + i * qc_gguf_vtype_size(kv->elem_type);
    if (kv->elem_type == QC_GGUF_V_F32) {
        *v = qc_lef32(p);
        return true;
    }
    if (kv->elem_type == QC_GGUF_V_F64) {
        union { uint64_t u; double d; } x = { qc_le64(p) };
        *v = x.d;
        return true;
    }
    if (!qc_gguf_kv_int(kv, i, &n)) return false;
    *v = (double)n;
    return true;
}

/* ---- the container ------------------------------------------------------------------------------- */

/* A position in the mapped file; every read checks the bytes left first. */
typedef struct cursor {
    const uint8_t *base;
    size_t off, size;
    const char *path;
} cursor;

static size_t left(const cursor *c) { return c->size - c->off; }

static qc_status need(const cursor *c, uint64_t n, const char *what, qc_err *e) {
    if (n > left(c))
        return qc_fail(e, QC_ERR_FORMAT, "%s: truncated at byte %zu: %s needs %llu bytes, %zu left", c->path,
                       c->off, what, (unsigned long long)n, left(c));
    return QC_OK;
}

static qc_status rd_u32(cursor *c, uint32_t *v, const char *what, qc_err *e) {
    qc_status st = need(c, 4, what, e);
    if (st) return st;
    *v = qc_le32(c->base + c->off);
    c->off += 4;
    return QC_OK;
}

static qc_status rd_u64(cursor *c, uint64_t *v, const char *what, qc_err *e) {
    qc_status st = need(c, 8, what, e);
    if (st) return st;
    *v = qc_le64(c->base + c->off);
    c->off += 8;
    return QC_OK;
}

/* A string of at most max bytes (and at least min): its bytes stay in the mapping. */
static qc_status rd_string(cursor *c, const char **s, uint64_t *len, uint64_t min, uint64_t max, const char *what,
                           qc_err *e) {
    qc_status st = rd_u64(c, len, what, e);
    if (st) return st;
    if (*len < min || *len > max) {
        if (*len > left(c))
            return qc_fail(e, QC_ERR_FORMAT,
                           "%s: truncated or corrupt: %s at byte %zu: length %llu is beyond the %zu bytes left",
                           c->path, what, c->off - 8, (unsigned long long)*len, left(c));
        return qc_fail(e, QC_ERR_FORMAT, "%s: %s at byte %zu: length %llu is outside %llu..%llu", c->path, what,
                       c->off - 8, (unsigned long long)*len, (unsigned long long)min, (unsigned long long)max);
    }
    if ((st = need(c, *len, what, e))) return st;
    *s = (const char *)c->base + c->off;
    c->off += *len;
    return QC_OK;
}

/* The value of metadata entry kv (type already read): checks every length, then skips it. */
static qc_status rd_value(cursor *c, qc_gguf_kv *kv, const char *what, qc_err *e) {
    qc_status st;
    char ewhat[256];
    kv->elem_type = kv->type;
    kv->count = 1;
    if (kv->type == QC_GGUF_V_ARRAY) {
        uint64_t n;
        snprintf(ewhat, sizeof ewhat, "%s: array header", what);
        if ((st = rd_u32(c, &kv->elem_type, ewhat, e)) || (st = rd_u64(c, &n, ewhat, e))) return st;
        if (kv->elem_type == QC_GGUF_V_ARRAY)
            return qc_fail(e, QC_ERR_FORMAT, "%s: %s: arrays of arrays are not valid GGUF", c->path, what);
        if (kv->elem_type >= QC_GGUF_V_COUNT)
            return qc_fail(e, QC_ERR_FORMAT, "%s: %s: unknown array element type %u", c->path, what, kv->elem_type);
        size_t min_elem = kv->elem_type == QC_GGUF_V_STRING ? 8 : qc_gguf_vtype_size(kv->elem_type);
        if (n > left(c) / min_elem)
            return qc_fail(e, QC_ERR_FORMAT,
                           "%s: truncated or corrupt: %s: %llu elements of type %s cannot fit in the %zu bytes left",
                           c->path, what, (unsigned long long)n, qc_gguf_vtype_name(kv->elem_type), left(c));
        kv->count = n;
    } else if (kv->type >= QC_GGUF_V_COUNT) {
        return qc_fail(e, QC_ERR_FORMAT, "%s: %s: unknown value type %u", c->path, what, kv->type);
    }
    kv->data = c->base + c->off;
    size_t start = c->off;
    if (kv->elem_type == QC_GGUF_V_STRING) {
        for (uint64_t i = 0; i < kv->count; i++) {
            /* the message is only made for a bad string: vocabularies have many */
            if (left(c) >= 8 && qc_le64(c->base + c->off) <= left(c) - 8) {
                c->off += 8 + qc_le64(c->base + c->off);
                continue;
            }
            const char *s;
            uint64_t len;
            snprintf(ewhat, sizeof ewhat, "%s: string %llu", what, (unsigned long long)i);
            if ((st = rd_string(c, &s, &len, 0, UINT64_MAX, ewhat, e))) return st;
        }
    } else {
        uint64_t n = kv->count * qc_gguf_vtype_size(kv->elem_type); /* fits: count was bounded above */
        if ((st = need(c, n, what, e))) return st;
        c->off += n;
    }
    kv->nbytes = c->off - start;
    return QC_OK;
}

static int cmp_bytes(const char *a, int na, const char *b, int nb) {
    int r = memcmp(a, b, (size_t)(na < nb ? na : nb));
    return r ? r : (na > nb) - (na < nb);
}

/* A name and where it came from, for sorting keys and tensor names. */
typedef struct named {
    const char *s;
    int len;
    int64_t index;
} named;

static int cmp_named(const void *a, const void *b) {
    const named *x = a, *y = b;
    int r = cmp_bytes(x->s, x->len, y->s, y->len);
    return r ? r : (x->index > y->index) - (x->index < y->index);
}

/* Sorts n names, writes their indices in that order, and reports the first duplicate through
 * *dup_a and *dup_b (-1 when none). */
static void sort_names(named *v, int64_t n, int64_t *order, int64_t *dup_a, int64_t *dup_b) {
    qsort(v, (size_t)n, sizeof *v, cmp_named);
    *dup_a = *dup_b = -1;
    for (int64_t i = 0; i < n; i++) {
        order[i] = v[i].index;
        if (i > 0 && *dup_a < 0 && cmp_bytes(v[i - 1].s, v[i - 1].len, v[i].s, v[i].len) == 0) {
            *dup_a = v[i - 1].index;
            *dup_b = v[i].index;
        }
    }
}

static qc_status parse_kv(qc_gguf_file *f, cursor *c, qc_err *e) {
    qc_status st;
    char what[192];
    for (int64_t i = 0; i < f->n_kv; i++) {
        qc_gguf_kv *kv = &f->kv[i];
        const char *key = NULL;
        uint64_t len;
        snprintf(what, sizeof what, "metadata entry %lld: key", (long long)i);
        if ((st = rd_string(c, &key, &len, 1, QC_GGUF_MAX_KEY, what, e))) return st;
        kv->key = key;
        kv->key_len = (int)len;
        snprintf(what, sizeof what, "metadata entry %lld ('%.*s')", (long long)i, kv->key_len < 100 ? kv->key_len : 100,
                 kv->key);
        if ((st = rd_u32(c, &kv->type, what, e)) || (st = rd_value(c, kv, what, e))) return st;
    }
    named *v = qc_malloc((size_t)f->n_kv + 1, sizeof *v, e, f->map.path);
    if (!v) return QC_ERR_NOMEM;
    for (int64_t i = 0; i < f->n_kv; i++) v[i] = (named){ f->kv[i].key, f->kv[i].key_len, i };
    int64_t a, b;
    sort_names(v, f->n_kv, f->kv_sorted, &a, &b);
    free(v);
    if (a >= 0)
        return qc_fail(e, QC_ERR_FORMAT, "%s: duplicate metadata key '%.*s' (entries %lld and %lld)", f->map.path,
                       f->kv[a].key_len, f->kv[a].key, (long long)a, (long long)b);
    f->alignment = QC_GGUF_ALIGNMENT;
    const qc_gguf_kv *al = qc_gguf_find_kv(f, "general.alignment");
    if (al) {
        if (al->type != QC_GGUF_V_U32)
            return qc_fail(e, QC_ERR_FORMAT, "%s: general.alignment has type %s; GGUF stores it as u32", f->map.path,
                           qc_gguf_vtype_name(al->type));
        uint32_t a32 = qc_le32(al->data);
        if (a32 == 0 || (a32 & (a32 - 1)) != 0)
            return qc_fail(e, QC_ERR_FORMAT, "%s: general.alignment %u is not a power of two", f->map.path, a32);
        f->alignment = a32;
    }
    return QC_OK;
}

static qc_status parse_tensor_info(qc_gguf_file *f, cursor *c, qc_err *e) {
    qc_status st;
    char what[192];
    for (int64_t i = 0; i < f->n_tensors; i++) {
        qc_gguf_tensor *t = &f->tensors[i];
        const char *name = NULL;
        uint64_t len;
        uint32_t nd, type;
        snprintf(what, sizeof what, "tensor info %lld: name", (long long)i);
        if ((st = rd_string(c, &name, &len, 1, QC_GGUF_MAX_NAME - 1, what, e))) return st;
        t->name = name;
        t->name_len = (int)len;
        snprintf(what, sizeof what, "tensor info %lld ('%.*s')", (long long)i, t->name_len, t->name);
        if ((st = rd_u32(c, &nd, what, e))) return st;
        if (nd < 1 || nd > QC_GGUF_MAX_DIMS)
            return qc_fail(e, QC_ERR_FORMAT, "%s: tensor '%.*s' has %u dimensions (1 to %d)", f->map.path, t->name_len,
                           t->name, nd, QC_GGUF_MAX_DIMS);
        t->n_dims = (int)nd;
        uint64_t count = 1;
        for (int d = 0; d < QC_GGUF_MAX_DIMS; d++) {
            uint64_t ne = 1;
            if (d < t->n_dims && (st = rd_u64(c, &ne, what, e))) return st;
            if (ne < 1 || ne > INT64_MAX)
                return qc_fail(e, QC_ERR_FORMAT, "%s: tensor '%.*s': dimension %d is %lld; dimensions must be positive",
                               f->map.path, t->name_len, t->name, d, (long long)(int64_t)ne);
            if (count > INT64_MAX / ne)
                return qc_fail(e, QC_ERR_FORMAT, "%s: tensor '%.*s': its element count overflows", f->map.path,
                               t->name_len, t->name);
            count *= ne;
            t->ne[d] = (int64_t)ne;
        }
        if ((st = rd_u32(c, &type, what, e))) return st;
        t->type = qc_gguf_type_info_of(type);
        if (!t->type) {
            const char *known = qc_gguf_ggml_type_name(type);
            if (known)
                return qc_fail(e, QC_ERR_UNSUPPORTED,
                               "%s: tensor '%.*s' has type %s, which qcalib does not read "
                               "(F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K to Q6_K)", f->map.path, t->name_len, t->name, known);
            return qc_fail(e, QC_ERR_FORMAT, "%s: tensor '%.*s' has unknown type %u", f->map.path, t->name_len, t->name,
                           type);
        }
        if (t->ne[0] % t->type->block != 0)
            return qc_fail(e, QC_ERR_FORMAT, "%s: tensor '%.*s' (%s): rows of %lld elements are not whole blocks of %d",
                           f->map.path, t->name_len, t->name, t->type->name, (long long)t->ne[0], t->type->block);
        size_t nb = qc_gguf_row_bytes(t->type, t->ne[0]);
        for (int d = 1; d < QC_GGUF_MAX_DIMS; d++)
            if (!qc_mul_size(nb, (size_t)t->ne[d], &nb))
                return qc_fail(e, QC_ERR_FORMAT, "%s: tensor '%.*s': its byte size overflows", f->map.path, t->name_len,
                               t->name);
        t->nbytes = nb;
        if ((st = rd_u64(c, &t->offset, what, e))) return st;
        if (t->offset % f->alignment != 0)
            return qc_fail(e, QC_ERR_FORMAT, "%s: tensor '%.*s': offset %llu is not a multiple of the alignment %zu",
                           f->map.path, t->name_len, t->name, (unsigned long long)t->offset, f->alignment);
    }
    return QC_OK;
}


typedef struct span {
    uint64_t off;
    int64_t index;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->off != y->off ? (x->off > y->off) - (x->off < y->off) : (x->index > y->index) - (x->index < y->index);
}

/* Every tensor inside the file with its whole size, names distinct, no two overlapping. */
static qc_status check_tensor_data(qc_gguf_file *f, size_t header_end, qc_err *e) {
    const char *path = f->map.path;
    size_t size = f->map.size;
    f->data_start = header_end + (f->alignment - header_end % f->alignment) % f->alignment;
    if (f->n_tensors == 0) return QC_OK;
    if (f->data_start > size)
        return qc_fail(e, QC_ERR_FORMAT, "%s: truncated: the tensor data would start at byte %zu, the file has %zu",
                       path, f->data_start, size);
    size_t room = size - f->data_start;
    for (int64_t i = 0; i < f->n_tensors; i++) {
        qc_gguf_tensor *t = &f->tensors[i];
        if (t->offset > room || t->nbytes > room - t->offset)
            return qc_fail(e, QC_ERR_FORMAT,
                           "%s: tensor '%.*s' (offset %llu, %zu bytes) extends past the end of the file (%zu bytes of "
                           "tensor data from byte %zu)", path, t->name_len, t->name, (unsigned long long)t->offset,
                           t->nbytes, room, f->data_start);
        t->data = f->map.data + f->data_start + t->offset;
    }
    named *v = qc_malloc((size_t)f->n_tensors, sizeof *v, e, path);
    span *sp = v ? qc_malloc((size_t)f->n_tensors, sizeof *sp, e, path) : NULL;
    if (!sp) {
        free(v);
        return QC_ERR_NOMEM;
    }
    for (int64_t i = 0; i < f->n_tensors; i++) {
        v[i] = (named){ f->tensors[i].name, f->tensors[i].name_len, i };
        sp[i] = (span){ f->tensors[i].offset, i };
    }
    int64_t a, b;
    sort_names(v, f->n_tensors, f->tensor_sorted, &a, &b);
    qc_status st = QC_OK;
    if (a >= 0)
        st = qc_fail(e, QC_ERR_FORMAT, "%s: duplicate tensor name '%.*s' (tensors %lld and %lld)", path,
                     f->tensors[a].name_len, f->tensors[a].name, (long long)a, (long long)b);
    qsort(sp, (size_t)f->n_tensors, sizeof *sp, cmp_span);
    for (int64_t i = 1; !st && i < f->n_tensors; i++) {
        const qc_gguf_tensor *p = &f->tensors[sp[i - 1].index], *q = &f->tensors[sp[i].index];
        if (p->offset + p->nbytes > q->offset)
            st = qc_fail(e, QC_ERR_FORMAT,
                         "%s: tensors '%.*s' (bytes %llu..%llu of the data) and '%.*s' (from byte %llu) overlap", path,
                         p->name_len, p->name, (unsigned long long)p->offset,
                         (unsigned long long)(p->offset + p->nbytes), q->name_len, q->name,
                         (unsigned long long)q->offset);
    }
    free(v);
    free(sp);
    return st;
}

qc_status qc_gguf_file_open(qc_gguf_file *f, const char *path, qc_err *e) {
    memset(f, 0, sizeof *f);
    qc_status st = qc_map_open(&f->map, path, e);
    if (st) return st;
    cursor c = { f->map.data, 0, f->map.size, path };
    if (f->map.size < 4 || memcmp(f->map.data, QC_GGUF_MAGIC, 4) != 0) {
        qc_gguf_file_close(f);
        return qc_fail(e, QC_ERR_FORMAT, "%s: not a GGUF file (it does not start with the magic \"GGUF\")", path);
    }
    c.off = 4;
    uint64_t nt, nkv;
    if ((st = rd_u32(&c, &f->version, "the header's version", e))) goto fail;
    if (f->version != 2 && f->version != 3) {
        uint32_t v = f->version, swapped = v >> 24 | (v >> 8 & 0xff00) | (v << 8 & 0xff0000) | v << 24;
        st = qc_fail(e, QC_ERR_UNSUPPORTED, "%s: GGUF version %u; qcalib reads versions 2 and 3%s", path, v,
                     swapped == 2 || swapped == 3 ? " (this looks like a big-endian file)"
                     : v == 1 ? " (version 1's 32-bit counts are obsolete)" : "");
        goto fail;
    }
    if ((st = rd_u64(&c, &nt, "the header's tensor count", e)) ||
        (st = rd_u64(&c, &nkv, "the header's metadata count", e)))
        goto fail;
    /* the smallest metadata entry is 13 bytes (8 key length, 1 key byte, 4 type, 0 for an empty
     * array would still need 12 more: 13 is a safe lower bound); a tensor info is at least 33 */
    if (nkv > left(&c) / 13) {
        st = qc_fail(e, QC_ERR_FORMAT,
                     "%s: truncated or corrupt: the header claims %llu metadata entries; the %zu bytes left hold at "
                     "most %zu", path, (unsigned long long)nkv, left(&c), left(&c) / 13);
        goto fail;
    }
    if (nt > left(&c) / 33) {
        st = qc_fail(e, QC_ERR_FORMAT,
                     "%s: truncated or corrupt: the header claims %llu tensors; the %zu bytes left hold at most %zu",
                     path, (unsigned long long)nt, left(&c), left(&c) / 33);
        goto fail;
    }
    f->n_kv = (int64_t)nkv;
    f->n_tensors = (int64_t)nt;
    f->kv = qc_calloc((size_t)nkv + 1, sizeof *f->kv, e, path);
    f->kv_sorted = qc_calloc((size_t)nkv + 1, sizeof *f->kv_sorted, e, path);
    f->tensors = qc_calloc((size_t)nt + 1, sizeof *f->tensors, e, path);
    f->tensor_sorted = qc_calloc((size_t)nt + 1, sizeof *f->tensor_sorted, e, path);
    if (!f->kv || !f->kv_sorted || !f->tensors || !f->tensor_sorted) {
        st = QC_ERR_NOMEM;
        goto fail;
    }
    if ((st = parse_kv(f, &c, e)) || (st = parse_tensor_info(f, &c, e)) || (st = check_tensor_data(f, c.off, e)))
        goto fail;
    return QC_OK;
fail:
    qc_gguf_file_close(f);
    return st;
}

void qc_gguf_file_close(qc_gguf_file *f) {
    if (!f) return;
    qc_map_close(&f->map);
    free(f->kv);
    free(f->kv_sorted);
    free(f->tensors);
    free(f->tensor_sorted);
    memset(f, 0, sizeof *f);
}

const qc_gguf_kv *qc_gguf_find_kv(const qc_gguf_file *f, const char *key) {
    int n = (int)strlen(key);
    int64_t lo = 0, hi = f->n_kv;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        const qc_gguf_kv *kv = &f->kv[f->kv_sorted[mid]];
        int r = cmp_bytes(kv->key, kv->key_len, key, n);
        if (r == 0) return kv;
        if (r < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const qc_gguf_tensor *qc_gguf_find_tensor(const qc_gguf_file *f, const char *name) {
    int n = (int)strlen(name);
    int64_t lo = 0, hi = f->n_tensors;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        const qc_gguf_tensor *t = &f->tensors[f->tensor_sorted[mid]];
        int r = cmp_bytes(t->name, t->name_len, name, n);
        if (r == 0) return t;
        if (r < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}
