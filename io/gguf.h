/* gguf.h — internal to io/ (and to io's tests and test tools): nothing else includes it.
 *
 * What the GGUF files (gguf_blocks.c, gguf_encode.c, gguf_write.c, gguf_read.c,
 * gguf_checkpoint.c, imatrix_write.c) share:
 * ggml's block formats, declared once, with a table indexed by ggml type id; the GGUF
 * container's constants; and the validated view of a GGUF file that the reader builds (and
 * tests list).
 *
 * Container layout (GGUF v3, little endian; ../shared/docs/GGUF.md, ggml's gguf.cpp):
 *     "GGUF"  u32 version  i64 n_tensors  i64 n_kv
 *     n_kv times:      string key, u32 value type, value
 *                      (array: u32 element type, u64 count, count elements)
 *     n_tensors times: string name, u32 n_dims, i64 ne[n_dims] (fastest-varying first),
 *                      u32 ggml type, u64 offset (relative to the data start)
 *     zero padding to general.alignment (default 32); the tensor data, each tensor at its
 *     offset, each padded to the alignment.
 * A string is a u64 byte length followed by the bytes, no terminator. */
#ifndef QC_IO_GGUF_H
#define QC_IO_GGUF_H

#include "io/internal.h"

#include <assert.h>

/* ---- the container ------------------------------------------------------------------------- */

#define QC_GGUF_MAGIC "GGUF"
#define QC_GGUF_VERSION 3
#define QC_GGUF_ALIGNMENT 32    /* general.alignment qcalib writes; also GGUF's default */
#define QC_GGUF_MAX_DIMS 4      /* ggml's GGML_MAX_DIMS */
#define QC_GGUF_MAX_NAME 64     /* ggml's GGML_MAX_NAME: tensor names are shorter than this */
#define QC_GGUF_MAX_KEY 65535   /* longest metadata key the reader accepts */

/* Metadata value types (gguf.h's enum gguf_type). */
typedef enum qc_gguf_vtype {
    QC_GGUF_V_U8 = 0, QC_GGUF_V_I8 = 1, QC_GGUF_V_U16 = 2, QC_GGUF_V_I16 = 3,
    QC_GGUF_V_U32 = 4, QC_GGUF_V_I32 = 5, QC_GGUF_V_F32 = 6, QC_GGUF_V_BOOL = 7,
    QC_GGUF_V_STRING = 8, QC_GGUF_V_ARRAY = 9, QC_GGUF_V_U64 = 10, QC_GGUF_V_I64 = 11,
    QC_GGUF_V_F64 = 12, QC_GGUF_V_COUNT = 13
} qc_gguf_vtype;

/* Bytes of one value of a fixed-size type; 0 for strings, arrays and unknown types. */
/* Encoders of the container's values, appended to b (gguf_encode.c; a failed append sets
 * b->failed, checked once at the end). */
void qc_gguf_put_u32(qc_sb *b, uint32_t v);
void qc_gguf_put_u64(qc_sb *b, uint64_t v);
void qc_gguf_put_f32(qc_sb *b, float f);
void qc_gguf_put_str(qc_sb *b, const char *s, size_t n);          /* u64 length, the bytes */
void qc_gguf_put_key(qc_sb *b, const char *key, uint32_t vtype);  /* a metadata key and its value type */
void qc_gguf_put_pad(qc_sb *b); /* zeros up to the next multiple of QC_GGUF_ALIGNMENT of b->len */

size_t qc_gguf_vtype_size(uint32_t t);
const char *qc_gguf_vtype_name(uint32_t t); /* "u32", "str", ...; "?" when unknown */



/* ---- block formats ---------------------------------------------------------------------------
 * Each as ggml-common.h declares it: 32 weights per block, fp16 fields little endian (the
 * functions below store them byte by byte, so the host's byte order does not matter). A row of
 * n weights is n/32 consecutive blocks; rows follow each other with no padding. */

#define QC_QK4_0 32
/* Q4_0: 4.5 bits per weight. Value d·(q − 8), q in 0..15; qs[j] holds element j in its low
 * nibble and element j + 16 in its high nibble. */
typedef struct qc_block_q4_0 {
    uint16_t d;               /* fp16 scale */
    uint8_t qs[QC_QK4_0 / 2];
} qc_block_q4_0;
static_assert(sizeof(qc_block_q4_0) == 2 + QC_QK4_0 / 2, "Q4_0 block is 18 bytes");

#define QC_QK4_1 32
/* Q4_1: 5 bits per weight. Value d·q + m, q in 0..15; nibbles as Q4_0. */
typedef struct qc_block_q4_1 {
    uint16_t d;               /* fp16 scale */
    uint16_t m;               /* fp16 minimum */
    uint8_t qs[QC_QK4_1 / 2];
} qc_block_q4_1;
static_assert(sizeof(qc_block_q4_1) == 4 + QC_QK4_1 / 2, "Q4_1 block is 20 bytes");

#define QC_QK5_0 32
/* Q5_0: 5.5 bits per weight. Value d·(q − 16), q in 0..31: the low 4 bits as Q4_0's nibbles,
 * the fifth bit of element j in bit j of qh (a little-endian u32). */
typedef struct qc_block_q5_0 {
    uint16_t d;               /* fp16 scale */
    uint8_t qh[4];            /* the codes' fifth bits */
    uint8_t qs[QC_QK5_0 / 2];
} qc_block_q5_0;
static_assert(sizeof(qc_block_q5_0) == 6 + QC_QK5_0 / 2, "Q5_0 block is 22 bytes");

#define QC_QK5_1 32
/* Q5_1: 6 bits per weight. Value d·q + m, q in 0..31; bits as Q5_0. */
typedef struct qc_block_q5_1 {
    uint16_t d;               /* fp16 scale */
    uint16_t m;               /* fp16 minimum */
    uint8_t qh[4];            /* the codes' fifth bits */
    uint8_t qs[QC_QK5_1 / 2];
} qc_block_q5_1;
static_assert(sizeof(qc_block_q5_1) == 8 + QC_QK5_1 / 2, "Q5_1 block is 24 bytes");

#define QC_QK8_0 32
/* Q8_0: 8.5 bits per weight. Value d·q, q in −128..127. */
typedef struct qc_block_q8_0 {
    uint16_t d;               /* fp16 scale */
    int8_t qs[QC_QK8_0];
} qc_block_q8_0;
static_assert(sizeof(qc_block_q8_0) == 2 + QC_QK8_0, "Q8_0 block is 34 bytes");

/* GGML's BF16 type id: the reader accepts BF16 tensors (the writer does not produce them). */
#define QC_GGUF_BF16 30

/* One tensor element type: what the reader and writer need to know about it. */
typedef struct qc_gguf_type_info {
    uint32_t id;          /* ggml type id */
    const char *name;     /* "Q4_0", ... as ggml names it */
    int block;            /* weights per block (1 for float types) */
    size_t block_bytes;   /* bytes per block */
    int file_type;        /* general.file_type for a model mostly of this type (llama_ftype) */
    qc_dtype dtype;       /* float types: the element type; block types: QC_DT_U8 */
    bool quantized;       /* a block format, read through to_float */
    /* n weights (a multiple of block) from their blocks; the scalar reference decoder. */
    void (*to_float)(const void *blocks, float *out, int64_t n);
    /* ggml's reference quantizer without calibration (quantize_row_*_ref); n a multiple of block. */
    void (*from_float)(const float *x, void *blocks, int64_t n);
    /* ggml's quantizer with an importance matrix (quantize_q*_K with quant_weights): qw holds
     * one importance per column (n of them); NULL for the types qcalib does not quantize so. */
    void (*from_float_weighted)(const float *x, const float *qw, void *blocks, int64_t n);
} qc_gguf_type_info;

/* A block's fp16 field (d, m, dmin), stored little endian whatever the host. */
static inline void qc_gguf_put_f16(uint16_t *field, float f) {
    uint16_t h = qc_f32_to_f16(f);
    uint8_t *p = (uint8_t *)field;
    p[0] = (uint8_t)(h & 0xff);
    p[1] = (uint8_t)(h >> 8);
}
static inline float qc_gguf_get_f16(const uint16_t *field) {
    const uint8_t *p = (const uint8_t *)field;
    return qc_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

/* The table entry of ggml type id t, or NULL when qcalib does not handle it. */
const qc_gguf_type_info *qc_gguf_type_info_of(uint32_t t);
/* ggml's name for any ggml type id (also those qcalib does not handle), or NULL if unknown. */
const char *qc_gguf_ggml_type_name(uint32_t t);
/* Bytes of a row of n weights of type ti (n a multiple of its block). */
static inline size_t qc_gguf_row_bytes(const qc_gguf_type_info *ti, int64_t n) {
    return (size_t)(n / ti->block) * ti->block_bytes;
}

/* The scalar reference paths, one block at a time (32 weights). Decoders are the oracle the
 * tests hold every other path to; encoders from codes store a group exactly as given. */
void qc_gguf_q4_0_to_float(const qc_block_q4_0 *b, float out[QC_QK4_0]);
void qc_gguf_q4_1_to_float(const qc_block_q4_1 *b, float out[QC_QK4_1]);
void qc_gguf_q8_0_to_float(const qc_block_q8_0 *b, float out[QC_QK8_0]);
void qc_gguf_q5_0_to_float(const qc_block_q5_0 *b, float out[QC_QK5_0]);
void qc_gguf_q5_1_to_float(const qc_block_q5_1 *b, float out[QC_QK5_1]);
/* codes 0..31 with value d·(code − 16) */
void qc_gguf_q5_0_from_codes(const uint8_t codes[QC_QK5_0], float d, qc_block_q5_0 *b);
/* codes 0..31 with value d·code + m */
void qc_gguf_q5_1_from_codes(const uint8_t codes[QC_QK5_1], float d, float m, qc_block_q5_1 *b);
/* codes 0..15 with value d·(code − 8) */
void qc_gguf_q4_0_from_codes(const uint8_t codes[QC_QK4_0], float d, qc_block_q4_0 *b);
/* codes 0..15 with value d·code + m */
void qc_gguf_q4_1_from_codes(const uint8_t codes[QC_QK4_1], float d, float m, qc_block_q4_1 *b);
/* codes 0..255 with value d·(code − 128), stored as int8 code − 128 */
void qc_gguf_q8_0_from_codes(const uint8_t codes[QC_QK8_0], float d, qc_block_q8_0 *b);
/* ggml's quantize_row_q*_ref for one block of 32 finite values. */
void qc_gguf_q4_0_ref(const float x[QC_QK4_0], qc_block_q4_0 *b);
void qc_gguf_q4_1_ref(const float x[QC_QK4_1], qc_block_q4_1 *b);
void qc_gguf_q8_0_ref(const float x[QC_QK8_0], qc_block_q8_0 *b);
void qc_gguf_q5_0_ref(const float x[QC_QK5_0], qc_block_q5_0 *b);
void qc_gguf_q5_1_ref(const float x[QC_QK5_1], qc_block_q5_1 *b);

/* The block type a quantized weight is stored as (Q4_0: 4 bits, zero 8; Q4_1: 4 bits with
 * mins; Q5_0: 5 bits, zero 16; Q5_1: 5 bits with mins; Q8_0: 8 bits, zero 128), after checking everything a GGUF block needs: groups of 32
 * contiguous columns (g_idx[c] = c / 32), cols a multiple of 32, every scale (and min) finite
 * and exactly an fp16 value, codes within range, and the zero point the type implies. A
 * K-quant weight (q->super) is Q<bits>_K: whole 256-value super-blocks in the type's
 * contiguous sub-blocks, finite fp16 d and dmin (NaN or Inf: QC_ERR_NUMERIC), integer
 * sub-block scales and mins in their fields' ranges, and the groups' scales and mins exactly
 * the products the decoder forms from them. `what` names the weight in messages. */
qc_status qc_gguf_qweight_type(const qc_qweight *q, const char *what, qc_gguf_type *t, qc_err *e);
/* Encodes row r of q (already checked by qc_gguf_qweight_type as type t) into its blocks. */
void qc_gguf_encode_qweight_row(const qc_qweight *q, qc_gguf_type t, int r, void *blocks);

/* ---- the reader's view of a file --------------------------------------------------------------- */

typedef struct qc_gguf_kv {
    const char *key;      /* into the mapping; NOT NUL-terminated */
    int key_len;
    uint32_t type;        /* value type; QC_GGUF_V_ARRAY for arrays */
    uint32_t elem_type;   /* arrays: element type; otherwise = type */
    uint64_t count;       /* arrays: element count; otherwise 1 */
    const uint8_t *data;  /* the value's bytes in the mapping (an array's first element) */
    size_t nbytes;        /* bytes of the value (every element) */
} qc_gguf_kv;

typedef struct qc_gguf_tensor {
    const char *name;     /* into the mapping; NOT NUL-terminated */
    int name_len;
    int n_dims;           /* 1..4 */
    int64_t ne[QC_GGUF_MAX_DIMS]; /* ne[i] for i >= n_dims is 1 */
    const qc_gguf_type_info *type;
    uint64_t offset;      /* relative to the data start, a multiple of the alignment */
    size_t nbytes;
    const uint8_t *data;  /* into the mapping */
} qc_gguf_tensor;

/* A validated GGUF file: every count, length, type, offset and size checked against the file
 * (layout above) before anything is trusted; no duplicate keys or tensor names; no two tensors
 * overlap. Owns the mapping and the arrays. */
typedef struct qc_gguf_file {
    qc_map map;
    uint32_t version;         /* 2 or 3 (the same layout) */
    size_t alignment;
    size_t data_start;        /* byte offset of the tensor data */
    int64_t n_kv, n_tensors;
    qc_gguf_kv *kv;           /* (n_kv) in file order */
    qc_gguf_tensor *tensors;  /* (n_tensors) in file order */
    int64_t *kv_sorted;       /* (n_kv) indices by key */
    int64_t *tensor_sorted;   /* (n_tensors) indices by name */
} qc_gguf_file;

qc_status qc_gguf_file_open(qc_gguf_file *f, const char *path, qc_err *e);
void qc_gguf_file_close(qc_gguf_file *f); /* NULL or zeroed: no-op */
const qc_gguf_kv *qc_gguf_find_kv(const qc_gguf_file *f, const char *key);
const qc_gguf_tensor *qc_gguf_find_tensor(const qc_gguf_file *f, const char *name);

/* The string at p (validated by qc_gguf_file_open: a u64 length and that many bytes): its
 * bytes and length; returns the position after it. */
const uint8_t *qc_gguf_string_at(const uint8_t *p, const char **s, uint64_t *len);
/* Element i of a numeric value (scalar: i = 0) as a double / as an integer; false when the
 * type is not numeric (or, for integers, is a float type). */
bool qc_gguf_kv_number(const qc_gguf_kv *kv, uint64_t i, double *v);
bool qc_gguf_kv_int(const qc_gguf_kv *kv, uint64_t i, int64_t *v);

#endif
