import Foundation
import GGUF
import Inference
import Models
import Quantization
import Tensors

/// What each candidate type would cost each GGUF tensor, measured one of two ways (`Measure`):
/// end to end by LogitDivergence, or as below. Every source tensor (each
/// expert of a stacked tensor) is quantized as it would be written (with its importance weights),
/// decoded, and its error weighted by the calibration inputs it meets:
///   Σ_j S_j Σ_i (W_ij − Ŵ_ij)²,  S_j = Σ over the tokens that reach it of x_j²,
/// the squared output error summed over calibration tokens under the imatrix's diagonal
/// approximation of XᵀX. Sums (not means) make an expert's error count as often as the router
/// sends it tokens, and make all tensors' errors one currency. The embedding is a lookup: row r's
/// error counts as often as token r occurs. Each tensor's error is divided by the mean square of
/// the residual stream its output (or its block's) is added to: the next RMSNorm divides it by
/// that stream's RMS, so an error on the small embedding stream weighs far more than the same
/// error added to a late layer's large one (the output head's logits error is taken as it is).
/// At most `maxRows` rows per source are measured
/// (evenly spaced, scaled up), which keeps the table cheap on large models.
public struct ErrorTable: Sendable {
    public struct Candidate: Sendable, Equatable {
        public let type: GGMLType
        public let bytes: Int
        public let error: Double
    }

    public let tensors: [GGUFTensorPlan]
    /// Per tensor, the legal candidates (after fallbacks, without duplicates), smallest first.
    public let candidates: [[Candidate]]

    /// How a candidate's error is measured.
    public enum Measure: Sendable {
        /// The imatrix-weighted squared output error of the tensor alone (below): one pass over
        /// the weights, no forward pass; for models too large to run once per candidate.
        case outputError
        /// The KL divergence of the next-token distributions on these calibration windows
        /// (LogitDivergence): about L/2 layer passes per tensor and candidate.
        case klDivergence(sample: [[Int]], precision: ComputePrecision)
    }

    public static func measure(_ model: Model, tensors: [GGUFTensorPlan], types: [GGMLType], importance: InputImportance,
                               by measure: Measure = .outputError, maxRows: Int = 512,
                               progress: ((Int, Int) -> Void)? = nil) throws -> ErrorTable {
        let legal = tensors.map { legalTypes(types, for: $0) }
        let errors: [[Double]]
        switch measure {
        case .outputError:
            errors = try tensors.indices.map { index in
                let tensor = tensors[index]
                // An error added to the residual stream counts relative to the stream's RMS there.
                let scale = importance.residualScale(for: tensor).map { 1 / $0 } ?? 1
                defer { progress?(index + 1, tensors.count) }
                return legal[index].count == 1 ? [0]
                    : try measureTensor(model, tensor, legal[index], importance: importance, maxRows: maxRows).map { $0 * scale }
            }
        case .klDivergence(let sample, let precision):
            errors = try LogitDivergence.measure(model, tensors: tensors, types: legal, importance: importance, sample: sample,
                                                 precision: precision, progress: progress)
        }
        let table = tensors.indices.map { index in
            zip(legal[index], errors[index]).map { type, error in
                Candidate(type: type, bytes: type.rowBytes(tensors[index].rowLength) * tensors[index].elementCount / tensors[index].rowLength, error: error)
            }
        }
        return ErrorTable(tensors: tensors, candidates: table)
    }

    /// The distinct types `types` become on `tensor` after TypeRules, smallest first.
    public static func legalTypes(_ types: [GGMLType], for tensor: GGUFTensorPlan) -> [GGMLType] {
        TypeRules.staysFloat(tensor) ? [.f32]
            : Array(Set(types.map { TypeRules.legal($0, for: tensor) })).sorted { $0.bitsPerWeight < $1.bitsPerWeight }
    }

    public init(tensors: [GGUFTensorPlan], candidates: [[Candidate]]) {
        self.tensors = tensors
        self.candidates = candidates
    }

    static func measureTensor(_ model: Model, _ tensor: GGUFTensorPlan, _ types: [GGMLType], importance: InputImportance,
                              maxRows: Int) throws -> [Double] {
        let rows = tensor.rowsPerSource, width = tensor.rowLength
        let step = max(1, (rows + maxRows - 1) / maxRows)
        let picked = Array(stride(from: 0, to: rows, by: step))
        let scale = Double(rows) / Double(picked.count)
        let values = FloatBuffer(uninitializedCount: rows * width)
        let sample = FloatBuffer(uninitializedCount: picked.count * width)
        let decoded = FloatBuffer(uninitializedCount: picked.count * width)
        let encoded = UnsafeMutableRawBufferPointer.allocate(byteCount: picked.count * width * 4, alignment: 64)
        defer { encoded.deallocate() }
        var errors = [Double](repeating: 0, count: types.count)
        for slice in tensor.sources.indices {
            try model.source.readFloat32(tensor.sources[slice], into: values.pointer)
            model.source.release([tensor.sources[slice]])
            for (position, row) in picked.enumerated() {
                (sample.pointer + position * width).update(from: values.pointer + row * width, count: width)
            }
            let columnWeights = importance.sums(for: tensor, slice: slice)
            let rowWeights: [Double]? = tensor.role == .embedding
                ? picked.map { Double(importance.idCounts[$0] ?? 0) } : nil
            if columnWeights == nil && rowWeights == nil { continue }  // no token reaches it: no output error
            let roundingWeights = importance.weights(for: tensor, slice: slice)
            for (index, type) in types.enumerated() {
                try roundingWeights.withOptionalPointer {
                    try quantizeRows(type, sample.pointer, rows: picked.count, rowLength: width, importance: $0, into: encoded.baseAddress!)
                }
                try dequantizeRows(type, encoded.baseAddress!, rows: picked.count, rowLength: width, into: decoded.pointer)
                var total = 0.0
                for position in picked.indices {
                    let a = sample.pointer + position * width, b = decoded.pointer + position * width
                    var rowError = 0.0
                    for column in 0..<width {
                        let delta = Double(a[column] - b[column])
                        rowError += delta * delta * (columnWeights?[column] ?? 1)
                    }
                    total += rowError * (rowWeights?[position] ?? 1)
                }
                errors[index] += total * scale
            }
        }
        return errors
    }
}

extension Optional where Wrapped == [Float] {
    func withOptionalPointer<R>(_ body: (UnsafePointer<Float>?) throws -> R) rethrows -> R {
        guard let self else { return try body(nil) }
        return try self.withUnsafeBufferPointer { try body($0.baseAddress) }
    }
}
