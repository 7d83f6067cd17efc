import Inference

extension Model {
    /// Perplexity of `ids` measured by this package's forward pass, over the same windows `eval`
    /// uses: how every stage reports what it cost, before and after, on the same ids.
    public func perplexity(of ids: [Int], sequenceLength: Int, precision: ComputePrecision = .float32,
                           batchTokens: Int = 8192, progress: ((Int, Int) -> Void)? = nil) throws -> PerplexityResult {
        let forward = ForwardPass(model: description, source: source, precision: precision)
        let evaluator = try PerplexityEvaluator(forward: forward, sequenceLength: sequenceLength, batchTokens: batchTokens)
        return try evaluator.evaluate(ids: ids, progress: progress)
    }
}
