import Architectures
import Checkpoint
import Tensors

/// A linear layer's Float32 weight (`outFeatures x inFeatures`) and optional bias.
struct LinearWeights {
    let weight: FloatBuffer
    let bias: FloatBuffer?
    let outFeatures: Int
    let inFeatures: Int

    /// Reads the weight into `storage` when given (so a layer's experts can share one set of
    /// buffers instead of faulting in fresh pages for each), else into a new buffer.
    init(_ name: String, from source: TensorSource, storage: FloatBuffer? = nil) throws {
        guard let descriptor = source.descriptor(name), descriptor.shape.count == 2 else {
            throw CheckpointError(file: name, "expected a 2-D tensor")
        }
        outFeatures = descriptor.shape[0]
        inFeatures = descriptor.shape[1]
        if let storage, storage.count >= descriptor.elementCount {
            weight = storage
        } else {
            weight = FloatBuffer(uninitializedCount: descriptor.elementCount)
        }
        try source.readFloat32(name, into: weight.pointer)
        bias = source.contains(name.biasName) ? try readVector(name.biasName, from: source) : nil
    }

    /// `output = input * weight^T (+ bias)` for `tokens` rows.
    func apply(_ input: UnsafePointer<Float>, tokens: Int, into output: UnsafeMutablePointer<Float>) {
        linear(input: input, tokens: tokens, inFeatures: inFeatures, weight: weight.pointer,
               outFeatures: outFeatures, output: output)
        if let bias {
            for token in 0..<tokens {
                let row = output + token * outFeatures
                for feature in 0..<outFeatures { row[feature] += bias[feature] }
            }
        }
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
