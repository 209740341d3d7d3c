/* hf_bpe.c — the BPE model of tokenizer.json for one pre-tokenized word: merges by rank.
 *
 * The word starts as one symbol per code point (its id, or "unknown" when the vocabulary has
 * no such piece). Repeatedly the adjacent pair with the lowest merge rank is merged, the
 * leftmost on ties — the order of tokenizers' merge_all and of the JS port's priority queue
 * (rank + position / length). Symbols form a linked list; candidate pairs sit in a binary
 * min-heap keyed (rank << 32 | left position); an entry is stale when the pair now at its
 * position merges with another rank (pieces only grow, so an equal rank means the same two
 * symbols). Unknown symbols never merge; afterwards each becomes its bytes' "<0xXX>" tokens
 * (byte_fallback, when all exist) or unk (consecutive ones fused with fuse_unk) or nothing.
 * With ignore_merges a word that is itself a piece is that piece.
 *
 * Words of SentencePiece-style files with no pre-tokenizer are whole documents (a megabyte
 * of WikiText is one word), so the merge is O(n log n) with scratch arrays reused between
 * calls. Byte-level files split text into short words that repeat: results of words up to
 * CACHE_WORD_MAX bytes are memoised (cleared when CACHE_SLOTS / 2 are held). The cache makes
 * encoding with one tokenizer single-threaded. */
#include "datasets/hf_internal.h"

#include <stdlib.h>
#include <string.h>

#define CACHE_SLOTS (1u << 17)
#define CACHE_WORD_MAX 256
#define NONE UINT32_MAX

typedef struct cache_slot {
    uint64_t hash;             /* 0: empty */
    uint32_t key_off, key_len; /* the word in keys */
    uint32_t ids_off, ids_n;   /* its ids in ids */
} cache_slot;

typedef struct sym {
    int32_t tok;   /* id; -1 unknown; -2 merged into its left neighbour */
    uint32_t prev, next;
    uint32_t off;  /* byte offset of its first code point in the word */
} sym;

typedef struct bpe_cache {
    cache_slot *slots; /* (CACHE_SLOTS) */
    size_t count;
    hf_buf keys;
    int32_t *ids;
    size_t nids, cap_ids;
    sym *syms; /* scratch for one word */
    uint64_t *heap;
    size_t cap_syms;
} bpe_cache;

int32_t hf_merge_rank(const hf_tok *h, int32_t l, int32_t r, int32_t *id) {
    if (l < 0 || r < 0 || !h->merges) return -1;
    uint64_t key = ((uint64_t)(uint32_t)l << 32 | (uint32_t)r) + 1;
    for (size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & h->merge_mask;; i = (i + 1) & h->merge_mask) {
        if (!h->merges[i].key) return -1;
        if (h->merges[i].key == key) {
            *id = h->merges[i].id;
            return h->merges[i].rank;
        }
    }
}

static uint64_t word_hash(const char *s, size_t n) {
    uint64_t x = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) x = (x ^ (unsigned char)s[i]) * 1099511628211ull;
    return x | 1;
}

void hf_bpe_cache_free(void *cache) {
    bpe_cache *c = cache;
    if (!c) return;
    free(c->slots);
    free(c->keys.p);
    free(c->ids);
    free(c->syms);
    free(c->heap);
    free(c);
}

bool hf_push_id(int32_t **ids, size_t *n, size_t *cap, int32_t id) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 256;
        int32_t *p = realloc(*ids, nc * sizeof *p);
        if (!p) return false;
        *ids = p;
        *cap = nc;
    }
    (*ids)[(*n)++] = id;
    return true;
}

/* ---- the heap ------------------------------------------------------------------------------- */

static void heap_push(uint64_t *h, size_t *n, uint64_t key) {
    size_t i = (*n)++;
    while (i > 0 && h[(i - 1) / 2] > key) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = key;
}

static uint64_t heap_pop(uint64_t *h, size_t *n) {
    uint64_t top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1] < h[c]) c++;
        if (h[c] >= last) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

/* Pushes the pair starting at symbol i, if it merges. */
static void push_pair(const hf_tok *h, sym *s, uint32_t i, uint64_t *heap, size_t *nheap) {
    int32_t id;
    if (s[i].next == NONE) return;
    int32_t rank = hf_merge_rank(h, s[i].tok, s[s[i].next].tok, &id);
    if (rank >= 0) heap_push(heap, nheap, (uint64_t)(uint32_t)rank << 32 | i);
}

/* ---- one word ------------------------------------------------------------------------------- */

static bool grow_scratch(bpe_cache *c, size_t nsyms) {
    if (nsyms <= c->cap_syms) return true;
    size_t cap = nsyms < 1024 ? 1024 : nsyms;
    sym *s = realloc(c->syms, cap * sizeof *s);
    if (s) c->syms = s;
    uint64_t *hp = s ? realloc(c->heap, 3 * cap * sizeof *hp) : NULL; /* n-1 pairs + 2 per merge */
    if (hp) c->heap = hp;
    if (!s || !hp) return false;
    c->cap_syms = cap;
    return true;
}

/* The merged ids of w into ids (not cached). */
static qc_status merge_word(const qc_tokenizer *t, bpe_cache *c, const char *w, size_t n, int32_t **ids,
                            size_t *count, size_t *cap, qc_err *e) {
    const hf_tok *h = t->hf;
    size_t nsyms = 0;
    for (size_t i = 0; i < n; i += hf_utf8_len((unsigned char)w[i])) nsyms++;
    if (!grow_scratch(c, nsyms)) return qc_fail(e, QC_ERR_NOMEM, "%s: out of memory for a word of %zu bytes", t->path, n);
    sym *s = c->syms;
    size_t k = 0;
    for (size_t i = 0; i < n; k++) {
        size_t cl = hf_utf8_len((unsigned char)w[i]);
        s[k] = (sym){ qc_tokenizer_lookup(t, w + i, cl), k ? (uint32_t)k - 1 : NONE, k + 1 < nsyms ? (uint32_t)k + 1 : NONE,
                      (uint32_t)i };
        i += cl;
    }
    size_t nheap = 0;
    for (uint32_t i = 0; i + 1 < nsyms; i++) push_pair(h, s, i, c->heap, &nheap);
    while (nheap) {
        uint64_t key = heap_pop(c->heap, &nheap);
        uint32_t i = (uint32_t)key;
        int32_t id = -1;
        if (s[i].tok < 0 || s[i].next == NONE || hf_merge_rank(h, s[i].tok, s[s[i].next].tok, &id) != (int32_t)(key >> 32))
            continue; /* stale */
        uint32_t r = s[i].next;
        s[i].tok = id;
        s[r].tok = -2;
        s[i].next = s[r].next;
        if (s[r].next != NONE) s[s[r].next].prev = i;
        if (s[i].prev != NONE) push_pair(h, s, s[i].prev, c->heap, &nheap);
        push_pair(h, s, i, c->heap, &nheap);
    }
    bool ok = true, last_unk = false;
    for (uint32_t i = nsyms ? 0 : NONE; i != NONE && ok; i = s[i].next) {
        if (s[i].tok >= 0) {
            ok = hf_push_id(ids, count, cap, s[i].tok);
            last_unk = false;
            continue;
        }
        size_t b0 = s[i].off, b1 = s[i].next != NONE ? s[s[i].next].off : n;
        bool all = h->byte_fallback;
        for (size_t b = b0; all && b < b1; b++) all = h->byte_ids[(unsigned char)w[b]] >= 0;
        if (all) {
            for (size_t b = b0; ok && b < b1; b++) ok = hf_push_id(ids, count, cap, h->byte_ids[(unsigned char)w[b]]);
            last_unk = false;
        } else if (h->unk_id >= 0) {
            if (!(h->fuse_unk && last_unk)) ok = hf_push_id(ids, count, cap, h->unk_id);
            last_unk = true;
        }
    }
    return ok ? QC_OK : qc_fail(e, QC_ERR_NOMEM, "%s: out of memory for token ids", t->path);
}

qc_status hf_bpe_word(const qc_tokenizer *t, const char *w, size_t n, int32_t **ids, size_t *count, size_t *cap,
                      qc_err *e) {
    hf_tok *h = t->hf;
    if (n == 0) return QC_OK;
    if (h->ignore_merges) {
        int32_t id = qc_tokenizer_lookup(t, w, n);
        if (id >= 0) return hf_push_id(ids, count, cap, id) ? QC_OK : qc_fail(e, QC_ERR_NOMEM, "out of memory");
    }
    bpe_cache *c = h->cache;
    if (!c) {
        c = h->cache = calloc(1, sizeof *c);
        if (c) c->slots = calloc(CACHE_SLOTS, sizeof *c->slots);
        if (!c || !c->slots) return qc_fail(e, QC_ERR_NOMEM, "%s: out of memory for the word cache", t->path);
    }
    if (n > CACHE_WORD_MAX) return merge_word(t, c, w, n, ids, count, cap, e);
    uint64_t hash = word_hash(w, n);
    size_t slot = (size_t)hash & (CACHE_SLOTS - 1);
    for (; c->slots[slot].hash; slot = (slot + 1) & (CACHE_SLOTS - 1)) {
        cache_slot *cs = &c->slots[slot];
        if (cs->hash == hash && cs->key_len == n && memcmp(c->keys.p + cs->key_off, w, n) == 0) {
            for (uint32_t i = 0; i < cs->ids_n; i++)
                if (!hf_push_id(ids, count, cap, c->ids[cs->ids_off + i])) return qc_fail(e, QC_ERR_NOMEM, "out of memory");
            return QC_OK;
        }
    }
    size_t first = *count;
    qc_status st = merge_word(t, c, w, n, ids, count, cap, e);
    if (st) return st;
    if (c->count + 1 > CACHE_SLOTS / 2 || c->keys.len + n > UINT32_MAX || c->nids + (*count - first) > UINT32_MAX) {
        memset(c->slots, 0, CACHE_SLOTS * sizeof *c->slots); /* full: start over */
        c->count = c->keys.len = c->nids = 0;
        for (slot = (size_t)hash & (CACHE_SLOTS - 1); c->slots[slot].hash;) slot = (slot + 1) & (CACHE_SLOTS - 1);
    }
    cache_slot cs = { hash, (uint32_t)c->keys.len, (uint32_t)n, (uint32_t)c->nids, (uint32_t)(*count - first) };
    for (size_t i = first; i < *count; i++)
        if (!hf_push_id(&c->ids, &c->nids, &c->cap_ids, (*ids)[i])) return QC_OK; /* not memoised: still right */
    if (!hf_buf_put(&c->keys, w, n)) {
        c->nids = cs.ids_off;
        return QC_OK;
    }
    c->slots[slot] = cs;
    c->count++;
    return QC_OK;
}
