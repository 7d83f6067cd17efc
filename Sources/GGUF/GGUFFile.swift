import Checkpoint
import Quantization

/// A GGUF file opened read-only over a memory map: the metadata, the tensor table and views of
/// each tensor's bytes. Everything in the header is checked against the file's size before it
/// is used, so a truncated or lying file is a one-line error naming the key or tensor.
public final class GGUFFile: @unchecked Sendable {
    public static let magic: [UInt8] = Array("GGUF".utf8)
    public static let defaultAlignment = 32

    public let path: String
    public let version: UInt32
    /// Metadata in file order.
    public let metadata: [(key: String, value: GGUFValue)]
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    /// Where the data section starts.
    public let dataOffset: Int
    private let values: [String: GGUFValue]
    private let tensorIndex: [String: Int]
    private let file: MappedFile

    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path)
        var reader = GGUFByteReader(file.bytes(0..<file.size), file: path)
        guard file.size >= 4, Array(reader.bytes[0..<4]) == Self.magic else {
            throw GGUFError(file: path, "not a GGUF file (no GGUF magic)")
        }
        reader.offset = 4
        version = try reader.read(UInt32.self, "the version")
        guard version == 2 || version == 3 else {
            throw GGUFError(file: path, "GGUF version \(version) is not supported (2 and 3 are)")
        }
        let tensorCount = try reader.read(UInt64.self, "the tensor count")
        let keyCount = try reader.read(UInt64.self, "the metadata count")
        // A key takes at least 12 bytes, a tensor entry at least 24.
        guard keyCount <= UInt64(reader.remaining / 12), tensorCount <= UInt64(reader.remaining / 24) else {
            throw GGUFError(file: path, "header claims \(keyCount) keys and \(tensorCount) tensors, more than the file holds")
        }

        var metadata: [(key: String, value: GGUFValue)] = []
        var values: [String: GGUFValue] = [:]
        for index in 0..<Int(keyCount) {
            let key = try reader.readString("metadata key \(index)")
            let rawType = try reader.read(UInt32.self, "the type of '\(key)'")
            guard let type = GGUFValueType(rawValue: rawType) else {
                throw GGUFError(file: path, "metadata '\(key)': unknown value type \(rawType)")
            }
            let value = try reader.readValue(of: type, "metadata '\(key)'")
            guard values[key] == nil else { throw GGUFError(file: path, "metadata '\(key)' appears twice") }
            values[key] = value
            metadata.append((key, value))
        }
        self.metadata = metadata
        self.values = values

        var alignment = Self.defaultAlignment
        if let declared = values["general.alignment"] {
            guard let value = declared.intValue, value > 0, value & (value - 1) == 0, value <= 1 << 20 else {
                throw GGUFError(file: path, "metadata 'general.alignment' must be a power of two, is \(declared)")
            }
            alignment = value
        }
        self.alignment = alignment

        var infos: [GGUFTensorInfo] = []
        var tensorIndex: [String: Int] = [:]
        for index in 0..<Int(tensorCount) {
            let name = try reader.readString("the name of tensor \(index)")
            let dimensionCount = try reader.read(UInt32.self, "the rank of '\(name)'")
            guard (1...4).contains(dimensionCount) else {
                throw GGUFError(file: path, "tensor '\(name)': rank \(dimensionCount) (ggml allows 1 to 4)")
            }
            var dimensions: [Int] = []
            var elements = 1
            for _ in 0..<dimensionCount {
                let extent = try reader.read(UInt64.self, "the shape of '\(name)'")
                guard extent > 0, extent < 1 << 40, case (let product, false) = elements.multipliedReportingOverflow(by: Int(extent)),
                      product < 1 << 48 else {
                    throw GGUFError(file: path, "tensor '\(name)': impossible dimension \(extent)")
                }
                elements = product
                dimensions.append(Int(extent))
            }
            let rawType = try reader.read(UInt32.self, "the type of '\(name)'")
            guard let type = GGMLType(rawValue: rawType) else {
                throw GGUFError(file: path, "tensor '\(name)': ggml type \(rawType) cannot be read by moe-compress")
            }
            guard dimensions[0] % type.blockSize == 0 else {
                throw GGUFError(file: path, "tensor '\(name)': row length \(dimensions[0]) is not a multiple of \(type.name)'s block of \(type.blockSize)")
            }
            let offset = try reader.read(UInt64.self, "the offset of '\(name)'")
            guard offset < 1 << 56, Int(offset) % alignment == 0 else {
                throw GGUFError(file: path, "tensor '\(name)': data offset \(offset) is not a multiple of the alignment \(alignment)")
            }
            guard tensorIndex[name] == nil else { throw GGUFError(file: path, "tensor '\(name)' appears twice") }
            tensorIndex[name] = infos.count
            infos.append(GGUFTensorInfo(name: name, dimensions: dimensions, type: type, offset: Int(offset)))
        }
        let dataOffset = (reader.offset + alignment - 1) / alignment * alignment
        self.dataOffset = dataOffset
        for info in infos where dataOffset + info.offset + info.byteCount > file.size {
            throw GGUFError(file: path, "tensor '\(info.name)': data (\(info.byteCount) bytes at \(dataOffset + info.offset)) runs past the end of the file (\(file.size) bytes)")
        }
        // Tensors may not overlap: sort by offset and compare neighbours.
        let ordered = infos.sorted { $0.offset < $1.offset }
        for (previous, next) in zip(ordered, ordered.dropFirst()) where previous.offset + previous.byteCount > next.offset {
            throw GGUFError(file: path, "tensors '\(previous.name)' and '\(next.name)' overlap")
        }
        tensors = infos
        self.tensorIndex = tensorIndex
    }

    public subscript(key: String) -> GGUFValue? { values[key] }

    public func tensor(_ name: String) -> GGUFTensorInfo? { tensorIndex[name].map { tensors[$0] } }

    /// The tensor's stored bytes; valid while this object lives.
    public func bytes(of tensor: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        let start = dataOffset + tensor.offset
        return file.bytes(start..<(start + tensor.byteCount))
    }

    public func prefetch(_ tensor: GGUFTensorInfo) {
        let start = dataOffset + tensor.offset
        file.prefetch(start..<(start + tensor.byteCount))
    }

    public func release(_ tensor: GGUFTensorInfo) {
        let start = dataOffset + tensor.offset
        file.release(start..<(start + tensor.byteCount))
    }

    /// A metadata value that must be present, as an integer.
    public func int(_ key: String) throws -> Int {
        guard let value = values[key] else { throw GGUFError(file: path, "metadata '\(key)' is missing") }
        guard let number = value.intValue else { throw GGUFError(file: path, "metadata '\(key)' is not an integer") }
        return number
    }

    public func double(_ key: String) throws -> Double {
        guard let value = values[key] else { throw GGUFError(file: path, "metadata '\(key)' is missing") }
        guard let number = value.doubleValue else { throw GGUFError(file: path, "metadata '\(key)' is not a number") }
        return number
    }

    public func string(_ key: String) throws -> String {
        guard let value = values[key] else { throw GGUFError(file: path, "metadata '\(key)' is missing") }
        guard let text = value.stringValue else { throw GGUFError(file: path, "metadata '\(key)' is not a string") }
        return text
    }
}
