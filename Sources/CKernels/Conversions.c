#include "CKernels.h"
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define CK_X86 1
#endif

static float half_to_float_portable(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exponent = (h >> 10) & 0x1f;
    uint32_t mantissa = h & 0x3ff;
    uint32_t bits;
    if (exponent == 0x1f) {                       /* inf / NaN */
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else if (exponent != 0) {                   /* normal */
        bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {                   /* zero */
        bits = sign;
    } else {                                      /* subnormal: renormalise */
        exponent = 113;
        while ((mantissa & 0x400) == 0) { mantissa <<= 1; exponent--; }
        bits = sign | (exponent << 23) | ((mantissa & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static uint16_t float_to_half_portable(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    uint32_t sign = (bits >> 16) & 0x8000;
    int32_t exponent = (int32_t)((bits >> 23) & 0xff) - 127 + 15;
    uint32_t mantissa = bits & 0x7fffff;
    if (((bits >> 23) & 0xff) == 0xff) {          /* inf / NaN */
        return (uint16_t)(sign | 0x7c00 | (mantissa ? 0x200 : 0));
    }
    if (exponent >= 31) return (uint16_t)(sign | 0x7c00);
    if (exponent <= 0) {                          /* subnormal or zero */
        if (exponent < -10) return (uint16_t)sign;
        mantissa |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exponent);
        uint32_t half = mantissa >> shift;
        uint32_t rest = mantissa & ((1u << shift) - 1);
        uint32_t halfway = 1u << (shift - 1);
        if (rest > halfway || (rest == halfway && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)exponent << 10) | (mantissa >> 13);
    uint32_t rest = mantissa & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (half & 1))) half++;   /* may carry into the exponent: correct */
    return (uint16_t)half;
}

#ifdef CK_X86
__attribute__((target("avx2,f16c")))
static void f16_to_f32_f16c(const uint16_t *src, float *dst, size_t count) {
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(src + i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
    for (; i < count; i++) dst[i] = half_to_float_portable(src[i]);
}

__attribute__((target("avx2,f16c")))
static void f32_to_f16_f16c(const float *src, uint16_t *dst, size_t count) {
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(dst + i), h);
    }
    for (; i < count; i++) dst[i] = float_to_half_portable(src[i]);
}

#endif

void ck_f16_to_f32(const uint16_t *src, float *dst, size_t count) {
#ifdef CK_X86
    if (ck_isa() >= CK_ISA_AVX2) { f16_to_f32_f16c(src, dst, count); return; }
#endif
    for (size_t i = 0; i < count; i++) dst[i] = half_to_float_portable(src[i]);
}

void ck_f32_to_f16(const float *src, uint16_t *dst, size_t count) {
#ifdef CK_X86
    if (ck_isa() >= CK_ISA_AVX2) { f32_to_f16_f16c(src, dst, count); return; }
#endif
    for (size_t i = 0; i < count; i++) dst[i] = float_to_half_portable(src[i]);
}

void ck_bf16_to_f32(const uint16_t *src, float *dst, size_t count) {
    uint32_t *out = (uint32_t *)dst;
    for (size_t i = 0; i < count; i++) out[i] = (uint32_t)src[i] << 16;
}

void ck_f32_to_bf16(const float *src, uint16_t *dst, size_t count) {
    const uint32_t *in = (const uint32_t *)src;
    for (size_t i = 0; i < count; i++) {
        uint32_t bits = in[i];
        if ((bits & 0x7fffffffu) > 0x7f800000u) { dst[i] = (uint16_t)((bits >> 16) | 0x40); continue; }
        uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
        dst[i] = (uint16_t)((bits + rounding) >> 16);
    }
}
