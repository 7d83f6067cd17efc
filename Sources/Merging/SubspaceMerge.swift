import CLinearAlgebra

/// How much of a cluster's shared subspace a subspace merge keeps.
public enum RankChoice: Sendable, Equatable, Codable {
    /// Exactly this many singular directions.
    case rank(Int)
    /// The fewest directions whose squared singular values hold at least this fraction (0...1).
    case energy(Double)
}

/// What a subspace merge kept of one matrix.
public struct SubspaceSummary: Sendable, Codable, Equatable {
    public let rank: Int
    /// min(rows, members × columns): the rank of an untruncated merge.
    public let fullRank: Int
    /// Σ_{k<rank} s_k² / Σ s_k² of the concatenated members.
    public let retainedEnergy: Double

    enum CodingKeys: String, CodingKey {
        case rank
        case fullRank = "full_rank"
        case retainedEnergy = "retained_energy"
    }
}

/// Sub-MoE's union decomposition (Li et al. 2025, arXiv 2506.23266) of one projection of a
/// cluster: the members' `rows x columns` matrices side by side, M = [W_1 | … | W_n], take one
/// thin SVD M = U S Vᵀ (LAPACK dgesdd, float64), keep the first r directions of the shared basis
/// U, merge the expert-specific parts Vᵀ_i (the column blocks of Vᵀ belonging to W_i) by usage,
/// and rebuild at the original size: W = U_r S_r Σ_i w_i Vᵀ_{r,i}, w = usage / Σ usage (equal
/// weights when no member was used). At full rank this is the usage-weighted average; below it,
/// the average projected onto the cluster's top-r shared subspace, U_r U_rᵀ W̄.
/// Returns the merged matrix (row-major) and what was kept.
public func subspaceMerge(_ members: [[Double]], weights: [Double], rows: Int, columns: Int,
                          keeping choice: RankChoice) throws -> (merged: [Double], summary: SubspaceSummary) {
    guard !members.isEmpty, members.count == weights.count, rows >= 1, columns >= 1,
          members.allSatisfy({ $0.count == rows * columns }) else {
        throw MergingError("subspace merge: \(members.count) members and \(weights.count) weights for \(rows) x \(columns) matrices")
    }
    guard weights.allSatisfy({ $0.isFinite && $0 >= 0 }) else { throw MergingError("subspace merge: usage weights must be finite and non-negative") }
    let n = members.count, wide = n * columns
    var concatenated = [Double](repeating: 0, count: rows * wide)
    for (index, member) in members.enumerated() {
        for r in 0..<rows {
            for c in 0..<columns { concatenated[r * wide + index * columns + c] = member[r * columns + c] }
        }
    }
    let svd = try singularValueDecomposition(consume concatenated, rows: rows, columns: wide)
    let rank: Int
    switch choice {
    case .rank(let requested):
        guard (1...svd.fullRank).contains(requested) else {
            throw MergingError("--rank \(requested): the cluster's \(rows) x \(wide) concatenation has rank at most \(svd.fullRank)")
        }
        rank = requested
    case .energy(let fraction):
        rank = max(1, try rankRetainingEnergy(singularValues: svd.singularValues, fraction: fraction))
    }
    let total = weights.reduce(0, +)
    let normalized = total > 0 ? weights.map { $0 / total } : weights.map { _ in 1 / Double(n) }
    // V̄ = Σ_i w_i Vᵀ_{r,i}, rank x columns.
    var mergedFactor = [Double](repeating: 0, count: rank * columns)
    for (index, weight) in normalized.enumerated() where weight > 0 {
        for k in 0..<rank {
            for c in 0..<columns { mergedFactor[k * columns + c] += weight * svd.vt[k * wide + index * columns + c] }
        }
    }
    // U_r S_r, rows x rank.
    var scaledBasis = [Double](repeating: 0, count: rows * rank)
    for r in 0..<rows {
        for k in 0..<rank { scaledBasis[r * rank + k] = svd.u[r * svd.fullRank + k] * svd.singularValues[k] }
    }
    var merged = [Double](repeating: 0, count: rows * columns)
    scaledBasis.withUnsafeBufferPointer { a in
        mergedFactor.withUnsafeBufferPointer { b in
            merged.withUnsafeMutableBufferPointer { c in
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blasint(rows), blasint(columns), blasint(rank),
                            1, a.baseAddress, blasint(rank), b.baseAddress, blasint(columns), 0, c.baseAddress, blasint(columns))
            }
        }
    }
    let energies = svd.singularValues.map { $0 * $0 }
    let all = energies.reduce(0, +)
    let kept = energies.prefix(rank).reduce(0, +)
    return (merged, SubspaceSummary(rank: rank, fullRank: svd.fullRank, retainedEnergy: all > 0 ? kept / all : 1))
}
