/* gguf_encode.c — the GGUF container's values as bytes (gguf.h's layout: little endian, a
 * string as a u64 length and its bytes, zero padding to the alignment), appended to a qc_sb:
 * what the model writer (gguf_write.c) and the importance-matrix writer (imatrix_write.c)
 * build their headers and metadata with. An append that fails leaves the buffer's `failed`
 * set and later appends do nothing, so a writer checks it once at the end. */
#include "io/gguf.h"

#include <string.h>

void qc_gguf_put_u32(qc_sb *b, uint32_t v) {
    const char x[4] = { (char)(v & 0xff), (char)(v >> 8 & 0xff), (char)(v >> 16 & 0xff), (char)(v >> 24 & 0xff) };
    qc_sb_append(b, x, 4);
}

void qc_gguf_put_u64(qc_sb *b, uint64_t v) {
    qc_gguf_put_u32(b, (uint32_t)v);
    qc_gguf_put_u32(b, (uint32_t)(v >> 32));
}

void qc_gguf_put_f32(qc_sb *b, float f) {
    union { float f; uint32_t u; } x = { f };
    qc_gguf_put_u32(b, x.u);
}

void qc_gguf_put_str(qc_sb *b, const char *s, size_t n) {
    qc_gguf_put_u64(b, (uint64_t)n);
    qc_sb_append(b, s, n);
}

void qc_gguf_put_key(qc_sb *b, const char *key, uint32_t vtype) {
    qc_gguf_put_str(b, key, strlen(key));
    qc_gguf_put_u32(b, vtype);
}

void qc_gguf_put_pad(qc_sb *b) {
    static const char zeros[QC_GGUF_ALIGNMENT];
    qc_sb_append(b, zeros, (QC_GGUF_ALIGNMENT - b->len % QC_GGUF_ALIGNMENT) % QC_GGUF_ALIGNMENT);
}
