import Foundation

/// Rotary position embedding as transformers applies it (`rotate_half` layout: the first half of
/// each head pairs with the second half), for the default rope type.
public struct RotaryEmbedding: Sendable {
    public let headDim: Int
    /// `inv_freq[i] = 1 / theta^(2i / headDim)`, computed in Float32 exactly as transformers does.
    public let inverseFrequencies: [Float]

    public init(headDim: Int, theta: Double) {
        self.headDim = headDim
        inverseFrequencies = (0..<(headDim / 2)).map { i in
            1 / Float(pow(theta, Double(2 * i) / Double(headDim)))
        }
    }

    /// Rotates `heads` consecutive heads of `headDim` values at `position`, in place.
    public func apply(_ vector: UnsafeMutablePointer<Float>, heads: Int, position: Int) {
        let half = headDim / 2
        var cosines = [Float](repeating: 0, count: half)
        var sines = [Float](repeating: 0, count: half)
        for i in 0..<half {
            // transformers multiplies position by inv_freq in float32, then takes cos/sin.
            let angle = Float(position) * inverseFrequencies[i]
            cosines[i] = cos(angle)
            sines[i] = sin(angle)
        }
        for head in 0..<heads {
            let base = vector + head * headDim
            for i in 0..<half {
                let first = base[i], second = base[i + half]
                base[i] = first * cosines[i] - second * sines[i]
                base[i + half] = second * cosines[i] + first * sines[i]
            }
        }
    }
}
