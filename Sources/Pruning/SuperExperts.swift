import Calibration

/// "Super experts" (Su et al., arXiv 2507.23279): the few experts whose outputs carry extreme
/// activation outliers, which models depend on far beyond their routing share. Found as
/// CerebrasResearch/reap's `get_super_expert_indices` finds them: largest activation above both
/// the 99.5th percentile of every expert's largest activation (over all sparse layers) and a tenth
/// of the overall largest, in the first 75% of the sparse layers (its default). REAP uses the
/// signed maximum; the statistics file keeps the largest |value|, since an outlier of either sign is one.
public enum SuperExperts {
    /// `layers`: the sparse layers' statistics, in order.
    public static func find(in layers: [LayerStatistics]) -> [Int: Set<Int>] {
        let values = layers.flatMap { $0[.maxAbsActivation] }
        guard let largest = values.max() else { return [:] }
        let threshold = max(quantile(values, 0.995), largest / 10)
        var found: [Int: Set<Int>] = [:]
        for layer in layers.prefix(Int(Double(layers.count) * 0.75)) {
            let experts = layer[.maxAbsActivation].indices.filter { layer[.maxAbsActivation][$0] > threshold }
            if !experts.isEmpty { found[layer.layer] = Set(experts) }
        }
        return found
    }

    /// The `q` quantile with linear interpolation between order statistics (torch.quantile's and
    /// numpy's default).
    static func quantile(_ values: [Double], _ q: Double) -> Double {
        let sorted = values.sorted()
        guard sorted.count > 1 else { return sorted.first ?? 0 }
        let position = q * Double(sorted.count - 1)
        let lower = Int(position.rounded(.down)), upper = min(lower + 1, sorted.count - 1)
        return sorted[lower] + (position - Double(lower)) * (sorted[upper] - sorted[lower])
    }
}
