#ifndef CKERNELS_H
#define CKERNELS_H
#include <stddef.h>
#include <stdint.h>

/// Instruction-set levels of the hand-written kernels. AVX2 here means AVX2 + FMA + F16C
/// together; AVX-512 means F + BW + VL. Every kernel has a portable C path for CK_ISA_SCALAR.
enum { CK_ISA_SCALAR = 0, CK_ISA_AVX2 = 1, CK_ISA_AVX512 = 2 };
/// The level the kernels use: the CPU's, capped by the environment variable MOE_COMPRESS_MAX_ISA
/// (scalar, avx2 or avx512; an unknown value means scalar). Read once.
int ck_isa(void);
/// The CPU's own level, without the cap.
int ck_detected_isa(void);
/// "scalar", "avx2" or "avx512"; and back (-1 for an unknown name).
const char *ck_isa_name(int level);
int ck_parse_isa(const char *name);

/// IEEE half -> float. Uses F16C at CK_ISA_AVX2 and above, since the default x86-64 Swift
/// target has no F16C and its soft-float path is ~20x slower.
void ck_f16_to_f32(const uint16_t *src, float *dst, size_t count);
/// float -> IEEE half, round to nearest even (F16C at CK_ISA_AVX2 and above).
void ck_f32_to_f16(const float *src, uint16_t *dst, size_t count);
/// bfloat16 -> float (exact: the bf16 bits are the top half of the float).
void ck_bf16_to_f32(const uint16_t *src, float *dst, size_t count);
/// float -> bfloat16, round to nearest even; NaN stays NaN.
void ck_f32_to_bf16(const float *src, uint16_t *dst, size_t count);


/// SwiGLU over `rows` rows that each hold `width` gate values then `width` up values:
/// out[r][i] = silu(gate[r][i]) * up[r][i]. Vectorised exp at CK_ISA_AVX2 and above (~1 ulp).
void ck_swiglu_stacked(const float *stacked, size_t rows, size_t width, float *out);
/// Numerically stable softmax of one row, in place (max subtracted first).
void ck_softmax(float *x, size_t count);
/// log(sum(exp(x))) with the max subtracted first and the sum accumulated in double.
double ck_logsumexp(const float *x, size_t count);
/// One key block of a streaming (online) softmax over a row of attention scores. Columns outside
/// [begin, end) are masked and set to 0; the visible ones become exp(score - m), where m is the
/// larger of *running_max and their max. Then *running_sum = *running_sum * r + their sum and
/// *running_max = m, with r = exp(old *running_max - m), which is returned: the factor by which
/// the caller rescales the row's output accumulated so far (1 when nothing is visible). Start a
/// row with *running_max = -INFINITY, *running_sum = 0. Vectorised exp at CK_ISA_AVX2 and above.
float ck_online_softmax_step(float *scores, size_t count, size_t begin, size_t end,
                             float *running_max, float *running_sum);

/// Index of the first NaN or infinity among `count` floats, or `count` when all are finite.
/// Plain C on the bit patterns: the compiler vectorises it for any x86-64.
size_t ck_first_non_finite(const float *x, size_t count);

/// Keeps freed blocks of up to 256 MiB in glibc's heap for reuse instead of unmapping them
/// (AllocatorPolicy.reuseFreedBuffers says why); a no-op off glibc.
void ck_reuse_freed_buffers(void);

#endif
