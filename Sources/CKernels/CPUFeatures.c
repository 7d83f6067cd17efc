#include "CKernels.h"
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Which instruction-set level the hand-written kernels may use. Detected once from the CPU, then
   capped by MOE_COMPRESS_MAX_ISA so that one machine can exercise every path (.ci/run runs the
   suite again under avx2 and scalar), the way oneDNN's ONEDNN_MAX_CPU_ISA caps its own kernels. */

static int detected_level(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")))
        return CK_ISA_SCALAR;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        return CK_ISA_AVX512;
    return CK_ISA_AVX2;
#else
    return CK_ISA_SCALAR;
#endif
}

int ck_parse_isa(const char *name) {
    if (!name) return -1;
    if (strcasecmp(name, "scalar") == 0) return CK_ISA_SCALAR;
    if (strcasecmp(name, "avx2") == 0) return CK_ISA_AVX2;
    if (strcasecmp(name, "avx512") == 0) return CK_ISA_AVX512;
    return -1;
}

int ck_detected_isa(void) {
    static int cached = -1;
    int level = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (level < 0) {
        level = detected_level();
        __atomic_store_n(&cached, level, __ATOMIC_RELAXED);
    }
    return level;
}

int ck_isa(void) {
    static int cached = -1;
    int level = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (level < 0) {
        level = ck_detected_isa();
        const char *cap = getenv("MOE_COMPRESS_MAX_ISA");
        if (cap && *cap) {
            /* An unknown value takes the safest path; the command line reports it as an error. */
            int limit = ck_parse_isa(cap);
            if (limit < 0) limit = CK_ISA_SCALAR;
            if (limit < level) level = limit;
        }
        __atomic_store_n(&cached, level, __ATOMIC_RELAXED);
    }
    return level;
}

const char *ck_isa_name(int level) {
    switch (level) {
    case CK_ISA_AVX512: return "avx512";
    case CK_ISA_AVX2: return "avx2";
    default: return "scalar";
    }
}
