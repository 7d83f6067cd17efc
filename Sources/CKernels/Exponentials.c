#include "CKernels.h"
#include <math.h>

/* Elementwise loops with exp() over 8 lanes (AVX2+FMA, VectorExp.h). The scalar libm expf in them
   (SwiGLU over every expert output, softmax, log-sum-exp over the vocabulary) was a visible share
   of a forward pass. */

#if defined(__x86_64__)
#include <immintrin.h>
#include "VectorExp.h"

__attribute__((target("avx2,fma")))
static void swiglu_avx2(const float *stacked, size_t rows, size_t width, float *out) {
    const __m256 one = _mm256_set1_ps(1.0f);
    for (size_t row = 0; row < rows; row++) {
        const float *gate = stacked + row * 2 * width, *up = gate + width;
        float *o = out + row * width;
        size_t i = 0;
        for (; i + 8 <= width; i += 8) {
            __m256 g = _mm256_loadu_ps(gate + i);
            __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
            _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
        }
        for (; i < width; i++) o[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
    }
}

__attribute__((target("avx2,fma")))
static void softmax_avx2(float *x, size_t n) {
    const float top = maximum_avx2(x, n);
    const __m256 shift = _mm256_set1_ps(top);
    __m256 sums = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), shift));
        _mm256_storeu_ps(x + i, e);
        sums = _mm256_add_ps(sums, e);
    }
    float lanes[8], sum = 0;
    _mm256_storeu_ps(lanes, sums);
    for (int lane = 0; lane < 8; lane++) sum += lanes[lane];
    for (; i < n; i++) { x[i] = expf(x[i] - top); sum += x[i]; }
    const __m256 inverse = _mm256_set1_ps(1.0f / sum);
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inverse));
    for (; i < n; i++) x[i] *= 1.0f / sum;
}

__attribute__((target("avx2,fma")))
static double logsumexp_avx2(const float *x, size_t n) {
    const float top = maximum_avx2(x, n);
    const __m256 shift = _mm256_set1_ps(top);
    __m256d low = _mm256_setzero_pd(), high = _mm256_setzero_pd();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), shift));
        low = _mm256_add_pd(low, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        high = _mm256_add_pd(high, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double lanes[4], sum = 0;
    _mm256_storeu_pd(lanes, _mm256_add_pd(low, high));
    for (int lane = 0; lane < 4; lane++) sum += lanes[lane];
    for (; i < n; i++) sum += (double)expf(x[i] - top);
    return (double)top + log(sum);
}

#define CK_VECTOR_EXP 1
#endif

void ck_swiglu_stacked(const float *stacked, size_t rows, size_t width, float *out) {
#ifdef CK_VECTOR_EXP
    if (ck_isa() >= CK_ISA_AVX2) { swiglu_avx2(stacked, rows, width, out); return; }
#endif
    for (size_t row = 0; row < rows; row++) {
        const float *gate = stacked + row * 2 * width, *up = gate + width;
        for (size_t i = 0; i < width; i++) out[row * width + i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
    }
}

void ck_softmax(float *x, size_t n) {
    if (n == 0) return;
#ifdef CK_VECTOR_EXP
    if (ck_isa() >= CK_ISA_AVX2) { softmax_avx2(x, n); return; }
#endif
    float top = -INFINITY, sum = 0;
    for (size_t i = 0; i < n; i++) top = x[i] > top ? x[i] : top;
    for (size_t i = 0; i < n; i++) { x[i] = expf(x[i] - top); sum += x[i]; }
    for (size_t i = 0; i < n; i++) x[i] *= 1.0f / sum;
}

double ck_logsumexp(const float *x, size_t n) {
#ifdef CK_VECTOR_EXP
    if (ck_isa() >= CK_ISA_AVX2) return logsumexp_avx2(x, n);
#endif
    float top = -INFINITY;
    double sum = 0;
    for (size_t i = 0; i < n; i++) top = x[i] > top ? x[i] : top;
    for (size_t i = 0; i < n; i++) sum += (double)expf(x[i] - top);
    return (double)top + log(sum);
}
