/* hash.c — the content hash qcalib fingerprints its inputs with (qc_hash64): what a resume
 * compares to know that the model, the calibration texts and the results it restores are
 * those of the interrupted run.
 *
 * FNV-1a's step (xor a word into the state, multiply by the 64-bit FNV prime) taken over
 * 8-byte words read little endian instead of single bytes, in four lanes over consecutive
 * words (word i goes to lane i mod 4), joined at the end by the same step; the tail of fewer
 * than 32 bytes goes through the joined state, a word, then a byte at a time. Each step is a
 * bijection of its state (xor, then a multiplication by an odd number modulo 2^64), so two
 * inputs of the same length that differ in one word always hash differently; other changes
 * go unnoticed with probability about 2^-64. Words and lanes are for speed (a step waits for
 * the multiply before it; four lanes keep four multiplies in flight): measured on a loaded
 * 2-core machine, a byte per step ran at about 0.1 GB/s, a word per step at about 1, four
 * lanes at 2.3 to 3.4, small beside the converting of the tensors it follows. It is not a cryptographic hash: it tells accidental changes apart, not a forgery
 * built to collide. Pieces hashed in turn (h passed on) hash as one input only when cut at
 * the same places: callers hash the same pieces. */
#include "base/base.h"

#define PRIME 0x100000001b3ull

uint64_t qc_hash64(uint64_t h, const void *data, size_t n) {
    const uint8_t *p = data;
    uint64_t lane[4] = { h, h ^ 1, h ^ 2, h ^ 3 };
    for (; n >= 32; p += 32, n -= 32)
        for (int i = 0; i < 4; i++) lane[i] = (lane[i] ^ qc_le64(p + 8 * i)) * PRIME;
    h = lane[0];
    for (int i = 1; i < 4; i++) h = (h ^ lane[i]) * PRIME;
    for (; n >= 8; p += 8, n -= 8) h = (h ^ qc_le64(p)) * PRIME;
    for (; n > 0; p++, n--) h = (h ^ *p) * PRIME;
    return h;
}
