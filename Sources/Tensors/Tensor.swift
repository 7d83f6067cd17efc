/// A dense, row-major Float32 tensor: the only numeric type the forward pass computes with.
///
/// Weights live on disk in their stored dtype and become `Tensor`s one layer (or one expert) at a
/// time, so a `Tensor` owns its storage and is cheap to drop.
public struct Tensor: Sendable, Equatable {
    public var shape: [Int]
    public var scalars: [Float]

    public init(shape: [Int], scalars: [Float]) {
        precondition(shape.reduce(1, *) == scalars.count, "shape \(shape) does not match \(scalars.count) scalars")
        self.shape = shape
        self.scalars = scalars
    }

    public init(zeros shape: [Int]) {
        self.init(shape: shape, scalars: [Float](repeating: 0, count: shape.reduce(1, *)))
    }

    public var count: Int { scalars.count }

    /// Rows and columns of a 2-D tensor (a 1-D tensor is one row).
    public var rows: Int { shape.count == 1 ? 1 : shape[0] }
    public var columns: Int { shape.last ?? 1 }

    /// A copy of row `index` of a 2-D tensor.
    public func row(_ index: Int) -> ArraySlice<Float> {
        scalars[(index * columns)..<((index + 1) * columns)]
    }
}
