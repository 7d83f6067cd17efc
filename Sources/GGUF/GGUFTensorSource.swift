import Architectures
import Checkpoint
import Foundation
import Quantization
import Tensors

/// A GGUF file seen through Hugging Face tensor names, so the forward pass, `eval` and `inspect`
/// read it like a checkpoint: each stacked `_exps` tensor appears as one tensor per expert (only
/// that expert's rows are dequantized), llama's permuted q/k rows are put back in Hugging Face
/// order, and quantized tensors are dequantized to Float32 on the fly.
public final class GGUFTensorSource: TensorSource, @unchecked Sendable {
    /// Where a Hugging Face tensor lives in the file.
    struct Location {
        let tensor: GGUFTensorInfo
        /// Expert index inside a stacked tensor (nil: the whole tensor).
        let expert: Int?
        let permutedHeads: Int?
        let descriptor: TensorDescriptor
    }

    public let file: GGUFFile
    public let tensorNames: [String]
    private let locations: [String: Location]

    public init(file: GGUFFile, family: GGUFFamily, templates: TensorNameTemplates, attentionHeads: Int, keyValueHeads: Int) throws {
        self.file = file
        let table = GGUFTensorName.table(for: templates)
        var names: [String] = []
        var locations: [String: Location] = [:]
        for tensor in file.tensors {
            guard let (entry, layer) = Self.match(tensor.name, in: table) else {
                throw GGUFError(file: file.path, "tensor '\(tensor.name)' is not one moe-compress maps for llama.cpp's \(family.architecture)")
            }
            func huggingFaceName(_ expert: Int) -> String {
                var text = entry.huggingFace
                if let layer { text = text.replacingOccurrences(of: "{L}", with: String(layer)) }
                return text.replacingOccurrences(of: "{E}", with: String(expert))
            }
            let dtype: DType = switch tensor.type {
            case .f16: .f16
            case .bf16: .bf16
            default: .f32
            }
            var permuted: Int?
            if family.permutesQueryKey && tensor.name.hasSuffix(".weight") {
                if tensor.name.hasSuffix("attn_q.weight") { permuted = attentionHeads }
                if tensor.name.hasSuffix("attn_k.weight") { permuted = keyValueHeads }
            }
            if entry.stacksExperts {
                guard tensor.dimensions.count == 3 else {
                    throw GGUFError(file: file.path, "tensor '\(tensor.name)' should be 3-D (row length, rows, experts), is \(tensor.dimensions)")
                }
                let shape = [tensor.dimensions[1], tensor.dimensions[0]]
                for expert in 0..<tensor.dimensions[2] {
                    let name = huggingFaceName(expert)
                    names.append(name)
                    locations[name] = Location(tensor: tensor, expert: expert, permutedHeads: nil,
                                               descriptor: TensorDescriptor(name: name, dtype: dtype, shape: shape))
                }
            } else {
                let name = huggingFaceName(0)
                var shape = tensor.torchShape
                // Qwen2-MoE's shared-expert gate is a [1, hidden] linear in transformers.
                if tensor.name.hasSuffix("ffn_gate_inp_shexp.weight") && shape.count == 1 { shape = [1, shape[0]] }
                if let heads = permuted, shape.count != 2 || heads <= 0 || shape[0] % (2 * heads) != 0 {
                    throw GGUFError(file: file.path, "tensor '\(tensor.name)': \(shape) rows cannot be split into \(heads) heads of rotary pairs")
                }
                names.append(name)
                locations[name] = Location(tensor: tensor, expert: nil, permutedHeads: permuted,
                                           descriptor: TensorDescriptor(name: name, dtype: dtype, shape: shape))
            }
        }
        tensorNames = names
        self.locations = locations
    }

    /// The table entry and layer a GGUF name instantiates.
    static func match(_ name: String, in table: [GGUFTensorName]) -> (GGUFTensorName, Int?)? {
        if let global = table.first(where: { $0.gguf == name }) { return (global, nil) }
        let parts = name.split(separator: ".", maxSplits: 2)
        guard parts.count == 3, parts[0] == "blk", let layer = Int(parts[1]), layer >= 0 else { return nil }
        let template = "blk.{L}.\(parts[2])"
        return table.first(where: { $0.gguf == template }).map { ($0, layer) }
    }

    public func descriptor(_ name: String) -> TensorDescriptor? { locations[name]?.descriptor }

    /// The stored bytes of the tensor (or of its expert's slice).
    private func storedBytes(_ location: Location) -> UnsafeRawBufferPointer {
        let whole = file.bytes(of: location.tensor)
        guard let expert = location.expert else { return whole }
        let sliceBytes = location.tensor.type.rowBytes(location.tensor.rowLength) * location.tensor.dimensions[1]
        return UnsafeRawBufferPointer(rebasing: whole[(expert * sliceBytes)..<((expert + 1) * sliceBytes)])
    }

    private func location(_ name: String) throws -> Location {
        guard let location = locations[name] else { throw GGUFError(file: file.path, "tensor '\(name)' not found") }
        return location
    }

    public func readFloat32(_ name: String, into destination: UnsafeMutablePointer<Float>) throws {
        let location = try location(name)
        let bytes = storedBytes(location)
        let rowLength = location.tensor.rowLength
        let rows = location.descriptor.elementCount / rowLength
        do {
            try dequantizeRows(location.tensor.type, bytes.baseAddress!, rows: rows, rowLength: rowLength, into: destination)
        } catch {
            throw GGUFError(file: file.path, "tensor '\(location.tensor.name)': \(error)")
        }
        if let heads = location.permutedHeads { Self.unpermuteRows(destination, rows: rows, rowLength: rowLength, heads: heads) }
    }

    public func readStored(_ name: String, into destination: UnsafeMutableRawPointer) throws {
        let location = try location(name)
        guard location.permutedHeads == nil, [.f16, .bf16, .f32].contains(location.tensor.type) else {
            let values = FloatBuffer(uninitializedCount: location.descriptor.elementCount)
            try readFloat32(name, into: values.pointer)
            convertFromFloat32(values.pointer, count: location.descriptor.elementCount, to: location.descriptor.dtype, into: destination)
            return
        }
        let bytes = storedBytes(location)
        destination.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
    }

    public func storedBFloat16(_ name: String) -> UnsafePointer<UInt16>? {
        guard let location = locations[name], location.tensor.type == .bf16, location.permutedHeads == nil else { return nil }
        return storedBytes(location).baseAddress!.assumingMemoryBound(to: UInt16.self)
    }

    public func prefetch(_ names: [String]) {
        for name in names { if let location = locations[name] { file.prefetch(location.tensor) } }
    }

    public func release(_ names: [String]) {
        for name in names { if let location = locations[name] { file.release(location.tensor) } }
    }

    /// Inverse of convert_hf_to_gguf.py's LlamaModel.permute: within each head, GGUF row
    /// 2i + j holds Hugging Face row j·(d/2) + i (rotary pairs adjacent instead of in halves).
    public static func unpermuteRows(_ values: UnsafeMutablePointer<Float>, rows: Int, rowLength: Int, heads: Int) {
        regroupRows(values, rows: rows, rowLength: rowLength, heads: heads, intoPairs: false)
    }

    /// convert_hf_to_gguf.py's permutation itself (what the writer applies).
    public static func permuteRows(_ values: UnsafeMutablePointer<Float>, rows: Int, rowLength: Int, heads: Int) {
        regroupRows(values, rows: rows, rowLength: rowLength, heads: heads, intoPairs: true)
    }

    /// Moves each head's row j·(d/2) + i to 2i + j (`intoPairs`) or back.
    private static func regroupRows(_ values: UnsafeMutablePointer<Float>, rows: Int, rowLength: Int, heads: Int, intoPairs: Bool) {
        let headRows = rows / heads
        let half = headRows / 2
        let scratch = FloatBuffer(uninitializedCount: headRows * rowLength)
        for head in 0..<heads {
            let base = values + head * headRows * rowLength
            scratch.pointer.update(from: base, count: headRows * rowLength)
            for i in 0..<half {
                for j in 0..<2 {
                    let (to, from) = intoPairs ? (2 * i + j, j * half + i) : (j * half + i, 2 * i + j)
                    (base + to * rowLength).update(from: scratch.pointer + from * rowLength, count: rowLength)
                }
            }
        }
    }
}
