/* hf_internal.h — internal to datasets/: what the Hugging Face tokenizer.json files share
 * (tokenizer_json.c loads, hf_encode.c runs the pipeline, hf_bpe.c merges, hf_regex.c splits;
 * tokenizer_write.c writes one from a llama2.c vocabulary).
 * Callers use datasets/datasets.h; a qc_tokenizer with a non-NULL `hf` is one of these.
 *
 * Text is handled as UTF-8 bytes throughout (validated on entry); "code point" below means one
 * UTF-8 sequence. The behaviour reproduced is Hugging Face's tokenizers (Rust) and its JS port
 * @huggingface/tokenizers, which agree on the files supported here (differences noted where
 * they are). */
#ifndef QC_HF_INTERNAL_H
#define QC_HF_INTERNAL_H

#include "datasets/datasets.h"

#include <stddef.h>
#include <stdint.h>

/* ---- the loaded tokenizer ----------------------------------------------------------------- */

typedef struct hf_added {
    char *content; /* owned */
    size_t len;
    int32_t id;
    bool lstrip, rstrip, special, normalized;
    char *match; /* what is looked for in text: content, or content normalized when matched in
                    normalized text (normalized and the file has a normalizer); owned */
    size_t match_len;
    bool in_normalized;
} hf_added;

typedef enum hf_norm_kind { NORM_PREPEND, NORM_REPLACE, NORM_NFC, NORM_NFD, NORM_NFKC, NORM_NFKD, NORM_STRIP } hf_norm_kind;

typedef struct hf_norm {
    hf_norm_kind kind;
    char *from, *to;  /* Prepend: to; Replace: from -> to (literal strings); owned */
    bool left, right; /* Strip */
} hf_norm;

typedef enum hf_pre_kind { PRE_SPLIT, PRE_BYTELEVEL, PRE_METASPACE } hf_pre_kind;

typedef struct hf_pre {
    hf_pre_kind kind;
    void *re;              /* Split, ByteLevel with use_regex: hf_regex_compile's regex */
    bool removed, invert;  /* Split: behaviour "Removed" (else "Isolated"); invert */
    bool add_prefix_space; /* ByteLevel */
    char *replacement;     /* Metaspace: usually "▁"; owned */
    int prepend;           /* Metaspace: 0 never, 1 first section only, 2 always */
    bool split;            /* Metaspace: split before each replacement */
} hf_pre;

/* One merge: (left id, right id) -> merged id, rank = its index in model.merges. */
typedef struct hf_merge_slot {
    uint64_t key; /* (left << 32 | right) + 1; 0 marks an empty slot */
    int32_t rank, id;
} hf_merge_slot;

typedef struct hf_tok {
    hf_norm *norms;
    int nnorms;
    hf_pre *pres;
    int npres;
    hf_added *added; /* (nadded) from "added_tokens" */
    int nadded;
    hf_merge_slot *merges;      /* (merge_mask + 1) open addressing, at most half full */
    size_t merge_mask;
    int32_t (*merge_list)[2];   /* (nmerges) model.merges in file order, as (left, right) ids */
    int nmerges;
    const char *ggml_pre;       /* llama.cpp's name of the split regex ("qwen2", ...), or NULL */
    bool byte_level;            /* a ByteLevel pre-tokenizer: GPT-2's byte map */
    bool *unused;               /* (vocab_size) ids the file leaves out (named "[PAD<id>]") */
    int32_t byte_ids[256]; /* byte fallback: the id of "<0xXX>", -1 where missing */
    bool byte_fallback, ignore_merges, fuse_unk;
    int32_t unk_id; /* -1: none */
    /* decoding: each id's text, as the file's decoder turns it into bytes */
    char **decoded;   /* (vocab_size) owned, back to back in decoded_arena */
    int *decoded_len; /* (vocab_size) */
    char *decoded_arena;
    bool strip_first_space; /* the decoder drops the leading space of the first token */
    void *cache;            /* hf_bpe.c's word cache (mutable behind a const tokenizer) */
} hf_tok;

/* The merge of ids (l, r): its rank, or -1 when the pair does not merge (*id untouched). */
int32_t hf_merge_rank(const hf_tok *h, int32_t l, int32_t r, int32_t *id);

/* ---- the pieces of the pipeline ------------------------------------------------------------- */

/* A growable byte buffer. */
typedef struct hf_buf {
    char *p;
    size_t len, cap;
} hf_buf;
bool hf_buf_put(hf_buf *b, const void *s, size_t n);
/* Appends id to the growing array *ids (*n used of *cap); false when out of memory (hf_bpe.c). */
bool hf_push_id(int32_t **ids, size_t *n, size_t *cap, int32_t id);

/* Words produced by pre-tokenization: byte ranges of one buffer. */
typedef struct hf_words {
    hf_buf text;
    size_t *off, *len;
    size_t n, cap;
} hf_words;
bool hf_words_add(hf_words *w, const char *s, size_t n);
void hf_words_free(hf_words *w);

/* Length of the UTF-8 sequence starting with byte c (valid text assumed): 1..4. */
static inline size_t hf_utf8_len(unsigned char c) { return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }
/* Offset of the first byte of s[0..n) that does not start a valid UTF-8 sequence (overlong,
 * surrogate, beyond U+10FFFF, cut short), or n (hf_encode.c). */
size_t hf_utf8_invalid_at(const char *s, size_t n);

/* Whether the code point at s (valid UTF-8, n bytes left) is white space as JavaScript's \s
 * and String.trim define it; *len gets its byte length. */
bool hf_is_js_space(const char *s, size_t n, size_t *len);

/* Compiles a tokenizer.json regex (Oniguruma syntax as the files write it) for PCRE2 with
 * UTF and Unicode properties, rewriting what differs from the reference's reading: \s and \S
 * as JavaScript's white space, and (?i:...) folding ASCII letters only. Returns the compiled
 * regex (keeping the pattern and `where` for messages), or NULL with a message naming `where`. */
void *hf_regex_compile(const char *pattern, const char *where, qc_err *e);
void hf_regex_free(void *re);
/* Splits s into the words of a regex pre-tokenizer: every match, and with `isolated` the
 * text between matches too, as JavaScript's matchAll finds them (an empty match advances one
 * code point). Appends to out. Fails, naming the file and the pattern, when the regex
 * backtracks past the limits of hf_regex.c. */
qc_status hf_regex_split(const void *re, const char *s, size_t n, bool keep_matches, bool keep_gaps,
                         hf_words *out, qc_err *e);

/* The ids of one pre-tokenized word by the BPE model (ignore_merges, merges by rank, byte
 * fallback or unk for code points outside the vocabulary), appended to ids/n (capacity cap,
 * grown as needed). Memoised per word. */
qc_status hf_bpe_word(const qc_tokenizer *t, const char *w, size_t n, int32_t **ids, size_t *count, size_t *cap,
                      qc_err *e);
void hf_bpe_cache_free(void *cache);

/* The file's normalizers applied to s, into out (cleared first). */
qc_status hf_normalize(const hf_tok *h, const char *s, size_t n, hf_buf *out, qc_err *e);

/* The tokenizer.json pipeline for one text (see hf_encode.c). */
qc_status hf_encode(const qc_tokenizer *t, const char *text, size_t len, bool bos, bool eos, int32_t **ids,
                    size_t *n, qc_err *e);

void hf_tok_free(hf_tok *h);

#endif
