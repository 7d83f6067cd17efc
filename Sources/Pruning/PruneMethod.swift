import Calibration

/// How experts are ranked for pruning, each a score per expert from the statistics file; the
/// highest-scoring experts are kept (ties keep the lower id).
public enum PruneMethod: String, CaseIterable, Sendable, Codable {
    /// Top-k selection counts (the baseline every paper compares with).
    case frequency
    /// Σ over routed tokens of the applied routing weight (REAP repo's `weighted_expert_frequency_sum`).
    case soft
    /// Mean ‖expert output‖₂ over routed tokens (EAN).
    case ean
    /// Mean over routed tokens of weight × ‖output‖₂ (REAP, Lasby et al., arXiv 2510.13999).
    case reap
    /// Σ over routed tokens of weight × ‖output‖₂ × token contribution (EASY-EP, Dong et al.,
    /// arXiv 2504.06792).
    case easyEP = "easy-ep"
    /// PreMoe's task-conditioned expected selection score (Pei et al., arXiv 2505.17639): the mean
    /// over calibration tokens of the expert's raw router logit where it is the token's top-1
    /// (as JarvisPei/PreMoe computes it by default); the calibration data is the task.
    case tcess

    public func scores(_ layer: LayerStatistics) -> [Double] {
        switch self {
        case .frequency: return layer[.counts]
        case .soft: return layer[.routedWeightSum]
        case .ean: return layer.meanOutputNorm
        case .reap: return layer.reap
        case .easyEP: return layer[.easyEP]
        case .tcess: return layer[.top1LogitSum].map { layer.tokenCount > 0 ? $0 / layer.tokenCount : 0 }
        }
    }

    /// The `keep` best experts by `scores`, as sorted original ids.
    public static func best(_ keep: Int, of scores: [Double]) -> [Int] {
        let ranked = scores.indices.sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }
        return ranked.prefix(keep).sorted()
    }
}
