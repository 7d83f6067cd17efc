import Foundation

/// NAEE's expert-subset objective for one layer (Lu et al., ACL 2024, arXiv 2402.14800): how far
/// the routed output moves when only `kept` experts remain, on cached calibration tokens. Routing
/// over the kept experts is the pruned model's own (softmax over their logits, top-k among them,
/// renormalised when the family does), so the loss is that of the actual pruned layer.
public struct ExpertSubsetProblem {
    public let tokens: Int
    public let hiddenSize: Int
    public let expertCount: Int
    public let expertsPerToken: Int
    public let normalize: Bool
    /// Tokens per independent sequence; the loss is a sum of per-sequence Frobenius norms, as NAEE's.
    public let sequenceLength: Int
    /// `tokens x expertCount` router logits.
    public let logits: [Float]
    /// Per expert, its output on every token (`tokens x hiddenSize`), before any gate.
    public let expertOutputs: [[Float]]
    /// The unpruned layer's routed output (`tokens x hiddenSize`).
    public let target: [Float]

    public init(tokens: Int, hiddenSize: Int, expertCount: Int, expertsPerToken: Int, normalize: Bool, sequenceLength: Int,
                logits: [Float], expertOutputs: [[Float]], target: [Float]) {
        self.tokens = tokens
        self.hiddenSize = hiddenSize
        self.expertCount = expertCount
        self.expertsPerToken = expertsPerToken
        self.normalize = normalize
        self.sequenceLength = max(sequenceLength, 1)
        self.logits = logits
        self.expertOutputs = expertOutputs
        self.target = target
    }

    /// Σ over sequences of ‖Z − Z′(kept)‖_F.
    public func loss(keeping kept: [Int]) -> Double {
        let k = min(expertsPerToken, kept.count)
        var total: Double = 0, sequenceSquares: Double = 0
        var rowLogits = [Float](repeating: 0, count: kept.count)
        var output = [Double](repeating: 0, count: hiddenSize)
        for token in 0..<tokens {
            for (slot, expert) in kept.enumerated() { rowLogits[slot] = logits[token * expertCount + expert] }
            let top = rowLogits.max() ?? 0
            let exponentials = rowLogits.map { Double(expf($0 - top)) }
            let sum = exponentials.reduce(0, +)
            let chosen = exponentials.indices.sorted { exponentials[$0] != exponentials[$1] ? exponentials[$0] > exponentials[$1] : $0 < $1 }.prefix(k)
            let chosenSum = chosen.reduce(0) { $0 + exponentials[$1] }
            for index in 0..<hiddenSize { output[index] = 0 }
            for slot in chosen {
                let weight = exponentials[slot] / (normalize ? chosenSum : sum)
                let values = expertOutputs[kept[slot]]
                for index in 0..<hiddenSize { output[index] += weight * Double(values[token * hiddenSize + index]) }
            }
            for index in 0..<hiddenSize {
                let difference = Double(target[token * hiddenSize + index]) - output[index]
                sequenceSquares += difference * difference
            }
            if (token + 1) % sequenceLength == 0 || token + 1 == tokens {
                total += sequenceSquares.squareRoot()
                sequenceSquares = 0
            }
        }
        return total
    }
}

/// The subset a search chose and what it cost.
public struct ExpertSubsetResult: Sendable, Codable, Equatable {
    public enum Strategy: String, Sendable, Codable { case exhaustive, greedy }
    public let kept: [Int]
    public let loss: Double
    public let strategy: Strategy
    /// Subsets whose loss was computed.
    public let evaluated: Int
    public let tokens: Int
}

public enum ExpertSubsetSearch {
    /// Exhaustive over every subset of `keep` experts when there are at most `exhaustiveLimit` of
    /// them (NAEE's own method: C(8, 4) = 70); otherwise greedy elimination, dropping one expert
    /// at a time, the one whose removal raises the loss least (n(n+1)/2 − k(k+1)/2 subsets).
    public static func best(_ problem: ExpertSubsetProblem, keep: Int, exhaustiveLimit: Int = 5000) -> ExpertSubsetResult {
        let all = Array(0..<problem.expertCount)
        if let count = combinationCount(problem.expertCount, keep), count <= exhaustiveLimit {
            var best: (kept: [Int], loss: Double) = ([], .infinity)
            forEachCombination(of: all, choosing: keep) { subset in
                let loss = problem.loss(keeping: subset)
                if loss < best.loss { best = (subset, loss) }
            }
            return ExpertSubsetResult(kept: best.kept, loss: best.loss, strategy: .exhaustive, evaluated: count, tokens: problem.tokens)
        }
        var current = all, evaluated = 0, loss = Double.infinity
        while current.count > keep {
            var choice: (index: Int, loss: Double) = (0, .infinity)
            for index in current.indices {
                var candidate = current
                candidate.remove(at: index)
                let candidateLoss = problem.loss(keeping: candidate)
                evaluated += 1
                if candidateLoss < choice.loss { choice = (index, candidateLoss) }
            }
            current.remove(at: choice.index)
            loss = choice.loss
        }
        return ExpertSubsetResult(kept: current, loss: loss, strategy: .greedy, evaluated: evaluated, tokens: problem.tokens)
    }

    /// C(n, k), or nil when it exceeds Int.
    static func combinationCount(_ n: Int, _ k: Int) -> Int? {
        guard k >= 0, k <= n else { return 0 }
        var result = 1
        for step in 0..<min(k, n - k) {
            let (product, overflow) = result.multipliedReportingOverflow(by: n - step)
            if overflow { return nil }
            result = product / (step + 1)
        }
        return result
    }

    /// Every `k`-subset of `values` in lexicographic order.
    static func forEachCombination(of values: [Int], choosing k: Int, _ body: ([Int]) -> Void) {
        var indices = Array(0..<k)
        guard k <= values.count else { return }
        while true {
            body(indices.map { values[$0] })
            var position = k - 1
            while position >= 0 && indices[position] == values.count - k + position { position -= 1 }
            if position < 0 { return }
            indices[position] += 1
            for next in (position + 1)..<k { indices[next] = indices[next - 1] + 1 }
        }
    }
}
