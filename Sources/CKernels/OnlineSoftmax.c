#include "CKernels.h"
#include <math.h>

/* One step of the streaming softmax that blocked attention runs over a row of scores, one key
   block at a time (FlashAttention-2): the row's running max and sum are updated, the visible
   scores become exp(score - max), the masked ones 0, and the caller gets the factor by which to
   rescale what it accumulated under the old max. Masking by a range avoids -inf scores, so a row
   with nothing visible yet (sliding-window edges) needs no special case in the exp. */

#if defined(__x86_64__)
#include <immintrin.h>
#include "VectorExp.h"

__attribute__((target("avx2,fma")))
static float exp_shifted_sum_avx2(float *x, size_t n, float shift) {
    const __m256 s = _mm256_set1_ps(shift);
    __m256 sums = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
        _mm256_storeu_ps(x + i, e);
        sums = _mm256_add_ps(sums, e);
    }
    float lanes[8], sum = 0;
    _mm256_storeu_ps(lanes, sums);
    for (int lane = 0; lane < 8; lane++) sum += lanes[lane];
    for (; i < n; i++) { x[i] = expf(x[i] - shift); sum += x[i]; }
    return sum;
}
#define CK_VECTOR_EXP 1
#endif

static float range_max(const float *x, size_t n) {
#ifdef CK_VECTOR_EXP
    if (ck_isa() >= CK_ISA_AVX2) return maximum_avx2(x, n);
#endif
    float best = -INFINITY;
    for (size_t i = 0; i < n; i++) best = x[i] > best ? x[i] : best;
    return best;
}

/* x[i] = exp(x[i] - shift); returns the sum. */
static float exp_shifted_sum(float *x, size_t n, float shift) {
#ifdef CK_VECTOR_EXP
    if (ck_isa() >= CK_ISA_AVX2) return exp_shifted_sum_avx2(x, n, shift);
#endif
    float sum = 0;
    for (size_t i = 0; i < n; i++) { x[i] = expf(x[i] - shift); sum += x[i]; }
    return sum;
}

float ck_online_softmax_step(float *scores, size_t count, size_t begin, size_t end,
                             float *running_max, float *running_sum) {
    if (end > count) end = count;
    if (begin > end) begin = end;
    for (size_t i = 0; i < begin; i++) scores[i] = 0;
    for (size_t i = end; i < count; i++) scores[i] = 0;
    if (begin == end) return 1;
    const float old_max = *running_max;
    const float block_max = range_max(scores + begin, end - begin);
    const float new_max = block_max > old_max ? block_max : old_max;
    /* exp(-inf) is 0: on the first visible block the (zero) accumulator is simply replaced. */
    const float rescale = old_max == new_max ? 1.0f : expf(old_max - new_max);
    *running_sum = *running_sum * rescale + exp_shifted_sum(scores + begin, end - begin, new_max);
    *running_max = new_max;
    return rescale;
}
