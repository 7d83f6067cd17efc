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

    /// The cosines and sines of positions `0..<positions`: computed once per batch and shared by
    /// every layer and head, instead of once per token, layer and projection.
    public func table(positions: Int) -> RotaryTable {
        let half = headDim / 2
        var cosines = [Float](repeating: 0, count: positions * half)
        var sines = [Float](repeating: 0, count: positions * half)
        for position in 0..<positions {
            for i in 0..<half {
                // transformers multiplies position by inv_freq in float32, then takes cos/sin.
                let angle = Float(position) * inverseFrequencies[i]
                cosines[position * half + i] = cos(angle)
                sines[position * half + i] = sin(angle)
            }
        }
        return RotaryTable(headDim: headDim, positions: positions, cosines: cosines, sines: sines)
    }
}

/// The rotation of every position up to a batch's longest sequence (`RotaryEmbedding.table`).
public struct RotaryTable: Sendable {
    public let headDim: Int
    /// Positions covered: `0..<positions`.
    public let positions: Int
    private let cosines: [Float], sines: [Float]

    fileprivate init(headDim: Int, positions: Int, cosines: [Float], sines: [Float]) {
        self.headDim = headDim
        self.positions = positions
        self.cosines = cosines
        self.sines = sines
    }

    /// Rotates, in place, `count` rows that are `stride` floats apart, row t at position t (one
    /// sequence's tokens from its start); each row's first `heads * headDim` values are its heads.
    public func rotate(_ rows: UnsafeMutablePointer<Float>, count: Int, stride: Int, heads: Int) throws {
        guard count <= positions else {
            throw ComputeError("the rotary table covers \(positions) positions; a sequence of \(count) needs more")
        }
        let half = headDim / 2
        cosines.withUnsafeBufferPointer { cosines in
            sines.withUnsafeBufferPointer { sines in
                for position in 0..<count {
                    let angles = position * half
                    for head in 0..<heads {
                        let base = rows + position * stride + head * headDim
                        for i in 0..<half {
                            let first = base[i], second = base[i + half]
                            let cosine = cosines[angles + i], sine = sines[angles + i]
                            base[i] = first * cosine - second * sine
                            base[i + half] = second * cosine + first * sine
                        }
                    }
                }
            }
        }
    }
}
