/// How a cluster's experts become one.
public enum FuseMethod: Sendable, Equatable, Codable {
    /// Usage-weighted average of each weight matrix (HC-SMoE's and M-SMoE's frequency merge).
    case average
    /// Each member's neurons first reordered to match the most used member's (MC-SMoE's weight
    /// matching, the Hungarian algorithm), then the usage-weighted average.
    case aligned
    /// Sub-MoE's joint SVD of the members side by side: a shared basis kept to a rank, the
    /// expert-specific factors averaged by usage, rebuilt at the original size.
    case subspace(RankChoice)

    public var name: String {
        switch self {
        case .average: return "average"
        case .aligned: return "aligned"
        case .subspace: return "subspace"
        }
    }
}

/// How the merged experts' router rows are made from their members'.
public enum RouterMethod: String, Sendable, CaseIterable, Codable {
    /// The most used member's row (M-SMoE).
    case dominant
    /// The usage-weighted mean of the members' rows.
    case average
    /// Least squares on calibration inputs: the merged logit matches log Σ exp of the members' (RouterFit).
    case fit
}
