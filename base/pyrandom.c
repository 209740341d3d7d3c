/* pyrandom.c — the Mersenne Twister exactly as CPython's `random` module seeds and uses
 * it, so `seed` here draws the same numbers as `random.seed(seed)` there. That makes
 * calibration windows identical to those of the GPTQ reference's data loaders. */
#include "base/base.h"

#define N 624
#define M 397

static void init_genrand(qc_pyrandom *r, uint32_t s) {
    r->mt[0] = s;
    for (int i = 1; i < N; i++)
        r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + (uint32_t)i;
    r->index = N;
}

/* init_by_array, as CPython's random_seed calls it with the seed's 32-bit words. */
static void init_by_array(qc_pyrandom *r, const uint32_t *key, int len) {
    init_genrand(r, 19650218u);
    int i = 1, j = 0;
    for (int k = N > len ? N : len; k; k--) {
        r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1664525u)) + key[j] + (uint32_t)j;
        i++, j++;
        if (i >= N) { r->mt[0] = r->mt[N - 1]; i = 1; }
        if (j >= len) j = 0;
    }
    for (int k = N - 1; k; k--) {
        r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1566083941u)) - (uint32_t)i;
        i++;
        if (i >= N) { r->mt[0] = r->mt[N - 1]; i = 1; }
    }
    r->mt[0] = 0x80000000u;
    r->index = N;
}

void qc_pyrandom_seed(qc_pyrandom *r, uint64_t seed) {
    uint32_t key[2] = { (uint32_t)seed, (uint32_t)(seed >> 32) };
    init_by_array(r, key, key[1] ? 2 : 1);
}

uint32_t qc_pyrandom_u32(qc_pyrandom *r) {
    if (r->index >= N) {
        for (int k = 0; k < N; k++) {
            uint32_t y = (r->mt[k] & 0x80000000u) | (r->mt[(k + 1) % N] & 0x7fffffffu);
            r->mt[k] = r->mt[(k + M) % N] ^ (y >> 1) ^ ((y & 1) ? 0x9908b0dfu : 0);
        }
        r->index = 0;
    }
    uint32_t y = r->mt[r->index++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

uint32_t qc_pyrandom_getrandbits(qc_pyrandom *r, int k) {
    QC_ASSERT(k >= 1 && k <= 32);
    return qc_pyrandom_u32(r) >> (32 - k);
}

int64_t qc_pyrandom_randint(qc_pyrandom *r, int64_t a, int64_t b) {
    QC_ASSERT(b >= a && (uint64_t)(b - a) < ((uint64_t)1 << 32));
    uint64_t n = (uint64_t)(b - a) + 1; /* _randbelow_with_getrandbits(n) */
    int k = 64 - __builtin_clzll(n);
    if (k > 32) return a; /* n == 2^32 exactly cannot occur given the assertion */
    uint64_t v;
    do v = qc_pyrandom_getrandbits(r, k); while (v >= n);
    return a + (int64_t)v;
}

double qc_pyrandom_random(qc_pyrandom *r) {
    uint32_t a = qc_pyrandom_u32(r) >> 5, b = qc_pyrandom_u32(r) >> 6;
    return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}
