import CKernels

/// How the process's allocator treats the activation buffers of a layer-streaming pass.
public enum AllocatorPolicy {
    /// The forward pass frees and allocates the same large buffers for every layer (projections,
    /// attention context, expert inputs and outputs), and oneDNN its packing scratchpads for every
    /// product. glibc serves blocks above its mmap threshold (at most 32 MiB by default) with
    /// fresh mappings and unmaps them on free, so every layer paid page faults and page zeroing
    /// for memory it had just given back. Keeping blocks up to 256 MiB in the heap and trimming
    /// only above 256 MiB of free space made the issue-13 eval (seq-len 2048, 2 threads, Zen 3)
    /// ~9% faster, median of six alternating runs, for ~30 MB (7%) more peak RSS.
    /// Process-wide, so the executable calls it once at start; a no-op off glibc.
    public static func reuseFreedBuffers() {
        ck_reuse_freed_buffers()
    }
}
