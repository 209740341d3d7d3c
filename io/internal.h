/* internal.h — internal to io/: nothing outside io/ includes it (callers use io/io.h).
 *
 * What the io/ files share: the checkpoint object's layout (a table saying where each
 * weight lives in the mapped file(s)), the per-format open functions it dispatches to, the
 * config field names used in messages, and a small growable string buffer for the JSON
 * the writers produce. */
#ifndef QC_IO_INTERNAL_H
#define QC_IO_INTERNAL_H

#include "io/io.h"

#include <string.h>

/* ---- checkpoints -------------------------------------------------------------------------------- */

/* Where one weight's bytes are: rows*cols elements of `dtype`, row-major, little endian, in
 * a mapping the checkpoint owns. hf_rope_heads > 0: the rows are in HF's rotate-half order
 * for that many heads (Q/K of an HF file) and are un-permuted on read. */
typedef struct qc_ck_loc qc_ck_loc;

/* Dequantizes rows [row0, row0+nrows) (file order) of a quantized weight of `cols` columns
 * into out; the format's reader sets it, with aux describing the weight. */
typedef qc_status (*qc_ck_decode)(const qc_checkpoint *ck, const qc_ck_loc *loc, int64_t row0, int nrows,
                                  int cols, float *out, qc_err *e);

struct qc_ck_loc {
    const uint8_t *data; /* borrowed from the checkpoint's mapping */
    qc_dtype dtype;
    int hf_rope_heads;
    qc_ck_decode decode; /* non-NULL: a quantized weight, read through it */
    const void *aux;     /* the format's description of that weight; owned by the checkpoint */
    const char *qtype;   /* a quantized weight's storage type for listings, e.g. "gptq-4bit" */
};

struct qc_checkpoint {
    qc_config cfg;
    char *path;          /* owned copy of the path the caller opened */
    const char *format;  /* static string */
    qc_ck_loc *locs;     /* (QC_CK_NGLOBAL + n_layers * QC_CK_NLAYER) see qc_ck_slot */
    qc_map bin;          /* llama2.c: the whole file */
    qc_safetensors_file *shards;  /* HF: (nshards) the opened safetensors files */
    int nshards;
    void **owned;        /* (nowned) allocations freed at close, e.g. the locs' aux */
    int nowned;
    int ffn_file;        /* > 0: the FFN width in the file, padded to cfg.hidden_dim with zeros */
    qc_ck_file *files;   /* (nfiles) every file read, in the order opened */
    int nfiles;
};

/* Records a file the checkpoint reads (qc_checkpoint_file): read whole, with the hash of its
 * bytes, or mapped (its weights are hashed as they are converted). */
qc_status qc_ck_add_file(qc_checkpoint *ck, const char *path, bool whole, uint64_t hash, qc_err *e);

/* Hands p (from malloc) to the checkpoint, which frees it at close; frees it on failure. */
qc_status qc_ck_own(qc_checkpoint *ck, void *p, qc_err *e);

#define QC_CK_NGLOBAL 3                            /* EMBED, FINAL_NORM, CLASSIFIER */
#define QC_CK_NLAYER (QC_W_COUNT - QC_CK_NGLOBAL)  /* ATTN_NORM .. DOWN, the biases */

/* Index of (w, layer) in ck->locs; layer must be valid for per-layer weights. */
static inline size_t qc_ck_slot(qc_weight w, int layer) {
    if (qc_weight_is_global(w)) return (size_t)w;
    return QC_CK_NGLOBAL + (size_t)layer * QC_CK_NLAYER + (size_t)(w - QC_CK_NGLOBAL);
}

/* Allocates ck->locs for ck->cfg.n_layers (config already validated). */
qc_status qc_ck_alloc_locs(qc_checkpoint *ck, qc_err *e);

/* Fill a zeroed ck (path already set) from a llama2.c file / an HF folder or file. On
 * failure ck may hold partial state; the caller closes it. */
qc_status qc_llama2c_checkpoint_open(qc_checkpoint *ck, const char *path, qc_err *e);
qc_status qc_hf_checkpoint_open(qc_checkpoint *ck, const char *path, qc_err *e);
qc_status qc_gguf_checkpoint_open(qc_checkpoint *ck, const char *path, qc_err *e);

/* llama2.c legacy files (layout in llama2c_checkpoint.c): the 28-byte header, then the weights in this
 * order, each per-layer one for all layers back to back; then freq_cis_real/imag, then the
 * classifier when it is not tied. */
#define QC_LLAMA2C_HEADER_BYTES 28
#define QC_LLAMA2C_NORDER 11
extern const qc_weight qc_llama2c_order[QC_LLAMA2C_NORDER];

/* ---- configuration ---------------------------------------------------------------------------------- */

/* The names qc_config's fields go by in one file format, for messages. */
typedef struct qc_config_names {
    const char *dim, *hidden_dim, *n_layers, *n_heads, *n_kv_heads, *head_dim, *vocab_size,
        *seq_len, *norm_eps, *rope_theta;
} qc_config_names;

extern const qc_config_names qc_config_names_native; /* "dim", "hidden_dim", ... */
extern const qc_config_names qc_config_names_hf;     /* "hidden_size", ... as in config.json */

/* qc_config_validate with the field names of a given format. */
qc_status qc_config_check(const qc_config *c, const char *source, const qc_config_names *names,
                          qc_err *e);

/* Parses a Hugging Face config.json (path is used to read it and in messages). */
qc_status qc_hf_config_load(const char *path, qc_config *c, qc_err *e);

/* strcmp for qsort/bsearch over an array of char pointers. */
static inline int qc_cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- JSON ------------------------------------------------------------------------------------------ */

struct cJSON;
/* Reads a JSON file of at most max_bytes into a cJSON tree (the caller deletes it); a
 * syntax error or bytes after the value are an error naming the file and the position.
 * hash (may be NULL): the qc_hash64 of the file's bytes. */
qc_status qc_json_load(const char *path, size_t max_bytes, struct cJSON **root, uint64_t *hash, qc_err *e);
/* "a string", "a number", "an object", ...: what v is, for messages. */
const char *qc_json_type(const struct cJSON *v);

/* ---- JSON output ------------------------------------------------------------------------------------- */

/* A growable NUL-terminated string. Once an append fails (out of memory) `failed` stays
 * set and further appends do nothing; check it once at the end. */
typedef struct qc_sb {
    char *s;
    size_t len, cap;
    bool failed;
} qc_sb;

void qc_sb_printf(qc_sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void qc_sb_append(qc_sb *b, const char *s, size_t n);
/* Appends s as a JSON string literal, quotes included. */
void qc_sb_json_string(qc_sb *b, const char *s);
/* Appends the shortest decimal that reads back as exactly the float f ("1e-05", "10000.0"). */
void qc_sb_json_float(qc_sb *b, float f);
void qc_sb_free(qc_sb *b);
/* Writes b's text to file `name` inside the folder being built (atomically); a buffer whose
 * appends failed is an out-of-memory error naming the file. */
qc_status qc_sb_write_file(const qc_outdir *d, const char *name, const qc_sb *b, qc_err *e);

/* config.json of a Hugging Face Llama folder (the fields are listed in hf_export.c), with the
 * torch_dtype of dt (F32, F16, BF16) and, unless quant_json is NULL, "quantization_config":
 * quant_json (an object's JSON text) as the last field. */
void qc_hf_config_json(const qc_config *c, qc_dtype dt, const char *quant_json, qc_sb *b);


#endif
