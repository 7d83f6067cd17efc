import Tensors

/// Shape and stored type of a named tensor, without its data.
public struct TensorDescriptor: Sendable, Equatable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]

    public init(name: String, dtype: DType, shape: [Int]) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
    }

    public var elementCount: Int { shape.reduce(1, *) }
}

/// Anything the forward pass can take weights from: a checkpoint on disk, a view that drops or
/// merges experts, or (later) a quantized file that dequantizes on the fly. Weights reach the math
/// as Float32, or as bfloat16 when the forward pass computes in bf16, so every quality number
/// comes from the same forward pass.
public protocol TensorSource: AnyObject, Sendable {
    /// Every tensor name, in a stable order.
    var tensorNames: [String] { get }
    func descriptor(_ name: String) -> TensorDescriptor?
    /// Writes the tensor as Float32 into `destination`, which holds `descriptor(name)!.elementCount` floats.
    func readFloat32(_ name: String, into destination: UnsafeMutablePointer<Float>) throws
    /// Writes selected rows of a 2-D tensor (e.g. embedding rows for some token ids), one after
    /// another; a large vocabulary's table need not be converted whole.
    func readFloat32Rows(_ name: String, rows: [Int], into destination: UnsafeMutablePointer<Float>) throws
    /// Writes the tensor as bfloat16 bits (rounded to nearest even unless stored as bf16).
    func readBFloat16(_ name: String, into destination: UnsafeMutablePointer<UInt16>) throws
    /// A hint that these tensors are read next (a file-backed source starts the disk reads now).
    func prefetch(_ names: [String])
    /// The tensor's bf16 values where the source already holds them in memory as bf16 (a mapped
    /// checkpoint), so bf16 compute can use them without a copy; valid while the source lives.
    /// Nil when they would have to be made (another dtype, a computed view): read a copy then.
    func storedBFloat16(_ name: String) -> UnsafePointer<UInt16>?
    /// The caller is done with these tensors' stored bytes (after computing from `storedBFloat16`),
    /// so a file-backed source can drop their pages and keep the resident set bounded.
    func release(_ names: [String])
    /// Writes the tensor's bytes in its declared dtype (`descriptor(name)!.dtype`), exactly as a
    /// checkpoint stores them: what a stage's output copies byte for byte.
    func readStored(_ name: String, into destination: UnsafeMutableRawPointer) throws
}

extension TensorSource {
    public func prefetch(_ names: [String]) {}
    public func storedBFloat16(_ name: String) -> UnsafePointer<UInt16>? { nil }
    public func release(_ names: [String]) {}

    /// Converts the whole tensor, then gathers; sources that can address rows do better.
    public func readFloat32Rows(_ name: String, rows: [Int], into destination: UnsafeMutablePointer<Float>) throws {
        let whole = try float32(name)
        let width = whole.columns
        for (index, row) in rows.enumerated() {
            whole.scalars.withUnsafeBufferPointer { (destination + index * width).update(from: $0.baseAddress! + row * width, count: width) }
        }
    }

    /// Reads as Float32, then rounds; sources that store bf16 copy instead.
    public func readBFloat16(_ name: String, into destination: UnsafeMutablePointer<UInt16>) throws {
        let whole = try float32(name)
        whole.scalars.withUnsafeBufferPointer {
            convertFromFloat32($0.baseAddress!, count: $0.count, to: .bf16, into: UnsafeMutableRawPointer(destination))
        }
    }

    /// Narrows the Float32 values to the declared float dtype; sources that hold stored bytes copy them.
    public func readStored(_ name: String, into destination: UnsafeMutableRawPointer) throws {
        guard let descriptor = descriptor(name) else {
            throw CheckpointError(file: name, "tensor not found")
        }
        switch descriptor.dtype {
        case .bf16:
            try readBFloat16(name, into: destination.assumingMemoryBound(to: UInt16.self))
        case .f32:
            try readFloat32(name, into: destination.assumingMemoryBound(to: Float.self))
        case .f16:
            let values = FloatBuffer(uninitializedCount: descriptor.elementCount)
            try readFloat32(name, into: values.pointer)
            convertFromFloat32(values.pointer, count: descriptor.elementCount, to: .f16, into: destination)
        default:
            throw CheckpointError(file: name, "\(descriptor.dtype.rawValue) tensors can only be copied from a stored file")
        }
    }

    public func contains(_ name: String) -> Bool { descriptor(name) != nil }

    /// The tensor as a freshly allocated Float32 `Tensor`.
    public func float32(_ name: String) throws -> Tensor {
        guard let descriptor = descriptor(name) else {
            throw CheckpointError(file: name, "tensor not found in the checkpoint")
        }
        var scalars = [Float](repeating: 0, count: descriptor.elementCount)
        try scalars.withUnsafeMutableBufferPointer { try readFloat32(name, into: $0.baseAddress!) }
        return Tensor(shape: descriptor.shape, scalars: scalars)
    }
}
