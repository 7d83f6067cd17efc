import Architectures
import Foundation
import Calibration
import Checkpoint
import GGUF
import Inference
import Models
import Quantization
import Tensors

/// Each candidate's cost measured end to end: the tensor alone is quantized to the candidate
/// type (rounded as it would be written, with its importance weights), the sample windows are
/// run through the model from the layer it belongs to, and the cost is the mean over the
/// sample's tokens of KL(original ‖ quantized) between the next-token distributions. That is
/// what llama.cpp's `--kl-divergence` judges a file by; the errors of different tensors add
/// (to first order, small independent perturbations add their KL divergences), so the knapsack's
/// total is the file's predicted KL divergence.
///
/// Layers run in order and the clean residual stream is kept between them, so a tensor of layer
/// l costs the layers l..<L for each candidate: about L/2 layer passes on average, over the
/// sample's tokens. The output head is reread only when the tensor measured feeds it.
public enum LogitDivergence {
    /// The mean KL divergence per sample token of each tensor × candidate (`types[i]`, in order);
    /// zero where a tensor has a single candidate.
    public static func measure(_ model: Model, tensors: [GGUFTensorPlan], types: [[GGMLType]], importance: InputImportance,
                               sample: [[Int]], precision: ComputePrecision, batchTokens: Int = 4096,
                               progress: ((Int, Int) -> Void)? = nil) throws -> [[Double]] {
        let description = model.description
        let clean = ForwardPass(model: description, source: model.source, precision: precision)
        let overlay = QuantizedOverlay(base: model.source)
        let perturbed = ForwardPass(model: description, source: overlay, precision: precision)
        let batches = consecutiveGroups(sample, limit: max(batchTokens, 1)) { $0.count }.map { TokenBatch(sequences: $0) }
        let tokens = batches.reduce(0) { $0 + $1.tokenCount }
        let cleanHead = try clean.outputHead()
        let headName = description.outputHeadName(in: model.source)

        // The original model's log-probabilities, and the residual stream entering layer 0.
        var reference: [FloatBuffer] = []
        for batch in batches {
            let states = try clean.hiddenStates(batch)
            reference.append(try logProbabilities(cleanHead, states, rows: batch.tokenCount))
        }
        let streams = try batches.map { try clean.embedding(of: $0) }

        var errors = types.map { [Double](repeating: 0, count: $0.count) }
        let measured = tensors.indices.filter { types[$0].count > 1 }
        var done = 0
        func measureTensors(_ indices: [Int], from layer: Int?) throws {
            for index in indices {
                let tensor = tensors[index]
                let feedsHead = tensor.sources.contains(headName)
                for (choice, type) in types[index].enumerated() {
                    try replace(tensor, type: type, importance: importance, in: overlay, source: model.source)
                    let head = feedsHead ? try perturbed.outputHead() : cleanHead
                    var divergence = 0.0
                    for (batchIndex, batch) in batches.enumerated() {
                        let states: FloatBuffer
                        if let layer {
                            states = streams[batchIndex].copy()
                            for next in layer..<description.layerCount { try perturbed.applyLayer(next, to: states, batch: batch) }
                            try perturbed.finish(states, batch: batch)
                        } else if tensor.role == .output {
                            // The head alone: the final states are the clean model's (kept in `streams` by then).
                            states = streams[batchIndex]
                        } else {
                            states = try perturbed.hiddenStates(batch)
                        }
                        divergence += try klDivergenceSum(reference[batchIndex], head, states, rows: batch.tokenCount)
                    }
                    errors[index][choice] = max(0, divergence / Double(max(tokens, 1)))
                    overlay.removeAll()
                }
                done += 1
                progress?(done, measured.count)
            }
        }

        let byLayer = Dictionary(grouping: measured.filter { tensors[$0].layer != nil }) { tensors[$0].layer! }
        let outside = measured.filter { tensors[$0].layer == nil }
        try measureTensors(outside.filter { tensors[$0].role != .output }, from: nil)
        for layer in 0..<description.layerCount {
            try measureTensors(byLayer[layer] ?? [], from: layer)
            for (batch, states) in zip(batches, streams) { try clean.applyLayer(layer, to: states, batch: batch) }
        }
        for (batch, states) in zip(batches, streams) { try clean.finish(states, batch: batch) }
        try measureTensors(outside.filter { tensors[$0].role == .output }, from: nil)
        return errors
    }

    /// Evenly spaced calibration windows holding about `tokens` tokens (all of them when fewer).
    public static func sample(_ windows: [[Int]], tokens: Int) -> [[Int]] {
        let total = windows.reduce(0) { $0 + $1.count }
        guard total > tokens, let longest = windows.map(\.count).max(), longest > 0 else { return windows }
        let count = max(1, min(windows.count, tokens / longest))
        return (0..<count).map { windows[$0 * windows.count / count] }
    }

    /// Puts every source tensor of `tensor` into the overlay as `type`'s blocks decode it,
    /// rounded as `--method rtn` writes it (WeightedRounding).
    /// Rows are quantized in Hugging Face order: each row is rounded on its own, so llama's q/k
    /// row permutation does not change the values.
    static func replace(_ tensor: GGUFTensorPlan, type: GGMLType, importance: InputImportance, in overlay: QuantizedOverlay,
                        source: TensorSource) throws {
        let rows = tensor.rowsPerSource, width = tensor.rowLength
        let values = FloatBuffer(uninitializedCount: rows * width)
        var blocks = [UInt8](repeating: 0, count: type.rowBytes(width) * rows)
        let rounding = WeightedRounding(importance: importance)
        for slice in tensor.sources.indices {
            try source.readFloat32(tensor.sources[slice], into: values.pointer)
            source.release([tensor.sources[slice]])
            _ = try blocks.withUnsafeMutableBytes {
                try rounding.quantize(tensor, slice: slice, type: type, values: values.pointer, into: $0.baseAddress!)
            }
            overlay.replace(tensor.sources[slice], with: QuantizedOverlay.Replacement(
                type: type, blocks: blocks, rows: rows, rowLength: width, permutedHeads: nil))
        }
    }

    /// Log-softmax of each row's logits (`rows × vocabulary`).
    static func logProbabilities(_ head: OutputHead, _ states: FloatBuffer, rows: Int) throws -> FloatBuffer {
        let vocabulary = head.vocabularySize, hidden = states.count / max(rows, 1)
        let result = FloatBuffer(uninitializedCount: rows * vocabulary)
        try forEachChunk(rows) { start, count in
            let logits = try head.logits(states.pointer + start * hidden, rows: count)
            for row in 0..<count {
                let input = logits.pointer + row * vocabulary, output = result.pointer + (start + row) * vocabulary
                let normalizer = Float(logSumExp(input, count: vocabulary))
                for token in 0..<vocabulary { output[token] = input[token] - normalizer }
            }
        }
        return result
    }

    /// Σ over rows of KL(p ‖ q), p given by its log-probabilities, q by the head's logits.
    static func klDivergenceSum(_ reference: FloatBuffer, _ head: OutputHead, _ states: FloatBuffer, rows: Int) throws -> Double {
        let vocabulary = head.vocabularySize, hidden = states.count / max(rows, 1)
        var total = 0.0
        try forEachChunk(rows) { start, count in
            let logits = try head.logits(states.pointer + start * hidden, rows: count)
            for row in 0..<count {
                total += klDivergence(logProbabilities: reference.pointer + (start + row) * vocabulary,
                                      logits: logits.pointer + row * vocabulary, count: vocabulary)
            }
        }
        return total
    }

    /// KL(p ‖ softmax(logits)) = Σ p (log p − logits) + logsumexp(logits).
    public static func klDivergence(logProbabilities: UnsafePointer<Float>, logits: UnsafePointer<Float>, count: Int) -> Double {
        let normalizer = logSumExp(logits, count: count)
        var total = 0.0
        for index in 0..<count {
            let logP = Double(logProbabilities[index])
            total += exp(logP) * (logP - Double(logits[index]) + normalizer)
        }
        return total
    }

    /// Logits are made a few hundred rows at a time, so a large vocabulary never needs a
    /// `tokens × vocabulary` matrix beyond the reference's.
    private static func forEachChunk(_ rows: Int, _ body: (Int, Int) throws -> Void) rethrows {
        var start = 0
        while start < rows {
            let count = min(256, rows - start)
            try body(start, count)
            start += count
        }
    }
}
