import Checkpoint
import GGUF
import Quantization
import Tensors

/// A model's tensors with some replaced by what their quantized blocks decode to: the weights a
/// llama.cpp run of the written file will use, for the layers already quantized. GPTQ runs each
/// next layer on streams that passed through these, so every layer is fitted to the inputs it
/// will really see.
final class QuantizedOverlay: TensorSource, @unchecked Sendable {
    struct Replacement {
        let type: GGMLType
        let blocks: [UInt8]
        let rows: Int
        let rowLength: Int
        /// llama's q/k blocks hold rows in GGUF order; they are put back for the forward pass.
        let permutedHeads: Int?
    }

    let base: TensorSource
    private var replacements: [String: Replacement] = [:]

    init(base: TensorSource) { self.base = base }

    var tensorNames: [String] { base.tensorNames }
    func descriptor(_ name: String) -> TensorDescriptor? {
        guard let descriptor = base.descriptor(name) else { return nil }
        return replacements[name] == nil ? descriptor : TensorDescriptor(name: name, dtype: .f32, shape: descriptor.shape)
    }

    func replace(_ name: String, with replacement: Replacement) { replacements[name] = replacement }

    /// Drops replacements the forward pass no longer needs (the layers behind the one being fitted).
    func removeAll() { replacements = [:] }

    func readFloat32(_ name: String, into destination: UnsafeMutablePointer<Float>) throws {
        guard let replacement = replacements[name] else { return try base.readFloat32(name, into: destination) }
        try replacement.blocks.withUnsafeBytes {
            try dequantizeRows(replacement.type, $0.baseAddress!, rows: replacement.rows, rowLength: replacement.rowLength, into: destination)
        }
        if let heads = replacement.permutedHeads {
            GGUFTensorSource.unpermuteRows(destination, rows: replacement.rows, rowLength: replacement.rowLength, heads: heads)
        }
    }

    func prefetch(_ names: [String]) { base.prefetch(names.filter { replacements[$0] == nil }) }
    func release(_ names: [String]) { base.release(names.filter { replacements[$0] == nil }) }
    func storedBFloat16(_ name: String) -> UnsafePointer<UInt16>? { replacements[name] == nil ? base.storedBFloat16(name) : nil }
}
