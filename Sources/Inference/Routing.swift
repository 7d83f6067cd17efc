import Tensors

/// Softmax over all experts, the top-k of the probabilities, and (if asked) division of those k
/// weights by their sum — the routing of Mixtral, Qwen2/3-MoE and OLMoE in transformers.
public func routeSoftmaxTopK(logits: UnsafePointer<Float>, expertCount: Int, k: Int, normalize: Bool,
                             probabilities: UnsafeMutablePointer<Float>) -> (experts: [Int], weights: [Float]) {
    probabilities.update(from: logits, count: expertCount)
    softmaxInPlace(probabilities, count: expertCount)
    let experts = topKIndices(UnsafePointer(probabilities), count: expertCount, k: k)
    var weights = experts.map { probabilities[$0] }
    if normalize {
        let sum = weights.reduce(0, +)
        weights = weights.map { $0 / sum }
    }
    return (experts, weights)
}
