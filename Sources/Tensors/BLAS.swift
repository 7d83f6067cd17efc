import CLinearAlgebra
import CMatmul

/// The two matrix libraries: OpenBLAS for matrix-vector products (and LAPACK later), oneDNN for
/// matrix-matrix products. oneDNN picks its kernels from the CPU's features, while OpenBLAS here
/// is held to `OPENBLAS_CORETYPE` (this environment forces Haswell, which halves sgemm on AVX-512
/// machines; docs/benchmarks.md), and Debian's OpenBLAS has no bfloat16 GEMM.
public enum BLAS {
    /// The kernel family OpenBLAS picked (`OPENBLAS_CORETYPE` overrides it at load time).
    public static var coreName: String { String(cString: openblas_get_corename()) }
    /// The instruction set oneDNN's kernels use (after ONEDNN_MAX_CPU_ISA / MOE_COMPRESS_MAX_ISA).
    public static var oneDNNInstructionSet: String { String(cString: cm_effective_isa()) }
    /// Threads for both libraries; they never run at the same time, so each may use every core.
    public static var threads: Int {
        get { Int(cm_threads()) }
        set {
            openblas_set_num_threads(Int32(newValue))
            cm_set_threads(Int32(newValue))
        }
    }

    /// Runs `body` with oneDNN's matrix products single-threaded on the calling thread, for work
    /// that is already split across the cores (one level of parallelism). oneDNN's thread count
    /// is OpenMP's, which is a per-thread setting, so other threads are not affected.
    public static func singleThreaded<T>(_ body: () throws -> T) rethrows -> T {
        let previous = cm_threads()
        cm_set_threads(1)
        defer { cm_set_threads(previous) }
        return try body()
    }
}

/// `C = alpha * op(A) * op(B) + beta * C`, row-major, with explicit leading dimensions so that
/// strided views (one attention head inside a packed projection) need no copies.
public func gemm(
    m: Int, n: Int, k: Int,
    alpha: Float = 1,
    a: UnsafePointer<Float>, lda: Int, transposeA: Bool = false,
    b: UnsafePointer<Float>, ldb: Int, transposeB: Bool = false,
    beta: Float = 0,
    c: UnsafeMutablePointer<Float>, ldc: Int
) throws {
    let status = cm_sgemm(
        CChar(UInt8(ascii: transposeA ? "T" : "N")), CChar(UInt8(ascii: transposeB ? "T" : "N")),
        Int64(m), Int64(n), Int64(k), alpha, a, Int64(lda), b, Int64(ldb), beta, c, Int64(ldc))
    guard status == 0 else {
        throw ComputeError("oneDNN's Float32 matrix product failed (status \(status)) for \(m)x\(k) times \(k)x\(n)")
    }
}

/// `y = alpha * A * x + beta * y` for a row-major `rows x columns` matrix A.
public func gemv(
    rows: Int, columns: Int,
    alpha: Float = 1,
    a: UnsafePointer<Float>, lda: Int,
    x: UnsafePointer<Float>,
    beta: Float = 0,
    y: UnsafeMutablePointer<Float>
) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, blasint(rows), blasint(columns),
                alpha, a, blasint(lda), x, 1, beta, y, 1)
}

/// A linear layer without bias: `output[t] = weight * input[t]` for `tokens` rows, with `weight`
/// stored as PyTorch does (`outFeatures x inFeatures`).
///
/// A single token takes OpenBLAS's GEMV path, ~2.7x faster than a one-row GEMM
/// (shared/reference/swift-stack.md §2).
public func linear(
    input: UnsafePointer<Float>, tokens: Int, inFeatures: Int,
    weight: UnsafePointer<Float>, outFeatures: Int,
    output: UnsafeMutablePointer<Float>, accumulate: Bool = false
) throws {
    guard tokens > 0 else { return }
    if tokens == 1 {
        gemv(rows: outFeatures, columns: inFeatures, a: weight, lda: inFeatures, x: input,
             beta: accumulate ? 1 : 0, y: output)
    } else {
        try gemm(m: tokens, n: outFeatures, k: inFeatures,
             a: input, lda: inFeatures,
             b: weight, ldb: inFeatures, transposeB: true,
             beta: accumulate ? 1 : 0, c: output, ldc: outFeatures)
    }
}
