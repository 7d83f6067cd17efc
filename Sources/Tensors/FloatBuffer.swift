/// A zero-initialised heap buffer of Float32 with a stable pointer, for the activations and
/// scratch space of the forward pass (where `[Float]`'s closure-scoped pointers get in the way).
public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>

    public init(count: Int) {
        self.count = count
        pointer = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }

    /// Storage that the caller fills completely before reading (weights read from a checkpoint):
    /// skips the zeroing pass, which costs as much as the bf16 conversion itself.
    public init(uninitializedCount count: Int) {
        self.count = count
        pointer = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
    }

    deinit { pointer.deallocate() }

    /// A new buffer holding the same values (a residual stream kept before a layer changes it).
    public func copy() -> FloatBuffer {
        let result = FloatBuffer(uninitializedCount: count)
        result.pointer.update(from: pointer, count: count)
        return result
    }

    public var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    public subscript(index: Int) -> Float {
        get { pointer[index] }
        set { pointer[index] = newValue }
    }
}
