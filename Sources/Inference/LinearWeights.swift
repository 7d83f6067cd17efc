import Architectures
import Checkpoint
import Tensors

/// A linear layer's weight (`outFeatures x inFeatures`, in the compute precision) and optional bias.
struct LinearWeights {
    enum Matrix {
        case float32(FloatBuffer)
        /// bf16 values: a copy in `owner`, or (owner nil) the source's own bytes used in place.
        case bfloat16(UnsafePointer<UInt16>, owner: BFloat16Buffer?)
        /// bf16 values widened to Float32, for CPUs without a native bf16 product: widened once
        /// here rather than on every product (the output head is applied many times).
        case bfloat16Widened(FloatBuffer)
    }

    let matrix: Matrix
    let bias: FloatBuffer?
    let outFeatures: Int
    let inFeatures: Int

    /// Reads the weight into `buffer` when given (so a layer's experts can share one set of
    /// buffers instead of faulting in fresh pages for each), else into new storage.
    init(_ name: String, from source: TensorSource, precision: ComputePrecision = .float32, buffer: WeightBuffer? = nil,
         inPlace: Bool = false) throws {
        try self.init(stacking: [name], from: source, precision: precision, buffer: buffer, inPlace: inPlace)
    }

    /// Several projections of the same input stacked into one matrix (their rows one after
    /// another, biases likewise), so that one matrix product computes them all: an expert's gate
    /// and up projections together make a wider, faster GEMM than either alone.
    ///
    /// With `inPlace`, bf16 compute uses the source's stored bytes directly when it has them (and,
    /// when stacking, they lie back to back, as an expert's gate and up projections do in files
    /// written by safetensors, which orders tensors by name): the caller must then keep the source
    /// alive while computing and call `source.release` afterwards.
    init(stacking names: [String], from source: TensorSource, precision: ComputePrecision, buffer: WeightBuffer? = nil,
         inPlace: Bool = false) throws {
        let descriptors = try names.map { name in
            guard let descriptor = source.descriptor(name), descriptor.shape.count == 2 else {
                throw CheckpointError(file: name, "expected a 2-D tensor")
            }
            return descriptor
        }
        inFeatures = descriptors[0].shape[1]
        for descriptor in descriptors where descriptor.shape[1] != inFeatures {
            throw CheckpointError(file: descriptor.name, "has \(descriptor.shape[1]) input features; \(names[0]) has \(inFeatures)")
        }
        let rowCounts = descriptors.map { $0.shape[0] }
        outFeatures = rowCounts.reduce(0, +)
        let rowStarts = rowCounts.indices.map { rowCounts[..<$0].reduce(0, +) }
        let buffer = buffer ?? WeightBuffer()
        switch precision {
        case .float32:
            let storage = buffer.float32(count: outFeatures * inFeatures)
            for (name, start) in zip(names, rowStarts) { try source.readFloat32(name, into: storage.pointer + start * inFeatures) }
            matrix = .float32(storage)
        case .bfloat16 where BFloat16Matmul.nativeKernelName == nil:
            let storage = buffer.float32(count: outFeatures * inFeatures)
            for (name, start) in zip(names, rowStarts) { try source.readFloat32(name, into: storage.pointer + start * inFeatures) }
            roundToBFloat16(storage.pointer, count: outFeatures * inFeatures)  // exact for bf16 checkpoints
            matrix = .bfloat16Widened(storage)
        case .bfloat16 where inPlace && Self.storedBackToBack(names, rowStarts: rowStarts, inFeatures: inFeatures, in: source):
            matrix = .bfloat16(source.storedBFloat16(names[0])!, owner: nil)
        case .bfloat16:
            let storage = buffer.bfloat16(count: outFeatures * inFeatures)
            for (name, start) in zip(names, rowStarts) { try source.readBFloat16(name, into: storage.pointer + start * inFeatures) }
            matrix = .bfloat16(UnsafePointer(storage.pointer), owner: storage)
        }
        if names.contains(where: { source.contains($0.biasName) }) {
            let stacked = FloatBuffer(count: outFeatures)
            for (name, start) in zip(names, rowStarts) where source.contains(name.biasName) {
                try source.readFloat32(name.biasName, into: stacked.pointer + start)
            }
            bias = stacked
        } else {
            bias = nil
        }
    }

    private static func storedBackToBack(_ names: [String], rowStarts: [Int], inFeatures: Int, in source: TensorSource) -> Bool {
        guard let first = source.storedBFloat16(names[0]) else { return false }
        return zip(names, rowStarts).allSatisfy { name, start in source.storedBFloat16(name) == first + start * inFeatures }
    }

    /// `output = input * weight^T (+ bias)` for `tokens` rows.
    func apply(_ input: UnsafePointer<Float>, tokens: Int, into output: UnsafeMutablePointer<Float>) throws {
        switch matrix {
        case .float32(let weight):
            try linear(input: input, tokens: tokens, inFeatures: inFeatures, weight: weight.pointer,
                       outFeatures: outFeatures, output: output)
        case .bfloat16(let weight, _):
            try linearBFloat16(input: input, tokens: tokens, inFeatures: inFeatures, weight: weight,
                               outFeatures: outFeatures, output: output)
        case .bfloat16Widened(let weight):
            try linearBFloat16(input: input, tokens: tokens, inFeatures: inFeatures, widenedWeight: weight.pointer,
                               outFeatures: outFeatures, output: output)
        }
        if let bias {
            for token in 0..<tokens {
                let row = output + token * outFeatures
                for feature in 0..<outFeatures { row[feature] += bias[feature] }
            }
        }
    }
}

/// Reusable storage for one projection's weights, grown on demand; the experts of a layer are
/// read one after another into the same few buffers.
final class WeightBuffer {
    private var float32Storage: FloatBuffer?
    private var bfloat16Storage: BFloat16Buffer?

    func float32(count: Int) -> FloatBuffer {
        if let storage = float32Storage, storage.count >= count { return storage }
        let storage = FloatBuffer(uninitializedCount: count)
        float32Storage = storage
        return storage
    }

    func bfloat16(count: Int) -> BFloat16Buffer {
        if let storage = bfloat16Storage, storage.count >= count { return storage }
        let storage = BFloat16Buffer(uninitializedCount: count)
        bfloat16Storage = storage
        return storage
    }
}

func readVector(_ name: String, from source: TensorSource) throws -> FloatBuffer {
    guard let descriptor = source.descriptor(name) else {
        throw CheckpointError(file: name, "tensor not found in the checkpoint")
    }
    let buffer = FloatBuffer(uninitializedCount: descriptor.elementCount)
    try source.readFloat32(name, into: buffer.pointer)
    return buffer
}
