/* gguf_read.c — the GGUF reader: a validated view of any GGUF file (qc_gguf_file), a Llama
 * checkpoint on top of it (qc_gguf_open), and the tokenizer a GGUF file carries
 * (qc_checkpoint_tokenizer). Container layout in gguf.h; the Llama metadata and tensor names
 * in ../shared/docs/GGUF.md.
 *
 * Nothing in the file is trusted before it is checked, in the order it is met: the magic and
 * version (2 and 3 share a layout); the two counts against the bytes left (a metadata entry
 * takes at least 13 bytes, a tensor info 33); every string and array length against the
 * bytes left; value and element types (no nested arrays); duplicate keys; general.alignment
 * (a u32 power of two); tensor names (1..63 bytes, distinct), 1..4 positive dimensions whose
 * product fits, a type qcalib handles, rows that are whole blocks; offsets aligned, inside the
 * file with their whole size; no two tensors overlapping. Then the Llama layer: the required
 * metadata keys present with usable types and values, features qcalib cannot run refused by
 * name (MoE, RoPE scaling, partial rotary), every expected tensor present with its shape (the
 * attention biases when block 0 has them) and no tensor left unexplained. Every failure is a
 * message naming the file and the problem.
 *
 * Reading: F32, F16 and BF16 tensors are read in place by checkpoint.c's dtype path; block
 * tensors (Q4_0, Q4_1, Q8_0) go through a decoder that dequantizes only the rows asked for, so
 * an embedding lookup touches one row. llama2.c-style vocabularies are stored with spaces as
 * U+2581 ("▁", SentencePiece's convention, which llama.cpp's tokenizer expects); the tokenizer
 * built from a GGUF file turns them back into spaces. */
#include "io/gguf.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char gguf_format[] = "gguf";

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
                               "(F32, F16, BF16, Q4_0, Q4_1, Q8_0)", f->map.path, t->name_len, t->name, known);
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

/* ---- a Llama checkpoint ------------------------------------------------------------------------------ */

/* What the checkpoint keeps: the parsed file (its mapping handed to ck->bin) and, per weight,
 * the type the decoder needs. Every loc's aux points at its gguf_weight. */
typedef struct gguf_state {
    qc_gguf_file file;
} gguf_state;

typedef struct gguf_weight {
    const qc_gguf_type_info *type;
    const gguf_state *state;
} gguf_weight;

static const qc_config_names gguf_names = {
    "llama.embedding_length", "llama.feed_forward_length", "llama.block_count", "llama.attention.head_count",
    "llama.attention.head_count_kv", "llama.attention.key_length", "the vocabulary size (token_embd.weight)",
    "llama.context_length", "llama.attention.layer_norm_rms_epsilon", "llama.rope.freq_base",
};

/* The string value of key, or NULL when absent; a value of another type is an error. */
static qc_status get_string(const qc_gguf_file *f, const char *key, const char **s, int *len, qc_err *e) {
    const qc_gguf_kv *kv = qc_gguf_find_kv(f, key);
    *s = NULL;
    *len = 0;
    if (!kv) return QC_OK;
    if (kv->type != QC_GGUF_V_STRING)
        return qc_fail(e, QC_ERR_FORMAT, "%s: %s has type %s; a string was expected", f->map.path, key,
                       qc_gguf_vtype_name(kv->type));
    uint64_t n;
    qc_gguf_string_at(kv->data, s, &n);
    *len = n > INT_MAX ? INT_MAX : (int)n;
    return QC_OK;
}

/* An integer in lo..hi: a scalar of any integer type, or an array of equal values (llama.cpp
 * allows per-layer arrays for some keys); absent: required is an error, else *v = dflt. */
static qc_status get_int(const qc_gguf_file *f, const char *key, bool required, int64_t dflt, int64_t lo, int64_t hi,
                         int64_t *v, qc_err *e) {
    const qc_gguf_kv *kv = qc_gguf_find_kv(f, key);
    if (!kv) {
        if (required) return qc_fail(e, QC_ERR_FORMAT, "%s: the required metadata key %s is missing", f->map.path, key);
        *v = dflt;
        return QC_OK;
    }
    if (kv->count == 0 || !qc_gguf_kv_int(kv, 0, v))
        return qc_fail(e, QC_ERR_FORMAT, "%s: %s has type %s%s; an integer was expected", f->map.path, key,
                       qc_gguf_vtype_name(kv->elem_type), kv->type == QC_GGUF_V_ARRAY ? " array" : "");
    for (uint64_t i = 1; i < kv->count; i++) {
        int64_t x;
        qc_gguf_kv_int(kv, i, &x);
        if (x != *v)
            return qc_fail(e, QC_ERR_UNSUPPORTED,
                           "%s: %s differs between layers (%lld, then %lld); qcalib needs one value", f->map.path, key,
                           (long long)*v, (long long)x);
    }
    if (*v < lo || *v > hi)
        return qc_fail(e, QC_ERR_FORMAT, "%s: %s is %lld, outside %lld..%lld", f->map.path, key, (long long)*v,
                       (long long)lo, (long long)hi);
    return QC_OK;
}

static qc_status get_float(const qc_gguf_file *f, const char *key, bool required, double dflt, double *v, qc_err *e) {
    const qc_gguf_kv *kv = qc_gguf_find_kv(f, key);
    if (!kv) {
        if (required) return qc_fail(e, QC_ERR_FORMAT, "%s: the required metadata key %s is missing", f->map.path, key);
        *v = dflt;
        return QC_OK;
    }
    if (kv->type == QC_GGUF_V_ARRAY || !qc_gguf_kv_number(kv, 0, v))
        return qc_fail(e, QC_ERR_FORMAT, "%s: %s has type %s; a number was expected", f->map.path, key,
                       qc_gguf_vtype_name(kv->type));
    return QC_OK;
}

static bool str_is(const char *s, int len, const char *lit) {
    return s && (size_t)len == strlen(lit) && memcmp(s, lit, (size_t)len) == 0;
}

/* The configuration from the metadata (and the vocabulary size from the embedding's shape). */
static qc_status read_config(const qc_gguf_file *f, qc_config *c, qc_err *e) {
    const char *path = f->map.path, *arch, *s;
    int arch_len, len;
    qc_status st = get_string(f, "general.architecture", &arch, &arch_len, e);
    if (st) return st;
    if (!arch) return qc_fail(e, QC_ERR_FORMAT, "%s: the required metadata key general.architecture is missing", path);
    if (!str_is(arch, arch_len, "llama"))
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: architecture '%.*s'; qcalib reads Llama models ('llama')", path,
                       arch_len > 64 ? 64 : arch_len, arch);
    int64_t dim, ff, nl, nh, nkv, hd, vd, rot, ctx, experts;
    double eps, theta, factor;
    if ((st = get_int(f, "llama.embedding_length", true, 0, 1, QC_MAX_DIM, &dim, e)) ||
        (st = get_int(f, "llama.feed_forward_length", true, 0, 1, QC_MAX_DIM, &ff, e)) ||
        (st = get_int(f, "llama.block_count", true, 0, 1, QC_MAX_LAYERS, &nl, e)) ||
        (st = get_int(f, "llama.attention.head_count", true, 0, 1, QC_MAX_HEADS, &nh, e)) ||
        (st = get_int(f, "llama.attention.head_count_kv", false, nh, 1, QC_MAX_HEADS, &nkv, e)) ||
        (st = get_int(f, "llama.context_length", true, 0, 1, QC_MAX_SEQ_LEN, &ctx, e)) ||
        (st = get_float(f, "llama.attention.layer_norm_rms_epsilon", true, 0, &eps, e)) ||
        (st = get_float(f, "llama.rope.freq_base", false, 10000.0, &theta, e)) ||
        (st = get_int(f, "llama.expert_count", false, 0, 0, INT_MAX, &experts, e)))
        return st;
    if (!qc_gguf_find_kv(f, "llama.attention.key_length") && dim % nh != 0)
        return qc_fail(e, QC_ERR_FORMAT,
                       "%s: llama.embedding_length %lld is not a multiple of llama.attention.head_count %lld and "
                       "llama.attention.key_length is absent", path, (long long)dim, (long long)nh);
    if ((st = get_int(f, "llama.attention.key_length", false, dim / nh, 1, QC_MAX_DIM, &hd, e)) ||
        (st = get_int(f, "llama.attention.value_length", false, hd, 1, QC_MAX_DIM, &vd, e)) ||
        (st = get_int(f, "llama.rope.dimension_count", false, hd, 1, QC_MAX_DIM, &rot, e)))
        return st;
    if (experts > 0)
        return qc_fail(e, QC_ERR_UNSUPPORTED,
                       "%s: a mixture of %lld experts (llama.expert_count); qcalib reads dense Llama models", path,
                       (long long)experts);
    if (vd != hd)
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: llama.attention.value_length %lld differs from the key length %lld",
                       path, (long long)vd, (long long)hd);
    if (rot != hd)
        return qc_fail(e, QC_ERR_UNSUPPORTED,
                       "%s: llama.rope.dimension_count %lld: RoPE on part of a head of %lld is not supported", path,
                       (long long)rot, (long long)hd);
    if ((st = get_string(f, "llama.rope.scaling.type", &s, &len, e))) return st;
    if (s && !str_is(s, len, "none") && !str_is(s, len, "linear"))
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: RoPE scaling '%.*s' (llama.rope.scaling.type) is not supported",
                       path, len > 64 ? 64 : len, s);
    if ((st = get_float(f, "llama.rope.scaling.factor", false, 0, &factor, e))) return st;
    if (factor != 0 && factor != 1)
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: RoPE scaling by %g (llama.rope.scaling.factor) is not supported",
                       path, factor);
    const qc_gguf_tensor *emb = qc_gguf_find_tensor(f, "token_embd.weight");
    if (!emb) return qc_fail(e, QC_ERR_FORMAT, "%s: the tensor token_embd.weight is missing", path);
    memset(c, 0, sizeof *c);
    c->dim = (int)dim;
    c->hidden_dim = (int)ff;
    c->n_layers = (int)nl;
    c->n_heads = (int)nh;
    c->n_kv_heads = (int)nkv;
    c->head_dim = (int)hd;
    c->vocab_size = emb->n_dims == 2 && emb->ne[1] <= QC_MAX_VOCAB ? (int)emb->ne[1] : 0;
    c->seq_len = (int)ctx;
    c->norm_eps = (float)eps;
    c->rope_theta = (float)theta;
    if (c->vocab_size < 1)
        return qc_fail(e, QC_ERR_FORMAT,
                       "%s: token_embd.weight has %d dimensions, [%lld, %lld, ...]; [n_embd, n_vocab] with n_vocab up "
                       "to %d was expected", path, emb->n_dims, (long long)emb->ne[0], (long long)emb->ne[1],
                       QC_MAX_VOCAB);
    /* attention biases: tensors llama.cpp loads when present; then every block must have them */
    c->attn_qkv_bias = qc_gguf_find_tensor(f, "blk.0.attn_q.bias") != NULL;
    c->attn_o_bias = qc_gguf_find_tensor(f, "blk.0.attn_output.bias") != NULL;
    const qc_gguf_kv *tok = qc_gguf_find_kv(f, "tokenizer.ggml.tokens");
    if (tok && (tok->type != QC_GGUF_V_ARRAY || tok->elem_type != QC_GGUF_V_STRING))
        return qc_fail(e, QC_ERR_FORMAT, "%s: tokenizer.ggml.tokens is not an array of strings", path);
    if (tok && tok->count != (uint64_t)c->vocab_size)
        return qc_fail(e, QC_ERR_FORMAT, "%s: tokenizer.ggml.tokens has %llu tokens; token_embd.weight has %d rows",
                       path, (unsigned long long)tok->count, c->vocab_size);
    return qc_config_check(c, path, &gguf_names, e);
}

/* Dequantizes rows [row0, row0+nrows) of a block tensor, and nothing else. */
static qc_status decode_rows(const qc_checkpoint *ck, const qc_ck_loc *loc, int64_t row0, int nrows, int cols,
                             float *out, qc_err *e) {
    const qc_gguf_type_info *ti = ((const gguf_weight *)loc->aux)->type;
    QC_ASSERT(cols % ti->block == 0);
    size_t rb = qc_gguf_row_bytes(ti, cols);
#pragma omp parallel for schedule(static) if ((int64_t)nrows * cols > (1 << 16))
    for (int r = 0; r < nrows; r++) ti->to_float(loc->data + (size_t)(row0 + r) * rb, out + (size_t)r * cols, cols);
    return QC_OK;
}

/* Hands the parsed file's arrays and the state to the checkpoint (freed at close). */
static qc_status own_state(qc_checkpoint *ck, gguf_state *s, gguf_weight *aux, qc_err *e) {
    void *p[] = { s->file.kv, s->file.kv_sorted, s->file.tensors, s->file.tensor_sorted, aux, s };
    qc_status st = QC_OK;
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) {
        if (!st) st = qc_ck_own(ck, p[i], e);
        else free(p[i]);
    }
    return st;
}

qc_status qc_gguf_open(qc_checkpoint *ck, const char *path, qc_err *e) {
    ck->format = gguf_format;
    gguf_state *s = qc_calloc(1, sizeof *s, e, path);
    if (!s) return QC_ERR_NOMEM;
    qc_gguf_file *f = &s->file;
    qc_status st = qc_gguf_file_open(f, path, e);
    if (!st && (st = qc_ck_add_file(ck, path, false, 0, e))) qc_gguf_file_close(f);
    if (st) {
        free(s);
        return st;
    }
    gguf_weight *aux = NULL;
    bool *used = NULL;
    if (!(st = read_config(f, &ck->cfg, e)) && !(st = qc_ck_alloc_locs(ck, e))) {
        aux = qc_calloc(QC_CK_NGLOBAL + (size_t)ck->cfg.n_layers * QC_CK_NLAYER, sizeof *aux, e, path);
        used = qc_calloc((size_t)f->n_tensors + 1, sizeof *used, e, path);
        if (!aux || !used) st = QC_ERR_NOMEM;
    }
    const qc_gguf_tensor *cls = NULL;
    for (int w = 0; w < QC_W_COUNT && !st; w++) {
        int nl = qc_weight_is_global((qc_weight)w) ? 1 : ck->cfg.n_layers;
        for (int l = 0; l < nl && !st && qc_weight_present(&ck->cfg, (qc_weight)w); l++) {
            char name[QC_GGUF_MAX_NAME + 16];
            int rows, cols;
            qc_gguf_tensor_name((qc_weight)w, l, name, sizeof name);
            qc_weight_shape(&ck->cfg, (qc_weight)w, &rows, &cols);
            const qc_gguf_tensor *t = qc_gguf_find_tensor(f, name);
            if (!t && w == QC_W_CLASSIFIER) continue; /* tied to the embedding */
            if (!t) {
                st = qc_fail(e, QC_ERR_FORMAT, "%s: the tensor %s is missing", path, name);
                break;
            }
            int64_t want[QC_GGUF_MAX_DIMS] = { cols, cols == 1 ? 1 : rows, 1, 1 };
            if (cols == 1) want[0] = rows; /* a vector: ne = [dim] */
            if (memcmp(t->ne, want, sizeof want) != 0) {
                st = qc_fail(e, QC_ERR_FORMAT,
                             "%s: tensor %s has shape [%lld, %lld, %lld, %lld]; [%lld, %lld] was expected (ggml order: "
                             "input dimension first)", path, name, (long long)t->ne[0], (long long)t->ne[1],
                             (long long)t->ne[2], (long long)t->ne[3], (long long)want[0], (long long)want[1]);
                break;
            }
            used[t - f->tensors] = true;
            size_t slot = qc_ck_slot((qc_weight)w, l);
            aux[slot] = (gguf_weight){ t->type, s };
            ck->locs[slot] = (qc_ck_loc){ .data = t->data, .dtype = t->type->dtype, .aux = &aux[slot],
                                          .decode = t->type->quantized ? decode_rows : NULL,
                                          .qtype = t->type->quantized ? t->type->name : NULL };
            if (w == QC_W_CLASSIFIER) cls = t;
        }
    }
    for (int64_t i = 0; i < f->n_tensors && !st; i++)
        if (!used[i])
            st = qc_fail(e, QC_ERR_UNSUPPORTED, "%s: tensor '%.*s' is not part of a Llama model as qcalib reads it",
                         path, f->tensors[i].name_len, f->tensors[i].name);
    free(used);
    if (!st) {
        /* tied: no output.weight, or one with the embedding's very bytes (llama.cpp's converters
         * write a copy even for a tied classifier) */
        const qc_gguf_tensor *emb = qc_gguf_find_tensor(f, "token_embd.weight");
        ck->cfg.tied_classifier = !cls || (cls->type == emb->type && memcmp(cls->data, emb->data, emb->nbytes) == 0);
        if (!cls) {
            ck->locs[QC_W_CLASSIFIER] = ck->locs[QC_W_EMBED];
            aux[QC_W_CLASSIFIER] = aux[QC_W_EMBED];
            ck->locs[QC_W_CLASSIFIER].aux = &aux[QC_W_CLASSIFIER];
        }
        /* the mapping now belongs to the checkpoint (f->map still names it, for messages) */
        ck->bin = f->map;
        return own_state(ck, s, aux, e);
    }
    free(aux);
    qc_gguf_file_close(f);
    free(s);
    return st;
}

/* ---- the tokenizer it carries ------------------------------------------------------------------------ */

/* U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's visible space */
static const char spm_space[] = "\xe2\x96\x81";

qc_status qc_checkpoint_tokenizer(const qc_checkpoint *ck, qc_tokenizer *t, qc_err *e) {
    memset(t, 0, sizeof *t);
    const char *path = qc_checkpoint_path(ck);
    if (ck->format != gguf_format)
        return qc_fail(e, QC_ERR_UNSUPPORTED,
                       "%s: a %s checkpoint carries no tokenizer; give a llama2.c tokenizer file", path, ck->format);
    const qc_gguf_file *f = &((const gguf_weight *)ck->locs[QC_W_EMBED].aux)->state->file;
    const qc_gguf_kv *tok = qc_gguf_find_kv(f, "tokenizer.ggml.tokens");
    if (!tok)
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: carries no tokenizer (no tokenizer.ggml.tokens); give a llama2.c "
                       "tokenizer file", path);
    const char *model;
    int model_len;
    qc_status st = get_string(f, "tokenizer.ggml.model", &model, &model_len, e);
    if (st) return st;
    if (!str_is(model, model_len, "llama"))
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: tokenizer.ggml.model is '%.*s'; qcalib's tokenizer is llama2.c's "
                       "SentencePiece-style one ('llama')", path, model ? (model_len > 64 ? 64 : model_len) : 6,
                       model ? model : "absent");
    int n = ck->cfg.vocab_size; /* = tok->count, checked at open */
    const qc_gguf_kv *sc = qc_gguf_find_kv(f, "tokenizer.ggml.scores");
    if (sc && (sc->type != QC_GGUF_V_ARRAY || sc->elem_type != QC_GGUF_V_F32 || sc->count != (uint64_t)n))
        return qc_fail(e, QC_ERR_FORMAT, "%s: tokenizer.ggml.scores must be an f32 array of %d values", path, n);
    int64_t bos, eos;
    if ((st = get_int(f, "tokenizer.ggml.bos_token_id", false, 1, 0, n - 1, &bos, e)) ||
        (st = get_int(f, "tokenizer.ggml.eos_token_id", false, 2, 0, n - 1, &eos, e)))
        return st;
    char *arena = qc_malloc(tok->nbytes, 1, e, path); /* unescaping only shrinks */
    char **pieces = qc_malloc((size_t)n, sizeof *pieces, e, path);
    int *lens = qc_malloc((size_t)n, sizeof *lens, e, path);
    float *scores = qc_calloc((size_t)n, sizeof *scores, e, path);
    if (!arena || !pieces || !lens || !scores) st = QC_ERR_NOMEM;
    const uint8_t *p = tok->data;
    size_t used = 0;
    for (int i = 0; i < n && !st; i++) {
        const char *s;
        uint64_t len;
        p = qc_gguf_string_at(p, &s, &len);
        pieces[i] = arena + used;
        for (uint64_t k = 0; k < len; k++) {
            if (k + 3 <= len && memcmp(s + k, spm_space, 3) == 0) {
                arena[used++] = ' ';
                k += 2;
            } else {
                arena[used++] = s[k];
            }
        }
        lens[i] = (int)(arena + used - pieces[i]);
        if (sc) scores[i] = qc_lef32(sc->data + 4 * (size_t)i);
    }
    /* llama2.c's encoder falls back to id = byte + 3 for bytes not in the vocabulary */
    for (int b = 0; b < 256 && !st; b++) {
        char want[8];
        snprintf(want, sizeof want, "<0x%02X>", b);
        if (n < 259 || lens[3 + b] != 6 || memcmp(pieces[3 + b], want, 6) != 0)
            st = qc_fail(e, QC_ERR_UNSUPPORTED, "%s: the vocabulary does not hold the byte token %s at id %d, where "
                         "llama2.c's tokenizer needs it", path, want, 3 + b);
    }
    if (!st)
        st = qc_tokenizer_from_vocab(t, n, (const char *const *)pieces, lens, scores, (int)bos, (int)eos, path, e);
    free(arena);
    free(pieces);
    free(lens);
    free(scores);
    return st;
}
