#ifndef CMATMUL_H
#define CMATMUL_H
#include <stdint.h>

/// Matrix products through oneDNN (apt: libdnnl-dev), the library PyTorch's CPU matmuls use.
/// Its kernels are chosen from the CPU's own features at run time, so they are not bound by
/// OPENBLAS_CORETYPE, and it has AVX512-BF16 kernels that the Debian OpenBLAS build lacks.
/// All matrices are row-major. Every function returns 0 on success, else oneDNN's status code.

/// C = alpha * op(A) * op(B) + beta * C in Float32 (transa/transb: 'N' or 'T').
int cm_sgemm(char transa, char transb, int64_t m, int64_t n, int64_t k, float alpha,
             const float *a, int64_t lda, const float *b, int64_t ldb,
             float beta, float *c, int64_t ldc);

/// A linear layer in bfloat16: y[m][n] = sum_k x[m][k] * w[n][k], bf16 inputs, Float32
/// accumulation and output. One handle serves every row count m for its (n, k).
typedef struct cm_bf16_linear cm_bf16_linear;
cm_bf16_linear *cm_bf16_linear_create(int64_t n, int64_t k);
int cm_bf16_linear_run(const cm_bf16_linear *linear, int64_t m, const uint16_t *x, const uint16_t *w, float *y);
void cm_bf16_linear_destroy(cm_bf16_linear *linear);
/// Which kernel oneDNN picked for a handle (e.g. "gemm:jit"), for reports.
const char *cm_bf16_linear_kernel(const cm_bf16_linear *linear);

/// The instruction set oneDNN's kernels use here (after ONEDNN_MAX_CPU_ISA / MOE_COMPRESS_MAX_ISA).
const char *cm_effective_isa(void);

/// Threads oneDNN uses (its OpenMP runtime).
void cm_set_threads(int threads);
int cm_threads(void);

#endif
