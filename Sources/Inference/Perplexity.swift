import Foundation
import Tensors

/// The evaluation windows over `tokenCount` ids: consecutive, non-overlapping chunks of
/// `sequenceLength + 1` ids stepping by `sequenceLength`, so every id after the first is
/// predicted exactly once with at most `sequenceLength` ids of context. The last window may be
/// shorter; it has at least two ids.
public func perplexityWindows(tokenCount: Int, sequenceLength: Int) -> [Range<Int>] {
    precondition(sequenceLength > 0)
    var windows: [Range<Int>] = []
    var start = 0
    while start + 1 < tokenCount {
        windows.append(start..<min(start + sequenceLength + 1, tokenCount))
        start += sequenceLength
    }
    return windows
}

public struct PerplexityResult: Sendable, Codable {
    public let perplexity: Double
    /// Mean negative log-likelihood per predicted token, in nats.
    public let meanNegativeLogLikelihood: Double
    /// Ids taken from the text.
    public let tokens: Int
    public let predictedTokens: Int
    public let sequenceLength: Int
    public let seconds: Double
    /// Ids run through the model per second of wall time.
    public let tokensPerSecond: Double
}

/// Perplexity measured by this package's own forward pass, batching windows so each pass over the
/// weights serves up to `batchTokens` ids.
public struct PerplexityEvaluator {
    public let forward: ForwardPass
    public let sequenceLength: Int
    public let batchTokens: Int

    public init(forward: ForwardPass, sequenceLength: Int, batchTokens: Int = 8192) {
        self.forward = forward
        self.sequenceLength = sequenceLength
        self.batchTokens = max(batchTokens, sequenceLength + 1)
    }

    /// `progress(done, total)` counts layers over all batches.
    public func evaluate(ids: [Int], observer: ForwardObserver? = nil,
                         progress: ((Int, Int) -> Void)? = nil) throws -> PerplexityResult {
        let started = Date()
        let windows = perplexityWindows(tokenCount: ids.count, sequenceLength: sequenceLength)
        let batches = groupWindows(windows)
        let layers = forward.model.layerCount
        let head = try forward.outputHead()
        var totalNLL: Double = 0
        var predicted = 0
        var processed = 0
        for (batchIndex, batchWindows) in batches.enumerated() {
            let batch = TokenBatch(sequences: batchWindows.map { Array(ids[$0]) })
            let states = try forward.hiddenStates(batch, observer: observer) { done, _ in
                progress?(batchIndex * layers + done, batches.count * layers)
            }
            for (sequence, offset) in zip(batch.sequences, batch.offsets) {
                totalNLL += try negativeLogLikelihood(of: sequence, states: states.pointer + offset * forward.model.hiddenSize, head: head)
                predicted += sequence.count - 1
            }
            processed += batch.tokenCount
        }
        let seconds = Date().timeIntervalSince(started)
        let mean = predicted > 0 ? totalNLL / Double(predicted) : .nan
        return PerplexityResult(perplexity: exp(mean), meanNegativeLogLikelihood: mean, tokens: ids.count,
                                predictedTokens: predicted, sequenceLength: sequenceLength, seconds: seconds,
                                tokensPerSecond: Double(processed) / max(seconds, 1e-9))
    }

    /// Sum over positions of `-log p(next id)`; logits are made a few hundred rows at a time so a
    /// large vocabulary never needs a `tokens x vocabulary` matrix.
    private func negativeLogLikelihood(of sequence: [Int], states: UnsafePointer<Float>, head: OutputHead) throws -> Double {
        let hidden = forward.model.hiddenSize, vocabulary = head.vocabularySize
        let chunk = 256
        var total: Double = 0
        var position = 0
        while position < sequence.count - 1 {
            let rows = min(chunk, sequence.count - 1 - position)
            let logits = try head.logits(states + position * hidden, rows: rows)
            for row in 0..<rows {
                let rowLogits = logits.pointer + row * vocabulary
                let target = sequence[position + row + 1]
                total += logSumExp(rowLogits, count: vocabulary) - Double(rowLogits[target])
            }
            position += rows
        }
        return total
    }

    private func groupWindows(_ windows: [Range<Int>]) -> [[Range<Int>]] {
        var batches: [[Range<Int>]] = []
        var current: [Range<Int>] = []
        var tokens = 0
        for window in windows {
            if !current.isEmpty && tokens + window.count > batchTokens {
                batches.append(current)
                current = []
                tokens = 0
            }
            current.append(window)
            tokens += window.count
        }
        if !current.isEmpty { batches.append(current) }
        return batches
    }
}
