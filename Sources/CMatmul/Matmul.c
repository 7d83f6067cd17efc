#include "CMatmul.h"
#include "CKernels.h"
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdlib.h>

/* The matmul descriptor calls below (dnnl_memory_desc_init_by_strides, dnnl_matmul_desc_init)
   are oneDNN 2.x API; 3.0 removed them. scripts/install-system-packages.sh installs 2.x. */
#if !defined(DNNL_VERSION_MAJOR) || DNNL_VERSION_MAJOR != 2
#error "CMatmul needs oneDNN 2.x (Debian bookworm's libdnnl-dev 2.6); 3.x changed the matmul API"
#endif

/* oneDNN 2.x is built with OpenMP in Debian; its thread count is OpenMP's. */
extern void omp_set_num_threads(int);
extern int omp_get_max_threads(void);

static dnnl_engine_t engine;
static dnnl_status_t engine_status = dnnl_runtime_error;
static pthread_once_t setup_once = PTHREAD_ONCE_INIT;
/* A stream is not meant to be shared between threads (tests run in parallel); one per thread. */
static _Thread_local dnnl_stream_t stream;

/* MOE_COMPRESS_MAX_ISA caps oneDNN's kernels as well as ours, so one variable selects a code path
   everywhere. It must be set before oneDNN's first call, which is why every entry runs setup. */
static void set_up(void) {
    const char *cap = getenv("MOE_COMPRESS_MAX_ISA");
    if (cap && *cap) {
        switch (ck_parse_isa(cap)) {
        case CK_ISA_AVX512: dnnl_set_max_cpu_isa(dnnl_cpu_isa_avx512_core_bf16); break;
        case CK_ISA_AVX2: dnnl_set_max_cpu_isa(dnnl_cpu_isa_avx2); break;
        default: dnnl_set_max_cpu_isa(dnnl_cpu_isa_sse41); break;
        }
    }
    engine_status = dnnl_engine_create(&engine, dnnl_cpu, 0);
}

static dnnl_status_t this_threads_stream(void) {
    if (stream) return dnnl_success;
    return dnnl_stream_create(&stream, engine, dnnl_stream_default_flags);
}

int cm_sgemm(char transa, char transb, int64_t m, int64_t n, int64_t k, float alpha,
             const float *a, int64_t lda, const float *b, int64_t ldb,
             float beta, float *c, int64_t ldc) {
    pthread_once(&setup_once, set_up);
    return (int)dnnl_sgemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

struct cm_bf16_linear {
    dnnl_primitive_desc_t descriptor;
    dnnl_primitive_t primitive;
    int64_t n, k;
};

cm_bf16_linear *cm_bf16_linear_create(int64_t n, int64_t k) {
    pthread_once(&setup_once, set_up);
    if (engine_status != dnnl_success) return NULL;
    /* The row count is a run-time dimension, so one primitive serves every expert's token count.
       The weight is PyTorch's [n][k], seen as a k x n matrix with strides (1, k). */
    dnnl_dims_t x_dims = {DNNL_RUNTIME_DIM_VAL, k}, x_strides = {k, 1};
    dnnl_dims_t w_dims = {k, n}, w_strides = {1, k};
    dnnl_dims_t y_dims = {DNNL_RUNTIME_DIM_VAL, n}, y_strides = {n, 1};
    dnnl_memory_desc_t x_md, w_md, y_md;
    dnnl_matmul_desc_t matmul;
    cm_bf16_linear *linear = calloc(1, sizeof *linear);
    if (!linear) return NULL;
    linear->n = n;
    linear->k = k;
    if (dnnl_memory_desc_init_by_strides(&x_md, 2, x_dims, dnnl_bf16, x_strides) != dnnl_success
        || dnnl_memory_desc_init_by_strides(&w_md, 2, w_dims, dnnl_bf16, w_strides) != dnnl_success
        || dnnl_memory_desc_init_by_strides(&y_md, 2, y_dims, dnnl_f32, y_strides) != dnnl_success
        || dnnl_matmul_desc_init(&matmul, &x_md, &w_md, NULL, &y_md) != dnnl_success
        || dnnl_primitive_desc_create(&linear->descriptor, &matmul, NULL, engine, NULL) != dnnl_success
        || dnnl_primitive_create(&linear->primitive, linear->descriptor) != dnnl_success) {
        cm_bf16_linear_destroy(linear);
        return NULL;
    }
    return linear;
}

int cm_bf16_linear_run(const cm_bf16_linear *linear, int64_t m, const uint16_t *x, const uint16_t *w, float *y) {
    if (m == 0) return 0;
    dnnl_status_t stream_status = this_threads_stream();
    if (stream_status != dnnl_success) return (int)stream_status;
    dnnl_dims_t x_dims = {m, linear->k}, x_strides = {linear->k, 1};
    dnnl_dims_t w_dims = {linear->k, linear->n}, w_strides = {1, linear->k};
    dnnl_dims_t y_dims = {m, linear->n}, y_strides = {linear->n, 1};
    dnnl_memory_desc_t x_md, w_md, y_md;
    dnnl_memory_t x_memory = NULL, w_memory = NULL, y_memory = NULL;
    dnnl_status_t status;
    if ((status = dnnl_memory_desc_init_by_strides(&x_md, 2, x_dims, dnnl_bf16, x_strides)) == dnnl_success
        && (status = dnnl_memory_desc_init_by_strides(&w_md, 2, w_dims, dnnl_bf16, w_strides)) == dnnl_success
        && (status = dnnl_memory_desc_init_by_strides(&y_md, 2, y_dims, dnnl_f32, y_strides)) == dnnl_success
        && (status = dnnl_memory_create(&x_memory, &x_md, engine, (void *)x)) == dnnl_success
        && (status = dnnl_memory_create(&w_memory, &w_md, engine, (void *)w)) == dnnl_success
        && (status = dnnl_memory_create(&y_memory, &y_md, engine, y)) == dnnl_success) {
        dnnl_exec_arg_t arguments[3] = {
            {DNNL_ARG_SRC, x_memory}, {DNNL_ARG_WEIGHTS, w_memory}, {DNNL_ARG_DST, y_memory}};
        status = dnnl_primitive_execute(linear->primitive, stream, 3, arguments);
        if (status == dnnl_success) status = dnnl_stream_wait(stream);
    }
    if (x_memory) dnnl_memory_destroy(x_memory);
    if (w_memory) dnnl_memory_destroy(w_memory);
    if (y_memory) dnnl_memory_destroy(y_memory);
    return (int)status;
}

void cm_bf16_linear_destroy(cm_bf16_linear *linear) {
    if (!linear) return;
    if (linear->primitive) dnnl_primitive_destroy(linear->primitive);
    if (linear->descriptor) dnnl_primitive_desc_destroy(linear->descriptor);
    free(linear);
}

const char *cm_bf16_linear_kernel(const cm_bf16_linear *linear) {
    const char *name = "unknown";
    if (dnnl_primitive_desc_query(linear->descriptor, dnnl_query_impl_info_str, 0, &name) != dnnl_success) return "unknown";
    return name;
}

const char *cm_effective_isa(void) {
    pthread_once(&setup_once, set_up);
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
    }
}

void cm_set_threads(int threads) { omp_set_num_threads(threads); }
int cm_threads(void) { return omp_get_max_threads(); }
