import Tensors

/// One expert's three matrices in float32, as PyTorch stores them: gate and up `width x hidden`,
/// down `hidden x width`. Intermediate neuron `a` is row `a` of gate and up and column `a` of down.
public struct ExpertMatrices: Sendable, Equatable {
    public let width: Int
    public let hidden: Int
    public var gate: [Float]
    public var up: [Float]
    public var down: [Float]

    public init(width: Int, hidden: Int, gate: [Float], up: [Float], down: [Float]) throws {
        guard width >= 1, hidden >= 1, gate.count == width * hidden, up.count == width * hidden, down.count == hidden * width else {
            throw MergingError("expert matrices: gate \(gate.count), up \(up.count), down \(down.count) values for width \(width), hidden \(hidden)")
        }
        self.width = width
        self.hidden = hidden
        self.gate = gate
        self.up = up
        self.down = down
    }

    /// The same function with its neurons reordered: new neuron `a` is old neuron `order[a]`
    /// (a SwiGLU expert's output does not depend on the order of its intermediate neurons).
    public func permuted(_ order: [Int]) -> ExpertMatrices {
        var copy = self
        for (a, old) in order.enumerated() {
            for h in 0..<hidden {
                copy.gate[a * hidden + h] = gate[old * hidden + h]
                copy.up[a * hidden + h] = up[old * hidden + h]
                copy.down[h * width + a] = down[h * width + old]
            }
        }
        return copy
    }
}

/// The reordering of `member`'s neurons that best matches `reference`'s (MC-SMoE's weight
/// matching, Li et al. 2024, arXiv 2310.01334): new neuron `a` is the member's neuron
/// `order[a]`, chosen to maximise Σ_a ⟨ref_a, member_order[a]⟩ with a neuron's weights its gate
/// row, up row and down column, solved exactly as a linear assignment (Hungarian) over the
/// `width x width` correlation matrix `G_r G_mᵀ + U_r U_mᵀ + D_rᵀ D_m`. O(width³): seconds at
/// width 1024, far longer at Mixtral's 14336.
public func neuronAlignment(reference: ExpertMatrices, member: ExpertMatrices) throws -> [Int] {
    guard reference.width == member.width, reference.hidden == member.hidden else {
        throw MergingError("neuron alignment: experts of width \(reference.width) x \(reference.hidden) and \(member.width) x \(member.hidden)")
    }
    let (width, hidden) = (reference.width, reference.hidden)
    var correlation = [Float](repeating: 0, count: width * width)
    try correlation.withUnsafeMutableBufferPointer { c in
        try reference.gate.withUnsafeBufferPointer { a in
            try member.gate.withUnsafeBufferPointer { b in
                try gemm(m: width, n: width, k: hidden, a: a.baseAddress!, lda: hidden, b: b.baseAddress!, ldb: hidden, transposeB: true,
                         c: c.baseAddress!, ldc: width)
            }
        }
        try reference.up.withUnsafeBufferPointer { a in
            try member.up.withUnsafeBufferPointer { b in
                try gemm(m: width, n: width, k: hidden, a: a.baseAddress!, lda: hidden, b: b.baseAddress!, ldb: hidden, transposeB: true,
                         beta: 1, c: c.baseAddress!, ldc: width)
            }
        }
        try reference.down.withUnsafeBufferPointer { a in
            try member.down.withUnsafeBufferPointer { b in
                try gemm(m: width, n: width, k: hidden, a: a.baseAddress!, lda: width, transposeA: true, b: b.baseAddress!, ldb: width,
                         beta: 1, c: c.baseAddress!, ldc: width)
            }
        }
    }
    guard correlation.allSatisfy(\.isFinite) else { throw MergingError("neuron alignment: the weights' correlations are not finite") }
    return try linearAssignment(cost: correlation.map(Double.init), rows: width, columns: width, maximize: true)
}
