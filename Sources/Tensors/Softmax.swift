import CKernels

/// Numerically stable softmax of one row, in place.
public func softmaxInPlace(_ values: UnsafeMutablePointer<Float>, count: Int) {
    ck_softmax(values, count)
}

public func softmax(_ values: [Float]) -> [Float] {
    var result = values
    result.withUnsafeMutableBufferPointer { softmaxInPlace($0.baseAddress!, count: $0.count) }
    return result
}

/// `log(sum(exp(values)))`. Each term is at most 1 and exact enough in Float; the sum over a
/// large vocabulary is accumulated in Double, which is what perplexity depends on.
public func logSumExp(_ values: UnsafePointer<Float>, count: Int) -> Double {
    ck_logsumexp(values, count)
}
