import Checkpoint
import Foundation

/// Writes a GGUF file (version 3) without holding its tensors in memory: the caller declares the
/// metadata and every tensor (name, ggml dimensions, type) up front, the writer lays out the
/// header and aligned data offsets, reserves the whole file in a temporary sibling (StagedFile)
/// and then accepts each tensor's bytes, or one slice of a tensor at a time (an expert of a
/// stacked expert tensor), straight into place. `commit` checks that every byte was written.
public final class GGUFWriter {
    public let tensors: [GGUFTensorInfo]
    public let fileSize: Int
    private let file: StagedFile
    private let dataOffset: Int
    private let index: [String: Int]
    /// Bytes written per tensor; a tensor is complete when this equals its size.
    private var writtenBytes: [Int]

    public init(destination: URL, metadata: [(key: String, value: GGUFValue)], tensors declared: [GGUFTensorInfo],
                alignment: Int = GGUFFile.defaultAlignment, inputs: [URL] = [], overwrite: Bool = false) throws {
        var index: [String: Int] = [:]
        var laidOut: [GGUFTensorInfo] = []
        var cursor = 0
        for tensor in declared {
            guard index[tensor.name] == nil else { throw GGUFError(file: destination.path, "tensor '\(tensor.name)' declared twice") }
            guard tensor.rowLength % tensor.type.blockSize == 0 else {
                throw GGUFError(file: destination.path, "tensor '\(tensor.name)': row length \(tensor.rowLength) is not a multiple of \(tensor.type.name)'s block of \(tensor.type.blockSize)")
            }
            index[tensor.name] = laidOut.count
            laidOut.append(GGUFTensorInfo(name: tensor.name, dimensions: tensor.dimensions, type: tensor.type, offset: cursor))
            cursor += (tensor.byteCount + alignment - 1) / alignment * alignment
        }
        var header = GGUFByteWriter()
        header.bytes.append(contentsOf: GGUFFile.magic)
        header.append(UInt32(3))
        header.append(UInt64(laidOut.count))
        var entries = metadata
        if alignment != GGUFFile.defaultAlignment && !entries.contains(where: { $0.key == "general.alignment" }) {
            entries.append(("general.alignment", .uint32(UInt32(alignment))))
        }
        header.append(UInt64(entries.count))
        for (key, value) in entries {
            header.append(key)
            header.append(value.type.rawValue)
            header.append(value)
        }
        for tensor in laidOut {
            header.append(tensor.name)
            header.append(UInt32(tensor.dimensions.count))
            for extent in tensor.dimensions { header.append(UInt64(extent)) }
            header.append(tensor.type.rawValue)
            header.append(UInt64(tensor.offset))
        }
        header.pad(to: alignment)
        dataOffset = header.bytes.count
        fileSize = dataOffset + cursor
        tensors = laidOut
        self.index = index
        writtenBytes = Array(repeating: 0, count: laidOut.count)
        file = try StagedFile(destination: destination, size: fileSize, inputs: inputs, overwrite: overwrite)
        try header.bytes.withUnsafeBytes { try file.write($0, at: 0) }
    }

    /// Stores `bytes` at `byteOffset` inside the tensor (0 and the whole tensor for a plain write;
    /// expert e's slice of a stacked tensor starts at e × its byte size).
    public func write(_ name: String, bytes: UnsafeRawBufferPointer, at byteOffset: Int = 0) throws {
        guard let position = index[name] else {
            throw GGUFError(file: file.destination.path, "tensor '\(name)' was not declared")
        }
        let tensor = tensors[position]
        guard byteOffset >= 0, byteOffset + bytes.count <= tensor.byteCount else {
            throw GGUFError(file: file.destination.path, "tensor '\(name)': \(bytes.count) bytes at \(byteOffset) do not fit its \(tensor.byteCount)")
        }
        try file.write(bytes, at: dataOffset + tensor.offset + byteOffset)
        writtenBytes[position] += bytes.count
    }

    public func commit() throws {
        for (tensor, written) in zip(tensors, writtenBytes) where written != tensor.byteCount {
            throw GGUFError(file: file.destination.path, "tensor '\(tensor.name)': \(written) of \(tensor.byteCount) bytes were written")
        }
        try file.commit()
    }
}
