/* encode.c — qc_tokenizer_encode: llama2.c run.c's BPE encoder, producing the same ids in
 * O(n log n) instead of O(n^2).
 *
 * run.c's algorithm, which this reproduces token for token:
 *   1. [BOS] if asked; then the " " piece (the dummy prefix) if the text is non-empty;
 *   2. the text split into groups: a byte plus the continuation bytes (10xxxxxx) that follow
 *      it, at most 4 bytes per group; a group that is a piece becomes that token, otherwise
 *      each of its bytes b becomes token b + 3 (byte fallback);
 *   3. repeatedly: among all adjacent pairs whose concatenated text is a piece scoring
 *      above -1e10 (run.c's initial best score, compared with a strict >), merge the one
 *      with the highest score, the leftmost on ties; stop when there is none;
 *   4. [EOS] if asked (after merging, so it never merges).
 * run.c rescans every pair after each merge. Here the tokens form a doubly linked list
 * (node i keeps its position i for ever, so node order is text order) and candidate pairs
 * sit in a (4-ary) max-heap keyed by (score, then lower left node first), which is exactly
 * run.c's choice. A merge changes only the pairs touching the merged node, so it pushes at
 * most two new candidates; stale entries are not removed but recognised when popped (the
 * pair at that node no longer merges with that score). An entry that still matches is a
 * true current pair with that key, and every current pair has its own entry, so the top
 * matching entry is run.c's choice.
 *
 * Differences from run.c that concern no valid use: the text has an explicit length and may
 * contain NUL bytes (run.c stops at the first NUL; here a NUL is an ordinary byte, and since
 * no piece contains NUL it always falls back to token 3); where run.c would emit an id
 * outside the vocabulary (no " " piece, a byte-fallback id >= vocab_size, BOS/EOS in a
 * vocabulary of fewer than 3 pieces) this returns an error.
 *
 * Pair lookups are memoised per call ((left id, right id) -> merged id), since text repeats
 * few distinct pairs and each lookup would otherwise hash the concatenated string.
 *
 * Memory: about 28 bytes per input byte (a 12-byte list node and up to two 8-byte heap keys
 * per token); node indices are 32-bit, so one call encodes at most about 4 GiB of text. */
#include "datasets/hf_internal.h"

#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX
#define MIN_MERGE_SCORE -1e10f /* run.c: float best_score = -1e10; a merge needs score > it */
#define ARITY 4 /* a 4-ary heap: half the depth of a binary one, siblings in one cache line */

/* One token of the sequence being merged. Node i starts as the i-th initial token; merging
 * keeps the left node and unlinks the right one, so live nodes stay in text order. */
typedef struct node {
    int32_t tok;   /* token id; -1 once merged into its left neighbour */
    uint32_t prev; /* previous live node, NONE at the start */
    uint32_t next; /* next live node, NONE at the end */
} node;

/* A memo slot: pair (left id, right id) -> the id it merges into. */
typedef struct pair_slot {
    uint64_t key; /* (left id << 32 | right id) + 1; 0 marks an empty slot */
    int32_t id;   /* the merged token, or -1 when the pair never merges */
} pair_slot;

typedef struct bpe {
    const qc_tokenizer *t;
    node *nodes;     /* (cap_nodes) the token list */
    uint32_t nnodes;
    uint64_t *heap;  /* (cap_heap) keys of candidate pairs (cand_key), a 4-ary max-heap */
    size_t nheap, cap_heap;
    char *buf;       /* (2 * max_token_length) the concatenation being looked up */
    pair_slot *memo; /* (memo_mask + 1) open addressing, at most half full */
    size_t memo_mask, memo_count;
} bpe;

/* ---- pair lookup ------------------------------------------------------------------------ */

static size_t memo_hash(uint64_t key, size_t mask) {
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}

/* Doubles the memo; false when out of memory (the memo is then left as it was). */
static bool memo_grow(bpe *b) {
    size_t size = (b->memo_mask + 1) * 2;
    pair_slot *slots = calloc(size, sizeof *slots);
    if (!slots) return false;
    for (size_t i = 0; i <= b->memo_mask; i++) {
        if (!b->memo[i].key) continue;
        size_t h = memo_hash(b->memo[i].key, size - 1);
        while (slots[h].key) h = (h + 1) & (size - 1);
        slots[h] = b->memo[i];
    }
    free(b->memo);
    b->memo = slots;
    b->memo_mask = size - 1;
    return true;
}

/* run.c's str_lookup(vocab[l] ++ vocab[r]) filtered by its merge floor: the merged token,
 * or -1 when the pair never merges. */
static int32_t pair_lookup(bpe *b, int32_t l, int32_t r) {
    uint64_t key = ((uint64_t)(uint32_t)l << 32 | (uint32_t)r) + 1;
    size_t h = memo_hash(key, b->memo_mask);
    for (; b->memo[h].key; h = (h + 1) & b->memo_mask)
        if (b->memo[h].key == key) return b->memo[h].id;
    const qc_tokenizer *t = b->t;
    size_t ll = (size_t)t->piece_len[l], rl = (size_t)t->piece_len[r];
    memcpy(b->buf, t->pieces[l], ll);
    memcpy(b->buf + ll, t->pieces[r], rl);
    int32_t id = qc_tokenizer_lookup(t, b->buf, ll + rl);
    if (id >= 0 && !(t->scores[id] > MIN_MERGE_SCORE)) id = -1; /* also rejects NaN */
    /* memoise while under half full; if growing fails the answer is still right, unmemoised */
    if ((b->memo_count + 1) * 2 <= b->memo_mask + 1 || memo_grow(b)) {
        h = memo_hash(key, b->memo_mask);
        while (b->memo[h].key) h = (h + 1) & b->memo_mask;
        b->memo[h] = (pair_slot){ key, id };
        b->memo_count++;
    }
    return id;
}

/* ---- the candidate heap ------------------------------------------------------------------- */

/* A candidate pair's heap key, ordered as run.c chooses: the higher score first, then the
 * leftmost. The score's bits become an unsigned integer of the same order (-0 as +0, which
 * run.c's > treats as equal; NaN never gets here); the left node's index is inverted in the
 * low half, so it can be read back. No key is 0. */
static uint64_t cand_key(float score, uint32_t left) {
    union { float f; uint32_t u; } v = { score == 0 ? 0.0f : score };
    uint32_t ord = (v.u & 0x80000000u) ? ~v.u : v.u | 0x80000000u;
    return (uint64_t)ord << 32 | (NONE - left);
}

static uint32_t cand_left(uint64_t key) { return NONE - (uint32_t)key; }

/* The key of the pair starting at live node `left` and the token it merges into (*id), or
 * 0 when there is no such pair or it never merges. */
static uint64_t pair_key(bpe *b, uint32_t left, int32_t *id) {
    const node *l = &b->nodes[left];
    if (l->tok < 0 || l->next == NONE) return 0;
    *id = pair_lookup(b, l->tok, b->nodes[l->next].tok);
    return *id < 0 ? 0 : cand_key(b->t->scores[*id], left);
}

static void sift_down(uint64_t *heap, size_t n, size_t i, uint64_t key) {
    for (;;) {
        size_t c = ARITY * i + 1, best = c;
        if (c >= n) break;
        size_t end = c + ARITY < n ? c + ARITY : n;
        for (size_t k = c + 1; k < end; k++)
            if (heap[k] > heap[best]) best = k;
        if (heap[best] <= key) break;
        heap[i] = heap[best];
        i = best;
    }
    heap[i] = key;
}

static void heap_push(bpe *b, uint32_t left) {
    int32_t id;
    uint64_t key = pair_key(b, left, &id);
    if (!key) return;
    QC_ASSERT(b->nheap < b->cap_heap);
    size_t i = b->nheap++;
    while (i > 0 && key > b->heap[(i - 1) / ARITY]) {
        b->heap[i] = b->heap[(i - 1) / ARITY];
        i = (i - 1) / ARITY;
    }
    b->heap[i] = key;
}

static uint64_t heap_pop(bpe *b) {
    uint64_t top = b->heap[0];
    b->nheap--;
    if (b->nheap > 0) sift_down(b->heap, b->nheap, 0, b->heap[b->nheap]);
    return top;
}

/* ---- the algorithm --------------------------------------------------------------------------- */

static void add_node(bpe *b, int32_t id) {
    uint32_t i = b->nnodes++;
    b->nodes[i] = (node){ id, i ? i - 1 : NONE, NONE };
    if (i) b->nodes[i - 1].next = i;
}

/* Steps 1-2: BOS, the dummy prefix and one token per code point (or per byte). */
static qc_status initial_tokens(bpe *b, const char *text, size_t len, bool bos, qc_err *e) {
    const qc_tokenizer *t = b->t;
    if (bos) add_node(b, t->bos_id);
    if (len > 0) {
        int space = qc_tokenizer_lookup(t, " ", 1);
        if (space < 0)
            return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: the vocabulary has no \" \" piece for the "
                           "dummy prefix", t->path);
        add_node(b, space);
    }
    size_t i = 0;
    while (i < len) {
        size_t end = i + 1;
        while (end < len && end - i < 4 && ((unsigned char)text[end] & 0xC0) == 0x80) end++;
        int id = qc_tokenizer_lookup(t, text + i, end - i);
        if (id >= 0) {
            add_node(b, id);
        } else {
            for (size_t k = i; k < end; k++) {
                int byte_id = (unsigned char)text[k] + 3;
                if (byte_id >= t->vocab_size)
                    return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: byte 0x%02X at text offset %zu needs "
                                   "byte-fallback token %d, beyond the vocabulary of %d", t->path,
                                   (unsigned char)text[k], k, byte_id, t->vocab_size);
                add_node(b, byte_id);
            }
        }
        i = end;
    }
    return QC_OK;
}

/* Step 3: merge until no adjacent pair is a piece. */
static void merge_all(bpe *b) {
    int32_t id;
    for (uint32_t i = 0; i + 1 < b->nnodes; i++) { /* every initial pair, heapified in O(n) */
        uint64_t key = pair_key(b, i, &id);
        if (key) b->heap[b->nheap++] = key;
    }
    for (size_t i = b->nheap / ARITY + 1; i-- > 0;)
        if (i < b->nheap) sift_down(b->heap, b->nheap, i, b->heap[i]);
    while (b->nheap > 0) {
        uint64_t key = heap_pop(b);
        uint32_t left = cand_left(key);
        if (pair_key(b, left, &id) != key) continue; /* stale: that pair has changed since */
        node *l = &b->nodes[left], *r = &b->nodes[l->next];
        l->tok = id;
        r->tok = -1;
        l->next = r->next;
        if (r->next != NONE) b->nodes[r->next].prev = left;
        if (l->prev != NONE) heap_push(b, l->prev);
        heap_push(b, left);
    }
}

qc_status qc_tokenizer_encode(const qc_tokenizer *t, const char *text, size_t len, bool bos,
                              bool eos, int32_t **ids, size_t *n, qc_err *e) {
    if (t->hf) return hf_encode(t, text, len, bos, eos, ids, n, e);
    *ids = NULL;
    *n = 0;
    if ((bos && t->bos_id >= t->vocab_size) || (eos && t->eos_id >= t->vocab_size))
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: BOS/EOS ids %d/%d are beyond the vocabulary of %d",
                       t->path, t->bos_id, t->eos_id, t->vocab_size);
    if (len > (size_t)UINT32_MAX - 4)
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: %zu bytes of text is more than one encode call "
                       "handles (4 GiB); encode it in parts", t->path, len);
    size_t cap_nodes = len + 2; /* BOS, dummy prefix, at most one token per byte */
    /* heap bound: n - 1 initial pairs, then each merge pops one key and pushes at most two,
     * and there are at most n - 1 merges: never more than 2n - 2 keys */
    bpe b = { .t = t, .cap_heap = 2 * cap_nodes, .memo_mask = 4095 };
    b.nodes = qc_malloc(cap_nodes, sizeof *b.nodes, e, "encode: token list");
    b.heap = qc_malloc(b.cap_heap, sizeof *b.heap, e, "encode: merge heap");
    b.buf = qc_malloc((size_t)t->max_token_length, 2, e, "encode: pair buffer");
    b.memo = qc_calloc(b.memo_mask + 1, sizeof *b.memo, e, "encode: pair memo");
    qc_status st = !b.nodes || !b.heap || !b.buf || !b.memo ? QC_ERR_NOMEM : QC_OK;
    if (!st) st = initial_tokens(&b, text, len, bos, e);
    if (!st) {
        merge_all(&b);
        size_t count = eos; /* node 0 is never merged away: the list starts there */
        for (uint32_t i = b.nnodes ? 0 : NONE; i != NONE; i = b.nodes[i].next) count++;
        int32_t *out = qc_malloc(count, sizeof *out, e, "encode: ids");
        if (!out) {
            st = QC_ERR_NOMEM;
        } else {
            size_t k = 0;
            for (uint32_t i = b.nnodes ? 0 : NONE; i != NONE; i = b.nodes[i].next) out[k++] = b.nodes[i].tok;
            if (eos) out[k++] = t->eos_id;
            QC_ASSERT(k == count);
            *ids = out;
            *n = count;
        }
    }
    free(b.nodes);
    free(b.heap);
    free(b.buf);
    free(b.memo);
    return st;
}
