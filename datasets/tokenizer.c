/* tokenizer.c — qc_tokenizer's lifecycle: reading a llama2.c tokenizer file (or taking a
 * vocabulary from memory, as a GGUF file carries it) and the string -> id lookup that encoding
 * relies on.
 *
 * Byte layout (little endian, no vocabulary size stored; the model supplies it):
 *     int32 max_token_length
 *     vocab_size times: f32 score, int32 len, len bytes of piece text (no NUL terminator)
 * and nothing after the last piece. Every count is checked against the file before use:
 * 1 <= max_token_length <= 65536, 1 <= len <= max_token_length, no read past the end, no
 * trailing bytes. A piece containing a NUL byte is refused too: run.c handles pieces as C
 * strings, so such a piece could not mean the same thing here and there (no llama2.c export
 * produces one).
 *
 * Memory: all pieces live NUL-terminated, back to back, in one arena owned by the internal
 * index; t->pieces[i] point into it. The index is an open-addressing hash table (linear
 * probing, FNV-1a) from piece bytes to id, at most half full, so lookups cost O(piece
 * length). */
#include "datasets/hf_internal.h"

#include <stdlib.h>
#include <string.h>

#define MAX_TOKEN_LENGTH_LIMIT (1 << 16)
#define VOCAB_SIZE_LIMIT (1 << 22)

typedef struct tok_index {
    char *arena;     /* every piece, NUL-terminated, back to back */
    int32_t *slots;  /* (mask + 1) ids; -1 marks an empty slot */
    size_t mask;     /* table size - 1, a power of two minus one */
} tok_index;

static uint64_t fnv1a(const char *s, size_t n) {
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* Builds the hash table over t->pieces. When two ids have the same piece, the lower id is
 * the one found: run.c's bsearch over a qsort'ed copy returns an unspecified one of them,
 * so any choice is "run.c"; the lower id is deterministic and is the first in the file.
 * (tok512.bin has no duplicate pieces; tests/unit/datasets.c checks that.) */
static qc_status build_index(qc_tokenizer *t, tok_index *ix, qc_err *e) {
    size_t size = 16;
    while (size < (size_t)t->vocab_size * 2) size *= 2;
    ix->slots = qc_malloc(size, sizeof *ix->slots, e, t->path);
    if (!ix->slots) return QC_ERR_NOMEM;
    memset(ix->slots, 0xff, size * sizeof *ix->slots); /* all -1 */
    ix->mask = size - 1;
    for (int id = 0; id < t->vocab_size; id++) {
        size_t len = (size_t)t->piece_len[id];
        size_t h = (size_t)fnv1a(t->pieces[id], len) & ix->mask;
        for (;; h = (h + 1) & ix->mask) {
            int32_t other = ix->slots[h];
            if (other < 0) {
                ix->slots[h] = id;
                break;
            }
            if ((size_t)t->piece_len[other] == len && memcmp(t->pieces[other], t->pieces[id], len) == 0)
                break; /* duplicate piece: keep the lower id */
        }
    }
    return QC_OK;
}

int qc_tokenizer_lookup(const qc_tokenizer *t, const char *s, size_t len) {
    const tok_index *ix = t->index;
    if (!ix || len == 0 || len > (size_t)t->max_token_length) return -1;
    for (size_t h = (size_t)fnv1a(s, len) & ix->mask;; h = (h + 1) & ix->mask) {
        int32_t id = ix->slots[h];
        if (id < 0) return -1;
        if ((size_t)t->piece_len[id] == len && memcmp(t->pieces[id], s, len) == 0) return id;
    }
}

/* Reads the pieces and scores from the mapped file into t (arrays already allocated). */
static qc_status parse(qc_tokenizer *t, tok_index *ix, const uint8_t *data, size_t size, qc_err *e) {
    const char *path = t->path;
    if (size < 4)
        return qc_fail(e, QC_ERR_FORMAT, "%s: truncated: %zu bytes, too short for the 4-byte "
                       "max_token_length", path, size);
    int32_t mtl = (int32_t)qc_le32(data);
    if (mtl < 1 || mtl > MAX_TOKEN_LENGTH_LIMIT)
        return qc_fail(e, QC_ERR_FORMAT, "%s: max_token_length %d is outside 1..%d", path,
                       (int)mtl, MAX_TOKEN_LENGTH_LIMIT);
    t->max_token_length = mtl;
    size_t off = 4, used = 0;
    for (int i = 0; i < t->vocab_size; i++) {
        if (size - off < 8)
            return qc_fail(e, QC_ERR_FORMAT, "%s: token %d: truncated at byte offset %zu: its score "
                           "and length need 8 bytes, %zu left (vocab_size %d too large?)", path, i,
                           off, size - off, t->vocab_size);
        float score = qc_lef32(data + off);
        int32_t len = (int32_t)qc_le32(data + off + 4);
        off += 8;
        if (len < 1 || len > mtl)
            return qc_fail(e, QC_ERR_FORMAT, "%s: token %d: length %d at byte offset %zu is not in "
                           "1..max_token_length (%d)", path, i, (int)len, off - 4, (int)mtl);
        if (size - off < (size_t)len)
            return qc_fail(e, QC_ERR_FORMAT, "%s: token %d: truncated at byte offset %zu: %d bytes "
                           "of text, %zu left", path, i, off, (int)len, size - off);
        if (memchr(data + off, 0, (size_t)len))
            return qc_fail(e, QC_ERR_FORMAT, "%s: token %d: its text contains a NUL byte", path, i);
        /* the arena has room: each piece takes len + 1 <= len + 8 bytes of the file */
        QC_ASSERT(used + (size_t)len + 1 <= size);
        memcpy(ix->arena + used, data + off, (size_t)len);
        ix->arena[used + (size_t)len] = '\0';
        t->pieces[i] = ix->arena + used;
        t->piece_len[i] = len;
        t->scores[i] = score;
        used += (size_t)len + 1;
        off += (size_t)len;
    }
    if (off != size)
        return qc_fail(e, QC_ERR_FORMAT, "%s: %zu trailing bytes after the %d tokens (is vocab_size "
                       "right?)", path, size - off, t->vocab_size);
    return QC_OK;
}

qc_status qc_tokenizer_load(qc_tokenizer *t, const char *path, int vocab_size, qc_err *e) {
    if (qc_str_ends_with(path, ".json")) {
        qc_status st = qc_tokenizer_load_json(t, path, e);
        if (!st && t->vocab_size > vocab_size) {
            st = qc_fail(e, QC_ERR_ARG, "%s: the tokenizer has ids up to %d; the model's vocabulary has %d", path,
                         t->vocab_size - 1, vocab_size);
            qc_tokenizer_free(t);
        }
        return st;
    }
    memset(t, 0, sizeof *t);
    if (vocab_size < 1 || vocab_size > VOCAB_SIZE_LIMIT)
        return qc_fail(e, QC_ERR_ARG, "%s: vocab_size %d is outside 1..%d", path, vocab_size,
                       VOCAB_SIZE_LIMIT);
    qc_map m;
    qc_status st = qc_map_open(&m, path, e);
    if (st) return st;
    /* each token takes at least 9 bytes (score, length, one byte): a file too short for the
     * vocabulary is refused before anything is allocated for it */
    if (m.size < 4 || (m.size - 4) / 9 < (size_t)vocab_size) {
        st = qc_fail(e, QC_ERR_FORMAT, "%s: truncated: %zu bytes, too short for %d tokens (they need at least %zu; is "
                     "the vocabulary size right?)", path, m.size, vocab_size, 4 + (size_t)vocab_size * 9);
        qc_map_close(&m);
        return st;
    }
    t->vocab_size = vocab_size;
    t->bos_id = 1; /* fixed in llama2.c's vocabularies: 0 <unk>, 1 <s>, 2 </s> */
    t->eos_id = 2;
    t->add_bos = true;
    tok_index *ix = qc_calloc(1, sizeof *ix, e, path);
    t->index = ix;
    t->path = qc_strdup(path, e);
    t->pieces = qc_calloc((size_t)vocab_size, sizeof *t->pieces, e, path);
    t->piece_len = qc_calloc((size_t)vocab_size, sizeof *t->piece_len, e, path);
    t->scores = qc_calloc((size_t)vocab_size, sizeof *t->scores, e, path);
    if (ix) ix->arena = qc_malloc(m.size, 1, e, path);
    if (!ix || !ix->arena || !t->path || !t->pieces || !t->piece_len || !t->scores) st = QC_ERR_NOMEM;
    if (!st) st = parse(t, ix, m.data, m.size, e);
    if (!st) st = build_index(t, ix, e);
    qc_map_close(&m);
    if (st) qc_tokenizer_free(t);
    return st;
}

qc_status qc_tokenizer_from_vocab(qc_tokenizer *t, int vocab_size, const char *const *pieces, const int *lens,
                                  const float *scores, int bos_id, int eos_id, const char *source, qc_err *e) {
    memset(t, 0, sizeof *t);
    if (vocab_size < 1 || vocab_size > VOCAB_SIZE_LIMIT)
        return qc_fail(e, QC_ERR_ARG, "%s: vocab_size %d is outside 1..%d", source, vocab_size, VOCAB_SIZE_LIMIT);
    if (bos_id < 0 || bos_id >= vocab_size || eos_id < 0 || eos_id >= vocab_size)
        return qc_fail(e, QC_ERR_ARG, "%s: BOS id %d or EOS id %d is outside the vocabulary of %d", source, bos_id,
                       eos_id, vocab_size);
    size_t total = 0;
    int mtl = 0;
    for (int i = 0; i < vocab_size; i++) {
        if (lens[i] < 1 || lens[i] > MAX_TOKEN_LENGTH_LIMIT)
            return qc_fail(e, QC_ERR_FORMAT, "%s: token %d: length %d is not in 1..%d", source, i, lens[i],
                           MAX_TOKEN_LENGTH_LIMIT);
        if (memchr(pieces[i], 0, (size_t)lens[i]))
            return qc_fail(e, QC_ERR_FORMAT, "%s: token %d: its text contains a NUL byte", source, i);
        total += (size_t)lens[i] + 1;
        if (lens[i] > mtl) mtl = lens[i];
    }
    t->vocab_size = vocab_size;
    t->max_token_length = mtl;
    t->bos_id = bos_id;
    t->eos_id = eos_id;
    t->add_bos = true;
    tok_index *ix = qc_calloc(1, sizeof *ix, e, source);
    t->index = ix;
    t->path = qc_strdup(source, e);
    t->pieces = qc_calloc((size_t)vocab_size, sizeof *t->pieces, e, source);
    t->piece_len = qc_calloc((size_t)vocab_size, sizeof *t->piece_len, e, source);
    t->scores = qc_calloc((size_t)vocab_size, sizeof *t->scores, e, source);
    if (ix) ix->arena = qc_malloc(total, 1, e, source);
    qc_status st = QC_OK;
    if (!ix || !ix->arena || !t->path || !t->pieces || !t->piece_len || !t->scores) st = QC_ERR_NOMEM;
    for (size_t i = 0, used = 0; !st && i < (size_t)vocab_size; i++) {
        memcpy(ix->arena + used, pieces[i], (size_t)lens[i]);
        ix->arena[used + (size_t)lens[i]] = '\0';
        t->pieces[i] = ix->arena + used;
        t->piece_len[i] = lens[i];
        t->scores[i] = scores ? scores[i] : 0.0f;
        used += (size_t)lens[i] + 1;
    }
    if (!st) st = build_index(t, ix, e);
    if (st) qc_tokenizer_free(t);
    return st;
}

void qc_tokenizer_free(qc_tokenizer *t) {
    if (!t) return;
    tok_index *ix = t->index;
    if (ix) {
        free(ix->arena);
        free(ix->slots);
        free(ix);
    }
    free(t->pieces);
    free(t->piece_len);
    free(t->scores);
    free(t->path);
    hf_tok_free(t->hf);
    memset(t, 0, sizeof *t);
}
