/// `x * weight / sqrt(mean(x^2) + eps)` over each row of `width` elements, in place, as
/// transformers' LlamaRMSNorm does it (the mean is accumulated in higher precision here; the
/// fixtures show the difference is far below the 1e-3 logit tolerance).
public func rmsNormalize(_ rows: UnsafeMutablePointer<Float>, count: Int, width: Int, weight: UnsafePointer<Float>, epsilon: Float) {
    for row in 0..<count {
        let values = rows + row * width
        var sumOfSquares: Double = 0
        for index in 0..<width { sumOfSquares += Double(values[index]) * Double(values[index]) }
        let scale = Float(1 / (sumOfSquares / Double(width) + Double(epsilon)).squareRoot())
        for index in 0..<width { values[index] = weight[index] * (values[index] * scale) }
    }
}

/// Array convenience for tests and small callers.
public func rmsNormalized(_ values: [Float], width: Int, weight: [Float], epsilon: Float) -> [Float] {
    var result = values
    result.withUnsafeMutableBufferPointer { buffer in
        weight.withUnsafeBufferPointer { rmsNormalize(buffer.baseAddress!, count: values.count / width, width: width, weight: $0.baseAddress!, epsilon: epsilon) }
    }
    return result
}
