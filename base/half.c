/* half.c — IEEE binary16 and bfloat16 to and from binary32, rounding to nearest even.
 * Bit manipulation rather than compiler intrinsics, so results do not depend on the CPU. */
#include "base/base.h"

#include <string.h>

static uint32_t bits_of(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float float_of(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float qc_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return float_of(sign | 0x7f800000u | man << 13); /* Inf, NaN */
    if (exp == 0) {
        if (man == 0) return float_of(sign);
        float v = (float)man * 0x1p-24f; /* subnormal: exact */
        return sign ? -v : v;
    }
    return float_of(sign | (exp + 112) << 23 | man << 13);
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
