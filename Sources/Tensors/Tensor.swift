/// A dense, row-major Float32 tensor: the only numeric type the forward pass computes with.
///
/// Weights live on disk in their stored dtype and become `Tensor`s one layer (or one expert) at a
/// time, so a `Tensor` owns its storage and is cheap to drop.
public struct Tensor: Sendable, Equatable {
    public var shape: [Int]
    public var scalars: [Float]

    public init(shape: [Int], scalars: [Float]) {
        // A programming invariant, not input: every caller builds `scalars` from `shape` (readers
        // size it from a validated descriptor).
        precondition(shape.reduce(1, *) == scalars.count, "shape \(shape) does not match \(scalars.count) scalars")
        self.shape = shape
        self.scalars = scalars
    }

    /// Elements per row of a 2-D tensor (the whole of a 1-D one).
    public var columns: Int { shape.last ?? 1 }
}
