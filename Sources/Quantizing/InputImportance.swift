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

    public init() {}

    public var wantsLinearInputs: Bool { true }
    public func observe(routing: RoutingTrace) {}

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
        let importance = InputImportance()
        for window in data.windows { for id in window { importance.idCounts[id, default: 0] += 1 } }
        let forward = ForwardPass(model: model.description, source: model.source, precision: precision)
        let batches = consecutiveGroups(data.windows, limit: max(batchTokens, 1)) { $0.count }
        let layers = model.description.layerCount
        for (index, batch) in batches.enumerated() {
            _ = try forward.hiddenStates(TokenBatch(sequences: batch), observer: importance) { done, _ in
                progress?(index * layers + done, batches.count * layers)
            }
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
