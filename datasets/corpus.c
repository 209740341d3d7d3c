/* corpus.c — qc_corpus: reads one text source into memory as a list of documents.
 *
 * Input formats (the file's name picks the parser; its first bytes pick gzip):
 *   plain text   the whole file is one document, every byte kept (CRLF, NULs, invalid UTF-8);
 *   JSON lines   names ending ".jsonl" or ".json", optionally followed by ".gz": every line
 *                that is not blank (only spaces, tabs, CRs) is one JSON object whose string
 *                field "text" is one document;
 *   gzip         any file starting with the magic bytes 1f 8b is inflated first (concatenated
 *                members are read in turn, as gzip -d does); the stream must end cleanly and
 *                its CRC must match, so a truncated or damaged file is an error, never a
 *                corpus of the documents that happened to come before the damage.
 * The whole source is read (and inflated) before parsing, at most a bound given by the caller
 * (QC_CORPUS_MAX_BYTES by default): a file larger than the bound is refused before it is
 * read, and inflating stops as soon as the text passes it (a gzip bomb costs at most the
 * bound, never what it would inflate to).
 *
 * Memory while reading L bytes of text from a file of C bytes: the file (C, freed once
 * inflated); the inflated buffer (capacity < 2L + 4C + 4096: it starts at 4C + 4096 and
 * doubles); for JSON lines the documents' text (<= L), their offsets and lengths (16 bytes per
 * line of at least 11 bytes, the shortest object with a "text" string: <= 16 (L + 1) / 12) and
 * cJSON's tree of one line (at most about 32 bytes per byte of that line: a 64-byte node per
 * value of two source bytes). calib_set.c adds this up for QC_CALIB_TEXT_MEM.
 *
 * Invariants of a loaded corpus: text[len] == '\0'; documents are stored back to back in
 * file order, doc_off[0] == 0, doc_off[i + 1] == doc_off[i] + doc_len[i]; ndocs >= 1 and
 * len >= 1 (a source without a single byte of text is refused). Empty "text" strings are
 * kept as empty documents, so that joining matches the reference's "\n\n".join(texts). */
#include "datasets/datasets.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* ---- gzip ------------------------------------------------------------------------------ */

static bool is_gzip(const char *buf, size_t len) {
    return len >= 2 && (unsigned char)buf[0] == 0x1f && (unsigned char)buf[1] == 0x8b;
}

/* Inflates the gzip member(s) in[0..in_len) into a new NUL-terminated buffer. */
static qc_status gunzip(const char *path, const char *in, size_t in_len, size_t max, char **out,
                        size_t *out_len, qc_err *e) {
    *out = NULL;
    *out_len = 0;
    size_t cap = in_len < ((size_t)16 << 20) ? in_len * 4 + 4096 : in_len * 2;
    if (cap > max) cap = max;
    char *buf = qc_malloc(cap + 1, 1, e, path);
    if (!buf) return QC_ERR_NOMEM;

    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 16) != Z_OK) { /* 15 + 16: a 32 KiB window, gzip wrapper only */
        free(buf);
        return qc_fail(e, QC_ERR_NOMEM, "%s: cannot initialise zlib", path);
    }
    size_t used = 0, in_pos = 0;
    qc_status st = QC_OK;
    for (;;) {
        if (used == cap && cap < max) {
            size_t ncap = cap > max / 2 ? max : cap * 2;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) {
                st = qc_fail(e, QC_ERR_NOMEM, "%s: out of memory inflating to %zu bytes", path, ncap);
                break;
            }
            buf = nb;
            cap = ncap;
        }
        /* zlib counts in uInt; feed and drain at most 1 GiB per call */
        size_t in_chunk = in_len - in_pos < ((size_t)1 << 30) ? in_len - in_pos : (size_t)1 << 30;
        size_t out_chunk = cap - used < ((size_t)1 << 30) ? cap - used : (size_t)1 << 30;
        z.next_in = (Bytef *)(in + in_pos);
        z.avail_in = (uInt)in_chunk;
        z.next_out = (Bytef *)(buf + used);
        z.avail_out = (uInt)out_chunk;
        int rc = inflate(&z, Z_NO_FLUSH);
        in_pos += in_chunk - z.avail_in;
        used += out_chunk - z.avail_out;
        if (rc == Z_STREAM_END) {
            if (in_pos == in_len) break;
            if (!is_gzip(in + in_pos, in_len - in_pos)) {
                st = qc_fail(e, QC_ERR_FORMAT, "%s: %zu bytes of garbage after the gzip stream "
                             "at byte offset %zu", path, in_len - in_pos, in_pos);
                break;
            }
            inflateReset(&z); /* another member follows */
            continue;
        }
        if (rc == Z_DATA_ERROR) {
            st = qc_fail(e, QC_ERR_FORMAT, "%s: corrupt gzip stream near compressed byte %zu: %s",
                         path, in_pos, z.msg ? z.msg : "invalid data");
            break;
        }
        if (rc == Z_MEM_ERROR) {
            st = qc_fail(e, QC_ERR_NOMEM, "%s: out of memory in zlib", path);
            break;
        }
        if (out_chunk == 0) { /* full at the limit, and the stream (or its trailer) goes on */
            st = qc_fail(e, QC_ERR_NOMEM, "%s: decompresses to more than %zu bytes (the bound on "
                         "the text of one source; inflating stopped there)", path, max);
            break;
        }
        if (rc == Z_BUF_ERROR && z.avail_out > 0 && in_pos == in_len) {
            st = qc_fail(e, QC_ERR_FORMAT, "%s: unexpected end of gzip stream after %zu compressed "
                         "bytes (file truncated?)", path, in_len);
            break;
        }
        /* Z_BUF_ERROR with room left and input left means no progress: never loop on it */
        if ((rc != Z_OK && rc != Z_BUF_ERROR) || (rc == Z_BUF_ERROR && z.avail_out > 0)) {
            st = qc_fail(e, QC_ERR_FORMAT, "%s: corrupt gzip stream (zlib error %d)", path, rc);
            break;
        }
    }
    inflateEnd(&z);
    if (st) {
        free(buf);
        return st;
    }
    buf[used] = '\0';
    *out = buf;
    *out_len = used;
    return QC_OK;
}

/* ---- JSON lines -------------------------------------------------------------------------- */

static bool is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return false;
    return true;
}

/* cJSON stores strings NUL-terminated without a length, so a "\u0000" escape would
 * silently cut a document short; such a line is refused. An escape is a backslash that is
 * itself preceded by an even number of backslashes. */
static bool has_nul_escape(const char *s, size_t n) {
    for (size_t i = 0; i + 6 <= n; i++) {
        if (s[i] != '\\' || memcmp(s + i + 1, "u0000", 5) != 0) continue;
        size_t k = 0;
        while (k < i && s[i - 1 - k] == '\\') k++;
        if (k % 2 == 0) return true;
    }
    return false;
}

/* The string value of the single "text" field of the object on one line, or a message. */
static qc_status line_text(const char *path, size_t lineno, const char *line, size_t n,
                           cJSON **root, const char **text, qc_err *e) {
    const char *end = NULL;
    *root = cJSON_ParseWithLengthOpts(line, n, &end, 0);
    if (!*root) {
        size_t col = end && end >= line && end <= line + n ? (size_t)(end - line) + 1 : 1;
        return qc_fail(e, QC_ERR_FORMAT, "%s: line %zu: malformed JSON near column %zu", path,
                       lineno, col);
    }
    if (!is_blank(end, n - (size_t)(end - line)))
        return qc_fail(e, QC_ERR_FORMAT, "%s: line %zu: unexpected bytes after the JSON value at "
                       "column %zu", path, lineno, (size_t)(end - line) + 1);
    if (!cJSON_IsObject(*root))
        return qc_fail(e, QC_ERR_FORMAT, "%s: line %zu: not a JSON object", path, lineno);
    const cJSON *field = NULL;
    for (const cJSON *it = (*root)->child; it; it = it->next) {
        if (!it->string || strcmp(it->string, "text") != 0) continue;
        if (field)
            return qc_fail(e, QC_ERR_FORMAT, "%s: line %zu: field \"text\" appears twice", path,
                           lineno);
        field = it;
    }
    if (!field)
        return qc_fail(e, QC_ERR_FORMAT, "%s: line %zu: no string field \"text\"", path, lineno);
    if (!cJSON_IsString(field) || !field->valuestring)
        return qc_fail(e, QC_ERR_FORMAT, "%s: line %zu: field \"text\" is not a string", path,
                       lineno);
    if (has_nul_escape(line, n))
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: line %zu: a \\u0000 (NUL) escape inside a "
                       "string is not supported", path, lineno);
    *text = field->valuestring;
    return QC_OK;
}

/* Parses raw[0..raw_len) as JSON lines into c (text, doc_off, doc_len, ndocs, len). */
static qc_status parse_jsonl(qc_corpus *c, const char *raw, size_t raw_len, qc_err *e) {
    size_t maxdocs = 0; /* lines of at least 11 bytes: {"text":""} is the shortest document */
    for (size_t at = 0; at < raw_len;) {
        const char *nl = memchr(raw + at, '\n', raw_len - at);
        size_t n = nl ? (size_t)(nl - (raw + at)) : raw_len - at;
        maxdocs += n >= 11;
        at += n + 1;
    }
    if (maxdocs == 0) maxdocs = 1;
    /* A decoded JSON string is never longer than its source, so raw_len bytes suffice. */
    c->text = qc_malloc(raw_len + 1, 1, e, c->path);
    c->doc_off = qc_malloc(maxdocs, sizeof *c->doc_off, e, c->path);
    c->doc_len = qc_malloc(maxdocs, sizeof *c->doc_len, e, c->path);
    if (!c->text || !c->doc_off || !c->doc_len) return QC_ERR_NOMEM;

    size_t lineno = 0, pos = 0;
    while (pos < raw_len) {
        const char *line = raw + pos;
        const char *nl = memchr(line, '\n', raw_len - pos);
        size_t n = nl ? (size_t)(nl - line) : raw_len - pos;
        pos += n + (nl != NULL);
        lineno++;
        if (is_blank(line, n)) continue;
        cJSON *root = NULL;
        const char *text = NULL;
        qc_status st = line_text(c->path, lineno, line, n, &root, &text, e);
        if (st) {
            cJSON_Delete(root);
            return st;
        }
        size_t tl = strlen(text);
        QC_ASSERT(c->ndocs < maxdocs && tl <= raw_len - c->len);
        memcpy(c->text + c->len, text, tl);
        c->doc_off[c->ndocs] = c->len;
        c->doc_len[c->ndocs] = tl;
        c->ndocs++;
        c->len += tl;
        cJSON_Delete(root);
    }
    c->text[c->len] = '\0';
    if (c->ndocs == 0)
        return qc_fail(e, QC_ERR_FORMAT, "%s: no text (no JSON lines)", c->path);
    return QC_OK;
}

/* ---- loading ------------------------------------------------------------------------------- */

/* ".jsonl" or ".json", possibly followed by ".gz" */
static bool is_jsonl_name(const char *path) {
    return qc_str_ends_with(path, ".jsonl") || qc_str_ends_with(path, ".json") ||
           qc_str_ends_with(path, ".jsonl.gz") || qc_str_ends_with(path, ".json.gz");
}

qc_status qc_corpus_load(qc_corpus *c, const char *path, qc_err *e) {
    return qc_corpus_load_max(c, path, QC_CORPUS_MAX_BYTES, e);
}

qc_status qc_corpus_load_max(qc_corpus *c, const char *path, size_t max_bytes, qc_err *e) {
    memset(c, 0, sizeof *c);
    c->path = qc_strdup(path, e);
    if (!c->path) return QC_ERR_NOMEM;
    if (max_bytes > QC_CORPUS_MAX_BYTES) max_bytes = QC_CORPUS_MAX_BYTES;

    char *raw = NULL;
    size_t raw_len = 0;
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size > max_bytes) {
        qc_corpus_free(c);
        return qc_fail(e, QC_ERR_NOMEM, "%s: %llu bytes, more than the %zu bytes of text one source may hold", path,
                       (unsigned long long)sb.st_size, max_bytes);
    }
    qc_status st = qc_read_file(path, max_bytes, &raw, &raw_len, e);
    if (!st) c->hash = qc_hash64(QC_HASH64_SEED, raw, raw_len);
    if (!st && is_gzip(raw, raw_len)) {
        char *inflated = NULL;
        st = gunzip(path, raw, raw_len, max_bytes, &inflated, &raw_len, e);
        free(raw);
        raw = inflated;
    }
    if (!st && is_jsonl_name(path)) {
        st = parse_jsonl(c, raw, raw_len, e);
        free(raw);
    } else if (!st) { /* plain text: the buffer itself is the one document */
        c->text = raw;
        c->len = raw_len;
        c->ndocs = 1;
        c->doc_off = qc_calloc(1, sizeof *c->doc_off, e, path);
        c->doc_len = qc_malloc(1, sizeof *c->doc_len, e, path);
        if (!c->doc_off || !c->doc_len) st = QC_ERR_NOMEM;
        else c->doc_len[0] = raw_len;
    }
    if (!st && c->len == 0) st = qc_fail(e, QC_ERR_FORMAT, "%s: no text (the corpus is empty)", path);
    if (st) qc_corpus_free(c);
    return st;
}

void qc_corpus_free(qc_corpus *c) {
    if (!c) return;
    free(c->text);
    free(c->doc_off);
    free(c->doc_len);
    free(c->path);
    memset(c, 0, sizeof *c);
}

qc_status qc_corpus_joined(const qc_corpus *c, char **text, size_t *len, qc_err *e) {
    *text = NULL;
    *len = 0;
    if (c->ndocs == 0 || !c->text)
        return qc_fail(e, QC_ERR_ARG, "%s: corpus has no documents", c->path ? c->path : "corpus");
    size_t seps, total;
    if (!qc_mul_size(c->ndocs - 1, 2, &seps) || !qc_add_size(c->len, seps, &total))
        return qc_fail(e, QC_ERR_NOMEM, "%s: joined corpus size overflows", c->path);
    char *out = qc_malloc(total + 1, 1, e, c->path);
    if (!out) return QC_ERR_NOMEM;
    size_t at = 0;
    for (size_t i = 0; i < c->ndocs; i++) {
        if (i) {
            memcpy(out + at, "\n\n", 2);
            at += 2;
        }
        QC_ASSERT(c->doc_off[i] <= c->len && c->doc_len[i] <= c->len - c->doc_off[i]);
        memcpy(out + at, c->text + c->doc_off[i], c->doc_len[i]);
        at += c->doc_len[i];
    }
    QC_ASSERT(at == total);
    out[total] = '\0';
    *text = out;
    *len = total;
    return QC_OK;
}
