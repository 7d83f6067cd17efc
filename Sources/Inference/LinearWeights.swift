import Architectures
import Checkpoint
import Tensors

/// A linear layer's weight (`outFeatures x inFeatures`, in the compute precision) and optional bias.
struct LinearWeights {
    enum Matrix {
        case float32(FloatBuffer)
        case bfloat16(BFloat16Buffer)
    }

    let matrix: Matrix
    let bias: FloatBuffer?
    let outFeatures: Int
    let inFeatures: Int

    /// Reads the weight into `buffer` when given (so a layer's experts can share one set of
    /// buffers instead of faulting in fresh pages for each), else into new storage.
    init(_ name: String, from source: TensorSource, precision: ComputePrecision = .float32, buffer: WeightBuffer? = nil) throws {
        guard let descriptor = source.descriptor(name), descriptor.shape.count == 2 else {
            throw CheckpointError(file: name, "expected a 2-D tensor")
        }
        outFeatures = descriptor.shape[0]
        inFeatures = descriptor.shape[1]
        let buffer = buffer ?? WeightBuffer()
        switch precision {
        case .float32:
            let storage = buffer.float32(count: descriptor.elementCount)
            try source.readFloat32(name, into: storage.pointer)
            matrix = .float32(storage)
        case .bfloat16:
            let storage = buffer.bfloat16(count: descriptor.elementCount)
            try source.readBFloat16(name, into: storage.pointer)
            matrix = .bfloat16(storage)
        }
        bias = source.contains(name.biasName) ? try readVector(name.biasName, from: source) : nil
    }

    /// `output = input * weight^T (+ bias)` for `tokens` rows.
    func apply(_ input: UnsafePointer<Float>, tokens: Int, into output: UnsafeMutablePointer<Float>) {
        switch matrix {
        case .float32(let weight):
            linear(input: input, tokens: tokens, inFeatures: inFeatures, weight: weight.pointer,
                   outFeatures: outFeatures, output: output)
        case .bfloat16(let weight):
            linearBFloat16(input: input, tokens: tokens, inFeatures: inFeatures, weight: weight.pointer,
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
