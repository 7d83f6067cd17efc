import Calibration
import GGUF
import Inference
import Models

/// llama.cpp's importance matrix (imatrix, PR #4861), measured by moe-compress's own forward
/// pass: for every weight matrix, the sum over calibration tokens of each input column's square
/// (the diagonal of XᵀX), over only the tokens routed to it for an expert's matrices. It weights
/// rounding inside each block (columns that carry large inputs are kept exact) and, summed
/// rather than averaged, makes every tensor's error the squared output error over the same
/// calibration tokens, so errors of different tensors compare (the bit allocator's costs).
public final class InputImportance: ForwardObserver {
    public private(set) var squareSums: [String: [Double]] = [:]
    public private(set) var tokenCounts: [String: Int] = [:]
    /// Occurrences of each token id in the calibration windows: the embedding's row usage.
    public private(set) var idCounts: [Int: Int] = [:]
    /// Mean square of the residual stream where each sublayer's output is added, summed over
    /// tokens (with the token counts beside): entering each layer (attention adds there, and the
    /// embedding is layer 0's) and after each layer's attention (the feed-forward block adds there).
    /// In a pre-norm model the next RMSNorm divides an added error by the stream's RMS, so these
    /// put every tensor's output error on one scale.
    private var residualBeforeLayer: [Int: (sum: Double, tokens: Int)] = [:]
    private var residualAfterAttention: [Int: (sum: Double, tokens: Int)] = [:]

    /// The residual stream's width.
    let hiddenSize: Int

    public init(hiddenSize: Int) { self.hiddenSize = hiddenSize }

    public var wantsLinearInputs: Bool { true }
    public var wantsBlockActivations: Bool { true }
    public func observe(routing: RoutingTrace) {}

    public func observe(block: MoEBlockActivations) {
        add(block.residual, width: hiddenSize, to: &residualAfterAttention, layer: block.layer)
    }

    private func add(_ values: UnsafeBufferPointer<Float>, width: Int, to table: inout [Int: (sum: Double, tokens: Int)], layer: Int) {
        guard width > 0 else { return }
        var sum = 0.0
        for value in values { sum += Double(value) * Double(value) }
        let tokens = values.count / width
        let previous = table[layer] ?? (0, 0)
        table[layer] = (previous.sum + sum / Double(width), previous.tokens + tokens)
    }

    /// The mean square of the residual stream a tensor's output is added to (nil: not measured).
    public func residualScale(for tensor: GGUFTensorPlan) -> Double? {
        let entry: (sum: Double, tokens: Int)?
        switch tensor.role {
        case .output: return nil
        case .embedding: entry = residualBeforeLayer[0]
        case .attentionQuery, .attentionKey, .attentionValue, .attentionOutput: entry = tensor.layer.flatMap { residualBeforeLayer[$0] }
        default: entry = tensor.layer.flatMap { residualAfterAttention[$0] ?? residualBeforeLayer[$0] }
        }
        guard let entry, entry.tokens > 0, entry.sum > 0 else { return nil }
        return entry.sum / Double(entry.tokens)
    }

    public func observe(linearInput: LinearInput) {
        var sums = [Double](repeating: 0, count: linearInput.width)
        for token in 0..<linearInput.tokens {
            let row = linearInput.rows.baseAddress! + token * linearInput.width
            for column in 0..<linearInput.width {
                let value = Double(row[column])
                sums[column] += value * value
            }
        }
        for name in linearInput.weights {
            if let existing = squareSums[name] {
                squareSums[name] = zip(existing, sums).map(+)
            } else {
                squareSums[name] = sums
            }
            tokenCounts[name, default: 0] += linearInput.tokens
        }
    }

    /// Runs the calibration windows through the model once.
    public static func collect(from model: Model, data: CalibrationData, precision: ComputePrecision,
                               batchTokens: Int = 8192, progress: ((Int, Int) -> Void)? = nil) throws -> InputImportance {
        let importance = InputImportance(hiddenSize: model.description.hiddenSize)
        for window in data.windows { for id in window { importance.idCounts[id, default: 0] += 1 } }
        let forward = ForwardPass(model: model.description, source: model.source, precision: precision)
        let batches = consecutiveGroups(data.windows, limit: max(batchTokens, 1)) { $0.count }
        let layers = model.description.layerCount
        for (index, batch) in batches.enumerated() {
            let tokens = TokenBatch(sequences: batch)
            let states = try forward.embedding(of: tokens)
            let width = model.description.hiddenSize
            for layer in 0..<layers {
                importance.add(UnsafeBufferPointer(start: states.pointer, count: states.count), width: width,
                               to: &importance.residualBeforeLayer, layer: layer)
                try forward.applyLayer(layer, to: states, batch: tokens, observer: importance)
                progress?(index * layers + layer + 1, batches.count * layers)
            }
            try forward.finish(states, batch: tokens, observer: importance)
        }
        return importance
    }

    /// The mean square of each input column of one source tensor of `tensor` (expert `slice`),
    /// the per-column weights llama.cpp's quantizers take; nil when no token reached it (an
    /// unused expert is rounded without weights, as llama-quantize does for missing imatrix data).
    public func weights(for tensor: GGUFTensorPlan, slice: Int) -> [Float]? {
        let name = tensor.sources[slice]
        // The embedding is a lookup, not a product: its input is one-hot (see ErrorTable's row usage).
        if tensor.role == .embedding { return nil }
        guard let sums = squareSums[name], let tokens = tokenCounts[name], tokens > 0, sums.count == tensor.rowLength else { return nil }
        return sums.map { Float($0 / Double(tokens)) }
    }

    /// Summed squares (not means) for the error measure, or nil when no token reached the tensor.
    public func sums(for tensor: GGUFTensorPlan, slice: Int) -> [Double]? {
        guard tensor.role != .embedding, let sums = squareSums[tensor.sources[slice]], sums.count == tensor.rowLength else { return nil }
        return sums
    }
}
