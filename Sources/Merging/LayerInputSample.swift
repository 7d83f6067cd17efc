import Architectures
import Calibration
import Inference
import Models

/// What a merge measures on calibration text in one forward pass: per sparse layer, the block
/// inputs (the router's input, the post-attention-normalised states) of the first `tokenBudget`
/// tokens, whole sequences only, which output similarity, router-logit similarity and the router
/// fit are computed from; and every expert's top-k selection count over all tokens (the usage
/// that weights the merge). Memory: tokenBudget × hidden × sparse layers floats.
public final class LayerInputSample: ForwardObserver {
    public let tokenBudget: Int
    public let sequenceLength: Int
    public let hiddenSize: Int
    /// Per sparse layer, `tokens x hiddenSize` inputs.
    public private(set) var inputs: [Int: [Float]] = [:]
    /// Per sparse layer, top-k selections per expert over every calibration token.
    public private(set) var counts: [Int: [Double]] = [:]
    public var wantsBlockActivations: Bool { true }

    public init(model: ModelDescription, tokenBudget: Int, sequenceLength: Int) {
        self.tokenBudget = max(tokenBudget, 1)
        self.sequenceLength = max(sequenceLength, 1)
        hiddenSize = model.hiddenSize
    }

    /// Sampled tokens of `layer`.
    public func tokens(inLayer layer: Int) -> Int { (inputs[layer]?.count ?? 0) / hiddenSize }

    public func observe(routing trace: RoutingTrace) {
        var layerCounts = counts[trace.layer] ?? [Double](repeating: 0, count: trace.expertCount)
        for expert in trace.selectedExperts where layerCounts.indices.contains(expert) { layerCounts[expert] += 1 }
        counts[trace.layer] = layerCounts
    }

    public func observe(block: MoEBlockActivations) {
        let held = tokens(inLayer: block.layer)
        let available = block.input.count / hiddenSize
        // Whole sequences while the budget lasts (at least one, so a short budget still samples).
        let room = tokenBudget - held
        guard room > 0 || held == 0 else { return }
        let sequences = max(min(available, max(room, 0)) / sequenceLength, held == 0 ? 1 : 0)
        let take = min(available, sequences * sequenceLength)
        guard take > 0 else { return }
        inputs[block.layer, default: []].append(contentsOf: block.input.prefix(take * hiddenSize))
    }
}

extension LayerInputSample {
    /// Runs the calibration windows through the model's own forward pass (batches of up to
    /// `batchTokens` ids) and returns what it sampled. `progress(done, total)` counts layers.
    public static func collect(from model: Model, data: CalibrationData, tokenBudget: Int, precision: ComputePrecision,
                               batchTokens: Int = 8192, progress: ((Int, Int) -> Void)? = nil) throws -> LayerInputSample {
        let sample = LayerInputSample(model: model.description, tokenBudget: tokenBudget, sequenceLength: data.sequenceLength)
        let forward = ForwardPass(model: model.description, source: model.source, precision: precision)
        let batches = consecutiveGroups(data.windows, limit: max(batchTokens, 1)) { $0.count }
        let layers = model.description.layerCount
        for (index, batch) in batches.enumerated() {
            _ = try forward.hiddenStates(TokenBatch(sequences: batch), observer: sample) { done, _ in
                progress?(index * layers + done, batches.count * layers)
            }
        }
        return sample
    }
}
