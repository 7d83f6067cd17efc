#include "CKernels.h"
#if defined(__GLIBC__)
#include <malloc.h>
#endif

void ck_reuse_freed_buffers(void) {
#if defined(__GLIBC__)
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
}
