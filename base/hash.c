/* hash.c — the content hash qcalib fingerprints its inputs with (qc_hash64): what a resume
 * compares to know that the model, the calibration texts and the results it restores are
 * those of the interrupted run.
 *
 * FNV-1a's xor-then-multiply by the 64-bit FNV prime, taken over 8-byte words (read little
 * endian) instead of single bytes. A word per multiply is what lets it keep up with the
 * converting of tensors it runs beside (a byte per multiply would be 8 times slower). Each
 * step (xor a word, multiply by an odd number modulo 2^64) is a bijection of the state, so
 * two inputs of the same length that differ in one word always hash differently; other
 * changes go unnoticed with probability about 2^-64. It is not a cryptographic hash: it tells
 * accidental changes apart, not a forgery built to collide. Pieces hashed in turn (h passed
 * on) hash as one input only when cut at the same places: callers hash the same pieces. */
#include "base/base.h"

#include <string.h>

#define PRIME 0x100000001b3ull

uint64_t qc_hash64(uint64_t h, const void *data, size_t n) {
    const uint8_t *p = data;
    for (; n >= 8; p += 8, n -= 8) h = (h ^ qc_le64(p)) * PRIME;
    for (; n > 0; p++, n--) h = (h ^ *p) * PRIME;
    return h;
}
