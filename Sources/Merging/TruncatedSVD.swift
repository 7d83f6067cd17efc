import CLinearAlgebra

/// The thin singular value decomposition `A = U · diag(S) · Vᵀ` of a row-major `rows x columns`
/// matrix, with `k = min(rows, columns)`: U is `rows x k`, Vᵀ is `k x columns` (both row-major),
/// S descending. Singular vectors are unique only up to sign, so compare reconstructions.
public struct SingularValueDecomposition: Sendable {
    public let rows: Int
    public let columns: Int
    public let u: [Double]
    public let singularValues: [Double]
    public let vt: [Double]

    /// `min(rows, columns)`: how many singular values there are.
    public var fullRank: Int { singularValues.count }

    /// The best rank-`rank` approximation `U[:, :r] · diag(S[:r]) · Vᵀ[:r, :]` (Eckart-Young),
    /// row-major `rows x columns`; rank 0 is the zero matrix.
    public func reconstruction(rank: Int) throws -> [Double] {
        guard (0...fullRank).contains(rank) else {
            throw MergingError("SVD reconstruction: rank \(rank) outside 0...\(fullRank)")
        }
        var out = [Double](repeating: 0, count: rows * columns)
        for i in 0..<rows {
            for r in 0..<rank {
                let scale = u[i * fullRank + r] * singularValues[r]
                for j in 0..<columns { out[i * columns + j] += scale * vt[r * columns + j] }
            }
        }
        return out
    }
}

/// The thin SVD through LAPACK's divide-and-conquer driver `dgesdd` (float64, so the
/// singular values carry far more precision than the float32 weights they come from).
///
/// LAPACK is handed the row-major buffer as what it is in column-major order, the transpose
/// Aᵀ = V S Uᵀ, so its left factor is our Vᵀ and its right factor our U, both already in
/// row-major order: no transposed copies of the input or of the factors (LAPACKE's row-major
/// layout makes three). A caller that passes its last use of the matrix (`consume`) lends
/// dgesdd its buffer to overwrite; otherwise the buffer is copied first.
public func singularValueDecomposition(_ a: consuming [Double], rows: Int, columns: Int) throws -> SingularValueDecomposition {
    guard rows >= 1, columns >= 1, a.count == rows * columns else {
        throw MergingError("SVD: \(a.count) values for \(rows) x \(columns)")
    }
    guard !a.contains(where: { !$0.isFinite }) else { throw MergingError("SVD: matrix has NaN or infinite entries") }
    let k = min(rows, columns)
    var work = consume a  // dgesdd overwrites its input
    var s = [Double](repeating: 0, count: k)
    var u = [Double](repeating: 0, count: rows * k)
    var vt = [Double](repeating: 0, count: k * columns)
    let status = work.withUnsafeMutableBufferPointer { aBuffer in
        s.withUnsafeMutableBufferPointer { sBuffer in
            u.withUnsafeMutableBufferPointer { uBuffer in
                vt.withUnsafeMutableBufferPointer { vtBuffer in
                    // Column-major Aᵀ (columns x rows, leading dimension columns); jobz 'S': the
                    // thin factors. Its U (columns x k, column-major) is Vᵀ (k x columns,
                    // row-major); its Vᵀ (k x rows, column-major) is U (rows x k, row-major).
                    LAPACKE_dgesdd(
                        LAPACK_COL_MAJOR, CChar(UInt8(ascii: "S")),
                        LapackInt(columns), LapackInt(rows),
                        aBuffer.baseAddress, LapackInt(columns),
                        sBuffer.baseAddress,
                        vtBuffer.baseAddress, LapackInt(columns),
                        uBuffer.baseAddress, LapackInt(k))
                }
            }
        }
    }
    guard status == 0 else {
        throw MergingError("SVD: LAPACKE_dgesdd failed (info \(status)) for \(rows) x \(columns)")
    }
    return SingularValueDecomposition(rows: rows, columns: columns, u: u, singularValues: s, vt: vt)
}

/// The smallest rank r whose singular values keep at least `fraction` of the energy:
/// `C[r-1] / C[last] >= fraction` with `C` the running sum of squared singular values (so the
/// whole sum counts as exactly 1 and every fraction in [0, 1] has a rank). Fraction 0, or an
/// all-zero spectrum, gives rank 0.
public func rankRetainingEnergy(singularValues: [Double], fraction: Double) throws -> Int {
    guard fraction >= 0, fraction <= 1 else {
        throw MergingError("retained energy fraction \(fraction) outside [0, 1]")
    }
    guard !singularValues.contains(where: { !$0.isFinite || $0 < 0 }) else {
        throw MergingError("singular values must be finite and non-negative")
    }
    var cumulative: [Double] = []
    var running = 0.0
    for value in singularValues {
        running += value * value
        cumulative.append(running)
    }
    guard fraction > 0, running > 0 else { return 0 }
    return (cumulative.firstIndex { $0 / running >= fraction } ?? cumulative.count - 1) + 1
}
