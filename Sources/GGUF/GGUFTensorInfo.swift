import Quantization

/// One tensor of a GGUF file: its name, ggml dimensions (ne: ne[0] is the row length, the
/// fastest-varying index, so a PyTorch `[out, in]` matrix is `[in, out]` here), type and where its
/// data starts relative to the file's data section.
public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    public let dimensions: [Int]
    public let type: GGMLType
    public let offset: Int

    public init(name: String, dimensions: [Int], type: GGMLType, offset: Int = 0) {
        self.name = name
        self.dimensions = dimensions
        self.type = type
        self.offset = offset
    }

    public var elementCount: Int { dimensions.reduce(1, *) }
    public var rowLength: Int { dimensions.first ?? 1 }
    public var rowCount: Int { dimensions.dropFirst().reduce(1, *) }
    public var byteCount: Int { type.rowBytes(rowLength) * rowCount }
    /// PyTorch's order of the same dimensions (`[out, in]` for a matrix).
    public var torchShape: [Int] { dimensions.reversed() }
}
