import CLinearAlgebra

/// Thin, typed wrappers over OpenBLAS. Everything that multiplies matrices goes through here, so
/// this is the only file that imports the C binding.
public enum BLAS {
    /// The kernel family OpenBLAS picked (`OPENBLAS_CORETYPE` overrides it at load time).
    public static var coreName: String { String(cString: openblas_get_corename()) }
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(newValue)) }
    }
}

/// `C = alpha * op(A) * op(B) + beta * C`, row-major, with explicit leading dimensions so that
/// strided views (one attention head inside a packed projection) need no copies.
@inlinable
public func gemm(
    m: Int, n: Int, k: Int,
    alpha: Float = 1,
    a: UnsafePointer<Float>, lda: Int, transposeA: Bool = false,
    b: UnsafePointer<Float>, ldb: Int, transposeB: Bool = false,
    beta: Float = 0,
    c: UnsafeMutablePointer<Float>, ldc: Int
) {
    cblas_sgemm(
        CblasRowMajor,
        transposeA ? CblasTrans : CblasNoTrans,
        transposeB ? CblasTrans : CblasNoTrans,
        blasint(m), blasint(n), blasint(k),
        alpha, a, blasint(lda), b, blasint(ldb),
        beta, c, blasint(ldc))
}

/// `y = alpha * A * x + beta * y` for a row-major `rows x columns` matrix A.
@inlinable
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
/// OpenBLAS 0.3.21 does not forward m=1 GEMM to GEMV, and sgemv is ~2.7x faster there
/// (shared/reference/swift-stack.md §2), so a single token takes the GEMV path.
@inlinable
public func linear(
    input: UnsafePointer<Float>, tokens: Int, inFeatures: Int,
    weight: UnsafePointer<Float>, outFeatures: Int,
    output: UnsafeMutablePointer<Float>, accumulate: Bool = false
) {
    guard tokens > 0 else { return }
    if tokens == 1 {
        gemv(rows: outFeatures, columns: inFeatures, a: weight, lda: inFeatures, x: input,
             beta: accumulate ? 1 : 0, y: output)
    } else {
        gemm(m: tokens, n: outFeatures, k: inFeatures,
             a: input, lda: inFeatures,
             b: weight, ldb: inFeatures, transposeB: true,
             beta: accumulate ? 1 : 0, c: output, ldc: outFeatures)
    }
}
