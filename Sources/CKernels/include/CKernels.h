#ifndef CKERNELS_H
#define CKERNELS_H
#include <stddef.h>
#include <stdint.h>

/// IEEE half -> float. Uses F16C when the CPU has it (checked once at run time), since the
/// default x86-64 Swift target has no F16C and its soft-float path is ~20x slower.
void ck_f16_to_f32(const uint16_t *src, float *dst, size_t count);
/// float -> IEEE half, round to nearest even (F16C when available).
void ck_f32_to_f16(const float *src, uint16_t *dst, size_t count);
/// bfloat16 -> float (exact: the bf16 bits are the top half of the float).
void ck_bf16_to_f32(const uint16_t *src, float *dst, size_t count);
/// float -> bfloat16, round to nearest even; NaN stays NaN.
void ck_f32_to_bf16(const float *src, uint16_t *dst, size_t count);


/// SwiGLU over `rows` rows that each hold `width` gate values then `width` up values:
/// out[r][i] = silu(gate[r][i]) * up[r][i]. Vectorised exp (AVX2+FMA when present, ~1 ulp).
void ck_swiglu_stacked(const float *stacked, size_t rows, size_t width, float *out);
/// Numerically stable softmax of one row, in place (max subtracted first).
void ck_softmax(float *x, size_t count);
/// log(sum(exp(x))) with the max subtracted first and the sum accumulated in double.
double ck_logsumexp(const float *x, size_t count);

#endif
