import Architectures
import Inference
import Models

/// Runs NAEE's subset search on each sparse layer while the forward pass is at that layer: the
/// layer's first `tokenBudget` calibration tokens (their inputs, router logits and routed output)
/// and every expert's output on them are held only until the layer's search is done, so memory
/// stays near one layer (experts × tokens × hidden floats).
final class SubsetSearchCollector: ForwardObserver {
    let model: Model
    let keep: Int
    let tokenBudget: Int
    let sequenceLength: Int
    let precision: ComputePrecision
    private(set) var results: [Int: ExpertSubsetResult] = [:]
    /// An observer cannot throw; the first failure is kept and rethrown by the stage.
    private(set) var failure: Error?
    private var logits: [Int: [Float]] = [:]
    /// The last layer's problem, for tests that check the objective against the real pruned layer.
    private(set) var lastProblem: ExpertSubsetProblem?
    var wantsExpertActivations: Bool { true }

    init(model: Model, keep: Int, tokenBudget: Int, sequenceLength: Int, precision: ComputePrecision) {
        self.model = model
        self.keep = keep
        self.tokenBudget = tokenBudget
        self.sequenceLength = sequenceLength
        self.precision = precision
    }

    func observe(routing trace: RoutingTrace) {
        guard results[trace.layer] == nil, logits[trace.layer] == nil else { return }
        logits[trace.layer] = Array(trace.routerLogits.prefix(tokens(of: trace.tokenCount) * trace.expertCount))
    }

    func observe(block: MoEBlockActivations) {
        guard results[block.layer] == nil, failure == nil, let layerLogits = logits.removeValue(forKey: block.layer),
              case .sparse(let shape) = model.description.feedForward[block.layer] else { return }
        let hidden = model.description.hiddenSize
        let count = tokens(of: block.input.count / hidden)
        do {
            let inputs = block.input.baseAddress!
            let outputs = try (0..<shape.expertCount).map { expert in
                try routedExpertOutputs(layer: block.layer, expert: expert, inputs: inputs, rows: count,
                                        model: model.description, source: model.source, precision: precision).array
            }
            let problem = ExpertSubsetProblem(
                tokens: count, hiddenSize: hidden, expertCount: shape.expertCount, expertsPerToken: shape.expertsPerToken,
                normalize: model.description.normalizeTopK, sequenceLength: sequenceLength, logits: layerLogits,
                expertOutputs: outputs, target: Array(block.routedOutput.prefix(count * hidden)))
            results[block.layer] = ExpertSubsetSearch.best(problem, keep: keep)
            lastProblem = problem
        } catch {
            failure = error
        }
    }

    /// Whole sequences, up to the budget (at least one).
    private func tokens(of available: Int) -> Int {
        let sequences = max(1, min(available, tokenBudget) / sequenceLength)
        return min(available, sequences * sequenceLength)
    }
}
