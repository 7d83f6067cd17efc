#include "CKernels.h"
#include <math.h>

/* exp() over 8 lanes with AVX2+FMA: Cephes' expf reduction and polynomial (about 1 ulp). The
   scalar libm expf in the elementwise loops (SwiGLU over every expert output, attention softmax,
   log-sum-exp over the vocabulary) was a visible share of a forward pass. Inputs are clamped to
   [-87, 88]: below that the result is < 2e-38 (negligible in every use here), above it overflows. */

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx2,fma")))
static inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i scale = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(scale));
}

__attribute__((target("avx2,fma")))
static inline float max8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

__attribute__((target("avx2,fma")))
static float maximum_avx2(const float *x, size_t n) {
    size_t i = 0;
    float best = -INFINITY;
    if (n >= 8) {
        __m256 m = _mm256_loadu_ps(x);
        for (i = 8; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
        best = max8(m);
    }
    for (; i < n; i++) best = x[i] > best ? x[i] : best;
    return best;
}

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
