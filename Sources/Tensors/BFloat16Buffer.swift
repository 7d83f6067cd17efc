/// A heap block of bfloat16 values (their raw 16-bit patterns), for weights kept in the stored
/// precision when the forward pass computes in bfloat16.
public final class BFloat16Buffer: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<UInt16>

    /// Storage that the caller fills completely before reading.
    public init(uninitializedCount count: Int) {
        self.count = count
        pointer = UnsafeMutablePointer<UInt16>.allocate(capacity: max(count, 1))
    }

    deinit { pointer.deallocate() }
}
