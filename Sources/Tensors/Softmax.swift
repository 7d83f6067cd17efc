import Foundation

/// Numerically stable softmax of one row, in place.
public func softmaxInPlace(_ values: UnsafeMutablePointer<Float>, count: Int) {
    guard count > 0 else { return }
    var maximum = -Float.infinity
    for index in 0..<count { maximum = max(maximum, values[index]) }
    var sum: Float = 0
    for index in 0..<count {
        let e = expf(values[index] - maximum)
        values[index] = e
        sum += e
    }
    let inverse = 1 / sum
    for index in 0..<count { values[index] *= inverse }
}

public func softmax(_ values: [Float]) -> [Float] {
    var result = values
    result.withUnsafeMutableBufferPointer { softmaxInPlace($0.baseAddress!, count: $0.count) }
    return result
}

/// `log(sum(exp(values)))`. Each term is at most 1 and exact enough in Float; the sum over a
/// large vocabulary is accumulated in Double, which is what perplexity depends on.
public func logSumExp(_ values: UnsafePointer<Float>, count: Int) -> Double {
    var maximum = -Float.infinity
    for index in 0..<count { maximum = max(maximum, values[index]) }
    var sum: Double = 0
    for index in 0..<count { sum += Double(expf(values[index] - maximum)) }
    return Double(maximum) + log(sum)
}
