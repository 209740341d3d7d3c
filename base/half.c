/* half.c — IEEE binary16 and bfloat16 to and from binary32, rounding to nearest even.
 * Bit manipulation rather than compiler intrinsics, so results do not depend on the CPU. */
#include "base/base.h"

#include <string.h>

static uint32_t bits_of(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float float_of(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* One half's bits to the float's: exponent 31 is Inf/NaN (payload kept, not quieted),
 * exponent 0 is zero or subnormal (man · 2^-24, exact in fp32), anything else is rebiased
 * (127 − 15 = 112). All three are computed and one is selected by masks, without branches,
 * so that the array loop below vectorizes (a conditional float operation would stop it: it
 * may not be speculated under -ftrapping-math). */
static inline uint32_t f16_bits(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, em = h & 0x7fffu;
    uint32_t infnan = (em << 13) | 0x7f800000u, sub = bits_of((float)em * 0x1p-24f), normal = (em << 13) + (112u << 23);
    uint32_t is_infnan = 0u - (em >= 0x7c00u), is_sub = 0u - (em < 0x400u);
    return sign | (infnan & is_infnan) | (sub & is_sub) | (normal & ~(is_infnan | is_sub));
}

float qc_f16_to_f32(uint16_t h) { return float_of(f16_bits(h)); }

void qc_f16_le_to_f32(const uint8_t *src, size_t n, float *dst) {
    for (size_t i = 0; i < n; i++) dst[i] = float_of(f16_bits((uint16_t)(src[2 * i] | src[2 * i + 1] << 8)));
}

uint16_t qc_f32_to_f16(float f) {
    uint32_t u = bits_of(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00 | (uint16_t)((a >> 13) & 0x3ff); /* NaN, quiet */
    if (a >= 0x477ff000u) return sign | 0x7c00; /* rounds to >= 65520: Inf */
    if (a < 0x38800000u) {
        /* result is subnormal or zero: value / 2^-24, rounded to nearest even */
        float v = float_of(a) * 0x1p24f; /* exact scaling */
        uint32_t q = (uint32_t)v;
        float rem = v - (float)q;
        if (rem > 0.5f || (rem == 0.5f && (q & 1))) q++;
        return sign | (uint16_t)q;
    }
    uint32_t r = a - 0x38000000u; /* rebias exponent 127 -> 15 */
    uint32_t h = r >> 13, low = r & 0x1fff;
    if (low > 0x1000 || (low == 0x1000 && (h & 1))) h++;
    return sign | (uint16_t)h;
}

float qc_bf16_to_f32(uint16_t h) { return float_of((uint32_t)h << 16); }

uint16_t qc_f32_to_bf16(float f) {
    uint32_t u = bits_of(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    uint32_t low = u & 0xffff, h = u >> 16;
    if (low > 0x8000 || (low == 0x8000 && (h & 1))) h++;
    return (uint16_t)h;
}
