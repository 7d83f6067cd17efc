/// A per-expert quantity calibration sums over tokens; the raw value is the file's array name.
/// Definitions (docs/statistics.md); "routed tokens" are those whose top-k contains the expert,
/// and the weight is the one the block applies (renormalised over the top-k when the family does).
public enum ExpertMeasure: String, CaseIterable, Sendable {
    /// Routed tokens.
    case counts
    /// Σ over all tokens of the softmax probability over all experts.
    case probabilitySum = "probability_sum"
    /// The same, over routed tokens only (before any top-k renormalisation).
    case routedProbabilitySum = "routed_probability_sum"
    /// Σ over routed tokens of the weight.
    case routedWeightSum = "routed_weight_sum"
    /// Σ over routed tokens of weight × ‖expert output‖₂ (REAP's numerator).
    case weightedOutputNormSum = "weighted_output_norm_sum"
    /// Σ over routed tokens of ‖expert output‖₂ (EAN).
    case outputNormSum = "output_norm_sum"
    case maxOutputNorm = "max_output_norm"
    /// Largest |entry| of the expert's output over routed tokens (the "super expert" signal).
    case maxAbsActivation = "max_abs_activation"
    /// Σ over routed tokens of weight × ‖output‖₂ × max(1 − cos(h, h + r), 0): h the residual
    /// entering the block, r the routed experts' combined output (EASY-EP's token contribution).
    case easyEP = "easy_ep"
    /// Σ over the tokens whose largest raw router logit is the expert's, of that logit (PreMoe's
    /// marker, its code's defaults: top-1, no threshold).
    case top1LogitSum = "top1_logit_sum"
}

/// What calibration measures in one sparse layer. Sums are kept, not means, so the statistics
/// of several runs add up; the scores divide them out.
public struct LayerStatistics: Sendable, Equatable {
    public let layer: Int
    public let expertCount: Int
    public let hiddenSize: Int
    /// Tokens that passed through the layer.
    public var tokenCount: Double = 0
    /// One array of `expertCount` values per measure.
    public var measures: [ExpertMeasure: [Double]]
    /// `expertCount x expertCount`: tokens whose top-k contains both experts (diagonal = counts).
    public var coactivation: [Double]
    /// `expertCount x hiddenSize`: Σ over routed tokens of the squared inputs, the diagonal of
    /// each expert's XᵀX (the importance weights of quantization).
    public var inputSquareSum: [Double]

    public init(layer: Int, expertCount: Int, hiddenSize: Int) {
        self.layer = layer
        self.expertCount = expertCount
        self.hiddenSize = hiddenSize
        measures = Dictionary(uniqueKeysWithValues: ExpertMeasure.allCases.map { ($0, [Double](repeating: 0, count: expertCount)) })
        coactivation = [Double](repeating: 0, count: expertCount * expertCount)
        inputSquareSum = [Double](repeating: 0, count: expertCount * hiddenSize)
    }

    public subscript(measure: ExpertMeasure) -> [Double] {
        get { measures[measure] ?? [] }
        set { measures[measure] = newValue }
    }

    /// REAP (Lasby et al. 2025): the mean over routed tokens of weight × ‖output‖₂; 0 for an
    /// expert no token reached.
    public var reap: [Double] { perRoutedToken(self[.weightedOutputNormSum]) }
    /// Mean ‖output‖₂ over routed tokens (EAN per token); 0 for an unused expert.
    public var meanOutputNorm: [Double] { perRoutedToken(self[.outputNormSum]) }

    private func perRoutedToken(_ sums: [Double]) -> [Double] {
        zip(sums, self[.counts]).map { $1 > 0 ? $0 / $1 : 0 }
    }
}
