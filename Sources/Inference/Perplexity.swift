import Foundation
import Tensors

/// The evaluation windows over `tokenCount` ids: consecutive, non-overlapping chunks of
/// `sequenceLength + 1` ids stepping by `sequenceLength`, so every id after the first is
/// predicted exactly once with at most `sequenceLength` ids of context. The last window may be
/// shorter; it has at least two ids. A non-positive `sequenceLength` gives no windows.
public func perplexityWindows(tokenCount: Int, sequenceLength: Int) -> [Range<Int>] {
    guard sequenceLength > 0 else { return [] }
    var windows: [Range<Int>] = []
    var start = 0
    while start + 1 < tokenCount {
        // Clamped before adding, so a huge sequence length cannot overflow.
        windows.append(start..<(start + min(sequenceLength, tokenCount - start - 1) + 1))
        start += min(sequenceLength, tokenCount)
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

    /// A batch holds at least one whole window, whatever `batchTokens` says.
    public init(forward: ForwardPass, sequenceLength: Int, batchTokens: Int = 8192) throws {
        guard sequenceLength > 0 else { throw InputError("the sequence length must be positive, found \(sequenceLength)") }
        guard batchTokens > 0 else { throw InputError("the batch size must be positive, found \(batchTokens) tokens") }
        self.forward = forward
        self.sequenceLength = sequenceLength
        self.batchTokens = max(batchTokens, sequenceLength == Int.max ? sequenceLength : sequenceLength + 1)
    }

    /// `progress(done, total)` counts layers over all batches.
    public func evaluate(ids: [Int], observer: ForwardObserver? = nil,
                         progress: ((Int, Int) -> Void)? = nil) throws -> PerplexityResult {
        let started = Date()
        let windows = perplexityWindows(tokenCount: ids.count, sequenceLength: sequenceLength)
        let batches = consecutiveGroups(windows, limit: batchTokens) { $0.count }
        try checkActivationMemory(largestBatch: batches.map { $0.reduce(0) { $0 + $1.count } }.max() ?? 0)
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

    /// Refuses a batch whose activations alone would not fit in memory, before allocating them
    /// (the OS would otherwise kill the process part-way).
    private func checkActivationMemory(largestBatch tokens: Int) throws {
        let model = forward.model
        let queryWidth = model.attentionHeads * model.headDim, keyValueWidth = model.keyValueHeads * model.headDim
        let experts = model.feedForward.map { kind -> Int in if case .sparse(let shape) = kind { return shape.expertCount } else { return 0 } }.max() ?? 0
        // Hidden states, norms, residual sums, q/k/v/context, router logits and probabilities.
        let floatsPerToken = 5 * model.hiddenSize + 2 * queryWidth + 2 * keyValueWidth + 2 * experts
        let bytes = Double(tokens) * Double(floatsPerToken) * 4
        let available = Double(ProcessInfo.processInfo.physicalMemory)
        guard bytes < 0.8 * available else {
            throw InputError(String(format: "a batch of %ld tokens needs about %.1f GiB for activations, more than this machine's %.1f GiB of memory; use smaller batches or shorter windows",
                                    tokens, bytes / 1_073_741_824, available / 1_073_741_824))
        }
    }
}
