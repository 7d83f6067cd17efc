/// The error weights ggml derives from an imatrix: w_j = importance_j · sqrt(σ² + x_j²), where σ²
/// is a mean square of the values (its span and factor differ by format; see each caller).
/// Large weights thus count more, but no weight falls to zero where the imatrix is nonzero.
@inline(__always) func importanceWeights(_ x: UnsafePointer<Float>, _ importance: UnsafePointer<Float>, count: Int,
                                         sigma2: Float, into weights: UnsafeMutablePointer<Float>) {
    for j in 0..<count { weights[j] = importance[j] * (sigma2 + x[j] * x[j]).squareRoot() }
}

/// Σ x², summed left to right as ggml sums it.
@inline(__always) func sumOfSquares(_ x: UnsafePointer<Float>, count: Int) -> Float {
    var sum: Float = 0
    for j in 0..<count { sum += x[j] * x[j] }
    return sum
}

/// Σ w, left to right.
@inline(__always) func sum(_ w: UnsafePointer<Float>, count: Int) -> Float {
    var total: Float = 0
    for j in 0..<count { total += w[j] }
    return total
}
