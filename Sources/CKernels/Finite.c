#include "CKernels.h"
#include <string.h>

/* The forward pass checks every layer's output for NaN and infinity, so that a bad config value
   or weight is reported where it first appears instead of surfacing as a NaN perplexity. The scan
   runs blockwise: a branch-free OR over a block of exponent tests, then an exact search only in
   the block that failed. */
size_t ck_first_non_finite(const float *x, size_t count) {
    const size_t block = 1024;
    for (size_t start = 0; start < count; start += block) {
        size_t end = start + block < count ? start + block : count;
        uint32_t bad = 0;
        for (size_t i = start; i < end; i++) {
            uint32_t bits;
            memcpy(&bits, x + i, sizeof bits);
            bad |= (uint32_t)((bits & 0x7f800000u) == 0x7f800000u);
        }
        if (!bad) continue;
        for (size_t i = start; i < end; i++) {
            uint32_t bits;
            memcpy(&bits, x + i, sizeof bits);
            if ((bits & 0x7f800000u) == 0x7f800000u) return i;
        }
    }
    return count;
}
