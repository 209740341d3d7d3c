/* datasets.h — text in, tokens out: corpus readers (plain text, JSON lines, gzip'd JSON
 * lines), the tokenizers (llama2.c's and Hugging Face's tokenizer.json, read, and written into
 * output folders), and the samplers that cut token streams into windows. Nothing here knows
 * about the model. */
#ifndef QC_DATASETS_H
#define QC_DATASETS_H

#include "base/base.h"

/* ---- corpora ------------------------------------------------------------------------------ */

/* Most text a single corpus may decompress or read (a guard against gzip bombs); calibration
 * text has a tighter bound, from the memory budget (QC_CALIB_TEXT_MEM). */
#define QC_CORPUS_MAX_BYTES ((size_t)8 << 30)

/* Bytes of memory one calibration source may take per byte of its text while it is read and
 * its windows are drawn (calib_set.c derives the figure from the allocations): the budget
 * divided by it bounds the text of one source, and the memory plan counts it. */
#define QC_CALIB_TEXT_MEM 48

/* The documents of one text source, stored back to back in one buffer.
 * Plain text: the whole file is one document, bytes as stored (CRLF kept).
 * JSON lines (".jsonl", ".json", optionally ".gz"): one document per non-blank line, its
 * "text" string field. Gzip is recognised by its magic bytes, whatever the name. */
typedef struct qc_corpus {
    char *text;       /* all documents back to back, plus a final NUL; owned */
    size_t len;       /* bytes in text, excluding the final NUL */
    size_t ndocs;
    size_t *doc_off;  /* (ndocs) start of each document in text */
    size_t *doc_len;  /* (ndocs) its length in bytes */
    char *path;       /* owned copy, for messages */
    uint64_t hash;    /* qc_hash64 of the file's bytes as read (before inflating) */
} qc_corpus;

/* Fails (naming the file, and the line for JSONL) on a missing file, corrupt gzip, a
 * line that is not a JSON object with a string "text", or a corpus with no text at all. */
qc_status qc_corpus_load(qc_corpus *c, const char *path, qc_err *e);
/* The same with at most max_bytes of text (the file as stored, and inflated): beyond it the
 * source is refused as soon as the bound is passed, before more is read or inflated. */
qc_status qc_corpus_load_max(qc_corpus *c, const char *path, size_t max_bytes, qc_err *e);
void qc_corpus_free(qc_corpus *c); /* NULL or zeroed: no-op */

/* The text evaluated as one stream: the documents joined by "\n\n" (as the GPTQ
 * reference joins WikiText and C4 documents). Newly allocated, NUL-terminated. */
qc_status qc_corpus_joined(const qc_corpus *c, char **text, size_t *len, qc_err *e);

/* ---- tokenizer ------------------------------------------------------------------------------ */

/* llama2.c's tokenizer (tokenizer.bin / tok512.bin): int32 max_token_length, then per
 * token f32 score, int32 byte length, the bytes. The file does not store the vocabulary
 * size; the model supplies it. Encoding and decoding follow llama2.c's run.c exactly. */
typedef struct qc_tokenizer {
    int vocab_size;
    int max_token_length;
    char **pieces;          /* (vocab_size) NUL-terminated token strings; owned */
    int *piece_len;         /* (vocab_size) their byte lengths */
    float *scores;          /* (vocab_size) merge priority: higher merges first */
    int bos_id, eos_id;     /* 1, 2 in llama2.c vocabularies; -1 when a tokenizer.json has none */
    bool add_bos;           /* a model's text starts with BOS (eval, calibration): llama2.c always */
    void *index;            /* internal lookup from string to id */
    void *hf;               /* non-NULL: a Hugging Face tokenizer.json (datasets/hf_internal.h) */
    char *path;
} qc_tokenizer;

/* A path ending in ".json" is a Hugging Face tokenizer.json (qc_tokenizer_load_json), whose
 * ids must then fit in vocab_size (a model's embedding may have more rows than the tokenizer
 * has ids); anything else a llama2.c file of exactly vocab_size pieces. */
qc_status qc_tokenizer_load(qc_tokenizer *t, const char *path, int vocab_size, qc_err *e);

/* A Hugging Face tokenizer.json, with tokenizer_config.json and config.json beside it when
 * present (BOS/EOS and add_bos; details in tokenizer_json.c): the BPE model of SentencePiece-
 * style files (Llama 2, Mistral, TinyLlama: "▁", byte fallback) and of byte-level ones
 * (Llama 3, Qwen2/3, GPT-2), encoding exactly as Hugging Face's tokenizers. vocab_size is the
 * highest id + 1. Refuses what it does not support, naming the field. */
qc_status qc_tokenizer_load_json(qc_tokenizer *t, const char *path, qc_err *e);
void qc_tokenizer_free(qc_tokenizer *t);

/* The same tokenizer from a vocabulary in memory (e.g. a GGUF file's tokenizer.ggml.tokens and
 * scores): piece i is pieces[i][0..lens[i]) (copied; no terminator needed), scores may be NULL
 * (all 0). max_token_length becomes the longest piece. The checks of the file format apply
 * (1 <= length <= 65536, no NUL byte), and BOS/EOS must be in the vocabulary. `source` names
 * the vocabulary in messages and becomes t->path. */
qc_status qc_tokenizer_from_vocab(qc_tokenizer *t, int vocab_size, const char *const *pieces, const int *lens,
                                  const float *scores, int bos_id, int eos_id, const char *source, qc_err *e);

/* The tokenizer files of an output folder being built (tokenizer_write.c), in the form its
 * consumer reads. hf (a Hugging Face-style folder): tokenizer.json and tokenizer_config.json,
 * made from a llama2.c vocabulary in Llama 2's layout (SentencePiece-style BPE with byte
 * fallback, merges ranked by score as transformers converts SentencePiece models; encodes as
 * qc_tokenizer_encode does). !hf (a llama2.c folder): tokenizer.bin in llama2.c's layout.
 * Either way a tokenizer read from a tokenizer.json is copied, with the tokenizer_config.json
 * beside it when there is one. */
qc_status qc_tokenizer_write_into(const qc_tokenizer *t, const qc_outdir *d, bool hf, qc_err *e);
/* What qc_tokenizer_write_into would refuse of t (a llama2.c vocabulary it cannot write as a
 * tokenizer.json: BOS, EOS and <unk> not three different tokens, a NaN score), for a caller
 * to refuse before long work. */
qc_status qc_tokenizer_check_write(const qc_tokenizer *t, bool hf, qc_err *e);

/* Writes a SYNTHETIC llama2.c tokenizer of vocab_size pieces (specials, byte tokens,
 * ASCII, then letter strings; tok_synth.c), atomically: for synthetic benchmark models. */
qc_status qc_tokenizer_write_synthetic(const char *path, int vocab_size, qc_err *e);

/* The id whose piece is exactly s[0..len), or -1. Where a vocabulary repeats a piece, the
 * lowest id. */
int qc_tokenizer_lookup(const qc_tokenizer *t, const char *s, size_t len);

/* A tokenizer.json tokenizer encodes as Hugging Face's tokenizers do (with BOS/EOS only when
 * asked; the text must be valid UTF-8). A llama2.c one as run.c's encode: optional BOS; a leading " " token when the text is non-empty (the
 * dummy prefix); one token per UTF-8 code point found in the vocabulary, else one token
 * per byte (id = byte + 3); then repeatedly the adjacent pair whose concatenation has the
 * highest score is merged (leftmost on ties) until none is in the vocabulary; optional
 * EOS. Runs in O(n log n), so whole corpora can be encoded at once. *ids is newly
 * allocated. The text may contain NUL bytes (byte-fallback token 3). Fails, rather than emit
 * an id outside the vocabulary, when it lacks a piece this needs (" " for non-empty text,
 * a byte-fallback id, BOS/EOS), and for texts over 4 GiB. */
qc_status qc_tokenizer_encode(const qc_tokenizer *t, const char *text, size_t len, bool bos,
                              bool eos, int32_t **ids, size_t *n, qc_err *e);
/* The text of a file (plain, JSONL, .json.gz; documents joined by "\n\n") as token ids with
 * BOS at the start when the tokenizer adds one (t->add_bos); *docs and *bytes describe what
 * was read (text_tokens.c). */
qc_status qc_tokenizer_encode_file(const qc_tokenizer *t, const char *path, int32_t **ids, size_t *n, size_t *docs,
                                   size_t *bytes, qc_err *e);

/* The text of one token given the one before it. tokenizer.json: the bytes the file's decoder
 * makes of it (the first token after BOS loses a leading space where the decoder strips one).
 * llama2.c: run.c's decode: a piece following BOS loses its
 * leading space; a "<0xXX>" piece is that raw byte. Returns a pointer into the tokenizer
 * (or into `byte`, a caller buffer of 2 bytes) and its length; NULL (and *len = 0) for a
 * token outside the vocabulary. */
const char *qc_tokenizer_piece(const qc_tokenizer *t, int32_t prev, int32_t token, char byte[2],
                               size_t *len);

/* Decodes a whole sequence (prev of the first token is `prev`, e.g. BOS) into a newly
 * allocated NUL-terminated buffer. Ids outside the vocabulary are an error. */
qc_status qc_tokenizer_decode(const qc_tokenizer *t, int32_t prev, const int32_t *ids, size_t n,
                              char **text, size_t *len, qc_err *e);

/* ---- the vocabulary as GGUF describes it (llama.cpp's conventions) ---------------------------- */

/* Token types, numbered as llama.h's llama_token_type. */
enum { QC_TOKEN_NORMAL = 1, QC_TOKEN_UNKNOWN = 2, QC_TOKEN_CONTROL = 3, QC_TOKEN_USER_DEFINED = 4,
       QC_TOKEN_UNUSED = 5, QC_TOKEN_BYTE = 6 };

/* A byte-level BPE tokenizer.json (GGUF tokenizer.ggml.model "gpt2", pieces and merges);
 * otherwise SentencePiece-style ("llama": pieces and scores; a tokenizer.json's scores are
 * minus the rank of the first merge producing the piece, 0 for the others). */
bool qc_tokenizer_byte_level(const qc_tokenizer *t);
/* Type of token id: special added tokens control, other added tokens user-defined, unk,
 * "<0xXX>" byte-fallback pieces, ids the file leaves out unused; llama2.c: 0 unknown, BOS/EOS
 * control, "<0xXX>" bytes. */
int qc_tokenizer_token_type(const qc_tokenizer *t, int id);
/* A tokenizer.json's merges in file order, as (left, right) ids; 0 for llama2.c. */
int qc_tokenizer_merge_count(const qc_tokenizer *t);
void qc_tokenizer_merge(const qc_tokenizer *t, int i, int32_t *left, int32_t *right);
/* llama.cpp's name for the pre-tokenizer's split regex (tokenizer.ggml.pre: "llama-bpe", "qwen2",
 * "gpt-2"), NULL when it is not one llama.cpp knows or there is none. */
const char *qc_tokenizer_pre_name(const qc_tokenizer *t);
/* The unk id (-1: none); 0 for llama2.c. */
int qc_tokenizer_unk_id(const qc_tokenizer *t);

/* ---- windows ----------------------------------------------------------------------------------- */

/* n windows of seqlen tokens each, stored row by row. */
typedef struct qc_windows {
    int n;
    int seqlen;
    int32_t *tokens; /* (n, seqlen) owned */
    uint64_t *source_hash; /* (nsources) qc_hash64 of each source file's bytes as read; owned */
    int nsources;          /* the files the windows came from (0: made in memory) */
    int first, total;      /* a rank's share (qc_windows_take_share): windows [first, first + n)
                              of total; total 0: the whole set */
} qc_windows;

/* Keeps rank `rank`'s share of the nranks ranks of a distributed run: the contiguous windows
 * [rank·n/nranks, (rank+1)·n/nranks). More ranks than windows is an error naming both. */
qc_status qc_windows_take_share(qc_windows *w, int rank, int nranks, qc_err *e);
/* All the windows w is a share of (w->n when it is the whole set). */
static inline int qc_windows_total(const qc_windows *w) { return w->total ? w->total : w->n; }

void qc_windows_free(qc_windows *w);

/* The evaluation protocol (QUANT-SPEC §6): consecutive non-overlapping windows from the
 * start of the stream; the incomplete tail is dropped. Fails when not one window fits. */
qc_status qc_windows_sequential(const int32_t *ids, size_t n, int seqlen, qc_windows *w, qc_err *e);

/* nsamples random windows as the GPTQ reference's data loaders draw them from one token
 * stream: random.seed(seed); for each sample i = random.randint(0, n - seqlen - 1);
 * window = ids[i : i + seqlen]. Fails when the stream has no more than seqlen tokens. */
qc_status qc_windows_random(const int32_t *ids, size_t n, int nsamples, int seqlen, uint64_t seed,
                            qc_windows *w, qc_err *e);

/* Calibration windows from one or more text sources (plain, JSONL, .json.gz), drawn as the
 * GPTQ reference's data loaders draw them (layout and recipes in calib_set.c); nsamples are
 * shared evenly between the sources. */
qc_status qc_windows_draw(const qc_tokenizer *t, const char *const *paths, int npaths, int nsamples, int seqlen,
                         uint64_t seed, qc_windows *w, qc_err *e);
/* The same with each source bounded to max_text bytes of text (qc_corpus_load_max; the
 * message then says how the bound follows from the memory budget); *text_read gets the text
 * bytes of the largest source, the one whose reading and drawing held the most. */
qc_status qc_windows_draw_within(const qc_tokenizer *t, const char *const *paths, int npaths, int nsamples, int seqlen,
                                uint64_t seed, size_t max_text, size_t *text_read, qc_windows *w, qc_err *e);

/* Windows saved as a NumPy int32/int64 array (nsamples, seqlen), used as they are. Token ids
 * are checked against a model's vocabulary by qc_windows_check_vocab. */
qc_status qc_windows_load_npy(const char *path, qc_windows *w, qc_err *e);

/* Every token id of w within 0..vocab-1, else an error naming `source`, the window and the
 * position (a check before hours of work, where the model's own one names no file). */
qc_status qc_windows_check_vocab(const qc_windows *w, int vocab, const char *source, qc_err *e);

#endif
