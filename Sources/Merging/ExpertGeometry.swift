import CLinearAlgebra

/// How the experts of one layer compare: the Gram matrix of their representations (mean outputs,
/// router-logit columns, flattened weights) and the metric read from it. Distances feed linkage
/// clustering and the dominant rule; `embedding()` gives points with the same geometry for
/// k-means, so every representation clusters through the same code however large it is.
public struct ExpertGeometry: Sendable {
    public enum Metric: String, Sendable, Codable {
        /// ‖a − b‖ (HC-SMoE's distance between mean expert outputs).
        case euclidean
        /// (1 − cos(a, b)) / 2, one minus M-SMoE's similarity (cos + 1) / 2: scale-free, in [0, 1].
        case cosine
    }

    public let count: Int
    /// `count x count`, row-major, symmetric: G[i][j] = ⟨r_i, r_j⟩.
    public let gram: [Double]
    public let metric: Metric

    public init(gram: [Double], count: Int, metric: Metric) throws {
        guard count >= 1, gram.count == count * count else {
            throw MergingError("expert geometry: \(gram.count) Gram entries for \(count) experts")
        }
        guard gram.allSatisfy(\.isFinite) else { throw MergingError("expert geometry: the Gram matrix has NaN or infinite entries") }
        self.count = count
        self.gram = gram
        self.metric = metric
    }

    /// The Gram matrix of the rows of a row-major `count x dimension` matrix.
    public init(rows: [Double], count: Int, dimension: Int, metric: Metric) throws {
        guard count >= 1, dimension >= 1, rows.count == count * dimension else {
            throw MergingError("expert geometry: \(rows.count) values for \(count) rows of \(dimension)")
        }
        var gram = [Double](repeating: 0, count: count * count)
        rows.withUnsafeBufferPointer { r in
            gram.withUnsafeMutableBufferPointer { g in
                cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, blasint(count), blasint(dimension),
                            1, r.baseAddress, blasint(dimension), 0, g.baseAddress, blasint(count))
            }
        }
        try self.init(gram: symmetrizedFromUpper(gram, count: count), count: count, metric: metric)
    }

    /// Cosine of every pair; a zero representation has cosine 0 with every other and 1 with itself.
    public var cosines: [Double] {
        var out = [Double](repeating: 0, count: count * count)
        for i in 0..<count {
            for j in 0..<count {
                let norms = (gram[i * count + i] * gram[j * count + j]).squareRoot()
                out[i * count + j] = i == j ? 1 : (norms > 0 ? max(-1, min(1, gram[i * count + j] / norms)) : 0)
            }
        }
        return out
    }

    /// `count x count` distances under the metric (zero diagonal).
    public var distances: [Double] {
        switch metric {
        case .cosine:
            return cosines.enumerated().map { index, cosine in index / count == index % count ? 0 : (1 - cosine) / 2 }
        case .euclidean:
            return (0..<(count * count)).map { index in
                let (i, j) = (index / count, index % count)
                return i == j ? 0 : max(0, gram[i * count + i] + gram[j * count + j] - 2 * gram[index]).squareRoot()
            }
        }
    }

    /// `count x count` points (row i is expert i) whose squared Euclidean distances are the
    /// metric's geometry: the representations themselves up to a rotation (euclidean), or their
    /// unit-length versions (cosine, where ‖a − b‖² = 2 − 2 cos = 4 × distance). From the
    /// eigendecomposition G = V Λ Vᵀ (LAPACK dsyevd): X = V Λ^½, negative rounding noise in Λ
    /// clipped to 0. k-means depends only on these distances, so it clusters X as it would the
    /// representations, at a size set by the expert count rather than the representation's.
    public func embedding() throws -> [Double] {
        var matrix = metric == .cosine ? cosines : gram
        var eigenvalues = [Double](repeating: 0, count: count)
        let status = matrix.withUnsafeMutableBufferPointer { a in
            eigenvalues.withUnsafeMutableBufferPointer { w in
                LAPACKE_dsyevd(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "V")), CChar(UInt8(ascii: "U")),
                               LapackInt(count), a.baseAddress, LapackInt(count), w.baseAddress)
            }
        }
        guard status == 0 else { throw MergingError("expert geometry: LAPACKE_dsyevd failed (info \(status)) for \(count) experts") }
        // Columns of `matrix` are eigenvectors; scale column c by sqrt(λ_c).
        for c in 0..<count {
            let scale = max(eigenvalues[c], 0).squareRoot()
            for r in 0..<count { matrix[r * count + c] *= scale }
        }
        return matrix
    }
}

/// The full matrix from one whose upper triangle (row ≤ column) holds the values.
func symmetrizedFromUpper(_ upper: [Double], count: Int) -> [Double] {
    var full = upper
    for i in 0..<count {
        for j in 0..<i { full[i * count + j] = upper[j * count + i] }
    }
    return full
}
