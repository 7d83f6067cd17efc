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
            let predictions = Self.predictions(in: batch)
            totalNLL += try negativeLogLikelihood(of: predictions, states: states.pointer, head: head)
            predicted += predictions.count
            processed += batch.tokenCount
        }
        let seconds = Date().timeIntervalSince(started)
        let mean = predicted > 0 ? totalNLL / Double(predicted) : .nan
        return PerplexityResult(perplexity: exp(mean), meanNegativeLogLikelihood: mean, tokens: ids.count,
                                predictedTokens: predicted, sequenceLength: sequenceLength, seconds: seconds,
                                tokensPerSecond: Double(processed) / max(seconds, 1e-9))
    }

    /// A position of a batch and the id that follows it in its sequence: every position but each
    /// sequence's last.
    struct Prediction {
        let row: Int
        let target: Int
    }

    static func predictions(in batch: TokenBatch) -> [Prediction] {
        var predictions: [Prediction] = []
        for (sequence, offset) in zip(batch.sequences, batch.offsets) where sequence.count > 1 {
            for position in 0..<(sequence.count - 1) {
                predictions.append(Prediction(row: offset + position, target: sequence[position + 1]))
            }
        }
        return predictions
    }

    /// Rows per output-head product: on the issue-13 model (vocabulary 32000, hidden 1024) a
    /// product of 1024 rows ran ~30% faster than one of 256 (the head's weight is repacked for
    /// every product), while 256 MiB of logits bounds the buffer for large vocabularies.
    static func headRows(vocabulary: Int) -> Int {
        max(64, min(1024, (256 << 20) / (4 * max(vocabulary, 1))))
    }

    /// Sum of `-log p(next id)` over `predictions`; the rows of a chunk of predictions, from
    /// any of the batch's sequences, are gathered into one product with the head, so that a
    /// large vocabulary never needs a `tokens x vocabulary` matrix and short windows still make
    /// wide products. The log-sum-exp of the rows is split across the threads.
    private func negativeLogLikelihood(of predictions: [Prediction], states: UnsafePointer<Float>, head: OutputHead) throws -> Double {
        guard !predictions.isEmpty else { return 0 }
        let hidden = forward.model.hiddenSize, vocabulary = head.vocabularySize
        let chunkRows = min(Self.headRows(vocabulary: vocabulary), predictions.count)
        let inputs = FloatBuffer(uninitializedCount: chunkRows * hidden)
        let logits = FloatBuffer(uninitializedCount: chunkRows * vocabulary)
        var total: Double = 0
        for chunkStart in stride(from: 0, to: predictions.count, by: chunkRows) {
            let chunk = predictions[chunkStart..<min(chunkStart + chunkRows, predictions.count)]
            for (row, prediction) in chunk.enumerated() {
                (inputs.pointer + row * hidden).update(from: states + prediction.row * hidden, count: hidden)
            }
            try head.logits(inputs.pointer, rows: chunk.count, into: logits.pointer)
            let targets = chunk.map(\.target)
            total += parallelSum(count: targets.count, threads: BLAS.threads) { row in
                let rowLogits = logits.pointer + row * vocabulary
                return logSumExp(rowLogits, count: vocabulary) - Double(rowLogits[targets[row]])
            }
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
