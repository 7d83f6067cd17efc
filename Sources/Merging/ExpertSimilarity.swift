import Architectures
import Checkpoint
import Inference
import Models
import CLinearAlgebra
import Tensors

/// What two experts are compared by.
public enum ExpertSimilarity: String, Sendable, CaseIterable, Codable {
    /// Each expert's mean output over the sampled tokens, every expert run on every token
    /// whatever the router chose; Euclidean distance (HC-SMoE, arXiv 2410.08589).
    case output
    /// Each expert's column of router logits over the sampled tokens; cosine (M-SMoE, arXiv 2310.01334).
    case routerLogits = "router-logits"
    /// The expert's gate, up and down weights flattened; cosine. Needs no calibration text.
    case weights

    public var needsSample: Bool { self != .weights }

    /// The layer's experts under this similarity. `inputs` are the sampled block inputs
    /// (`tokens x hidden`; unused for `weights`).
    public func geometry(layer: Int, model: Model, inputs: [Float], precision: ComputePrecision) throws -> ExpertGeometry {
        guard case .sparse(let shape) = model.description.feedForward[layer] else {
            throw MergingError("layer \(layer) has no experts to compare")
        }
        let description = model.description, hidden = description.hiddenSize
        let experts = shape.expertCount, tokens = inputs.count / hidden
        if self != .weights, tokens == 0 {
            throw MergingError("layer \(layer): no calibration tokens reached it, so --similarity \(rawValue) has nothing to compare")
        }
        switch self {
        case .output:
            var means = [Double](repeating: 0, count: experts * hidden)
            try inputs.withUnsafeBufferPointer { x in
                for expert in 0..<experts {
                    let outputs = try routedExpertOutputs(layer: layer, expert: expert, inputs: x.baseAddress!, rows: tokens,
                                                          model: description, source: model.source, precision: precision)
                    for t in 0..<tokens { for h in 0..<hidden { means[expert * hidden + h] += Double(outputs.pointer[t * hidden + h]) } }
                }
            }
            return try ExpertGeometry(rows: means.map { $0 / Double(tokens) }, count: experts, dimension: hidden, metric: .euclidean)
        case .routerLogits:
            let logits = try routerLogitMatrix(layer: layer, model: model, inputs: inputs, tokens: tokens)
            var columns = [Double](repeating: 0, count: experts * tokens)
            for t in 0..<tokens { for e in 0..<experts { columns[e * tokens + t] = Double(logits[t * experts + e]) } }
            return try ExpertGeometry(rows: columns, count: experts, dimension: tokens, metric: .cosine)
        case .weights:
            return try ExpertGeometry(gram: weightGram(layer: layer, experts: experts, model: model), count: experts, metric: .cosine)
        }
    }
}

/// `tokens x experts` router logits (with the router bias where there is one).
func routerLogitMatrix(layer: Int, model: Model, inputs: [Float], tokens: Int) throws -> [Float] {
    let name = model.description.spec.tensors.router.filled(layer: layer)
    let router = try model.source.float32(name)
    let experts = router.shape[0], hidden = model.description.hiddenSize
    var logits = [Float](repeating: 0, count: tokens * experts)
    try inputs.withUnsafeBufferPointer { x in
        try router.scalars.withUnsafeBufferPointer { w in
            try logits.withUnsafeMutableBufferPointer { out in
                try gemm(m: tokens, n: experts, k: hidden, a: x.baseAddress!, lda: hidden, b: w.baseAddress!, ldb: hidden,
                         transposeB: true, c: out.baseAddress!, ldc: experts)
            }
        }
    }
    if model.source.contains(name.biasName) {
        let bias = try model.source.float32(name.biasName).scalars
        for t in 0..<tokens { for e in 0..<experts { logits[t * experts + e] += bias[e] } }
    }
    return logits
}

/// Bytes of one block of expert rows gathered for the weight Gram matrix.
let weightGramBlockBytes = 64 << 20

/// G[i][j] = Σ over gate, up and down of ⟨W_i, W_j⟩, accumulated over blocks of rows of all
/// experts at once (one dsyrk per block), so memory holds `weightGramBlockBytes`, not a layer.
func weightGram(layer: Int, experts: Int, model: Model) throws -> [Double] {
    let names = model.description.spec.tensors
    var gram = [Double](repeating: 0, count: experts * experts)
    for template in [names.expertGate, names.expertUp, names.expertDown] {
        let tensors = (0..<experts).map { template.filled(layer: layer, expert: $0) }
        guard let shape = model.source.descriptor(tensors[0])?.shape, shape.count == 2 else {
            throw MergingError("tensor '\(tensors[0])' not found or not a matrix")
        }
        let (rows, columns) = (shape[0], shape[1])
        let blockRows = max(1, min(rows, weightGramBlockBytes / max(1, experts * columns * 8)))
        var block = [Float](repeating: 0, count: blockRows * columns)
        var gathered = [Double](repeating: 0, count: experts * blockRows * columns)
        for start in stride(from: 0, to: rows, by: blockRows) {
            let count = min(blockRows, rows - start), width = count * columns
            for (expert, name) in tensors.enumerated() {
                guard model.source.descriptor(name)?.shape == shape else {
                    throw MergingError("tensor '\(name)' has another shape than '\(tensors[0])'")
                }
                try block.withUnsafeMutableBufferPointer { try model.source.readFloat32Rows(name, rows: Array(start..<(start + count)), into: $0.baseAddress!) }
                for index in 0..<width { gathered[expert * width + index] = Double(block[index]) }
            }
            gathered.withUnsafeBufferPointer { a in
                gram.withUnsafeMutableBufferPointer { g in
                    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, blasint(experts), blasint(width),
                                1, a.baseAddress, blasint(width), 1, g.baseAddress, blasint(experts))
                }
            }
        }
    }
    return symmetrizedFromUpper(gram, count: experts)
}
