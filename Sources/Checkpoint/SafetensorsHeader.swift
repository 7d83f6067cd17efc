import Foundation
import Tensors

/// Where one tensor lives inside a safetensors file.
public struct TensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Byte range relative to the start of the data section (as in the header's data_offsets).
    public let dataRange: Range<Int>

    public init(name: String, dtype: DType, shape: [Int], dataRange: Range<Int>) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.dataRange = dataRange
    }

    public var elementCount: Int { shape.reduce(1, *) }
    public var byteCount: Int { dataRange.count }
}

/// The parsed, fully validated JSON header of a safetensors file.
///
/// Layout (huggingface/safetensors): 8-byte little-endian header length N, N bytes of UTF-8 JSON
/// `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}`, then the
/// data section. Every check here is one a corrupt or lying file has been seen to fail.
public struct SafetensorsHeader: Sendable {
    public let tensors: [TensorInfo]
    public let metadata: [String: String]
    /// Absolute file offset of the data section.
    public let dataStart: Int

    /// Parses and validates the header of a file of `fileSize` bytes whose bytes start at `bytes`.
    public init(file: String, bytes: UnsafeRawBufferPointer) throws {
        func fail(_ problem: String) -> CheckpointError { CheckpointError(file: file, problem) }
        let fileSize = bytes.count
        guard fileSize >= 8 else {
            throw fail("truncated: \(fileSize) bytes, too short for the 8-byte header length")
        }
        let headerLength = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
        guard headerLength <= UInt64(fileSize - 8) else {
            throw fail("header length \(headerLength) runs past the end of the \(fileSize)-byte file (truncated or corrupt)")
        }
        dataStart = 8 + Int(headerLength)
        let dataSize = fileSize - dataStart
        let headerData = Data(bytes[8..<dataStart])
        guard let object = (try? JSONSerialization.jsonObject(with: headerData)) as? [String: Any] else {
            throw fail("header is not a valid JSON object")
        }
        // JSONSerialization keeps the last of two equal keys without a word.
        if let duplicate = JSONKeys.firstDuplicateTopLevelKey(in: headerData) {
            throw fail("header names tensor '\(duplicate)' twice")
        }

        var metadata: [String: String] = [:]
        var tensors: [TensorInfo] = []
        tensors.reserveCapacity(object.count)
        for (name, entry) in object {
            if name == "__metadata__" {
                guard let map = entry as? [String: String] else {
                    throw fail("__metadata__ must map strings to strings")
                }
                metadata = map
                continue
            }
            guard let fields = entry as? [String: Any] else { throw fail("tensor '\(name)': entry is not an object") }
            guard let dtypeName = fields["dtype"] as? String else { throw fail("tensor '\(name)': missing dtype") }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw fail("tensor '\(name)': unknown dtype '\(dtypeName)' (known: \(DType.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            guard let shape = Self.integers(fields["shape"]), shape.allSatisfy({ $0 >= 0 }) else {
                throw fail("tensor '\(name)': shape must be an array of non-negative integers")
            }
            guard let offsets = Self.integers(fields["data_offsets"]), offsets.count == 2 else {
                throw fail("tensor '\(name)': data_offsets must be two integers")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, begin <= end, end <= dataSize else {
                throw fail("tensor '\(name)': data_offsets [\(begin), \(end)] lie outside the \(dataSize)-byte data section")
            }
            let (elements, overflow) = shape.reduce((1, false)) { partial, dimension in
                let product = partial.0.multipliedReportingOverflow(by: dimension)
                return (product.partialValue, partial.1 || product.overflow)
            }
            let expectedBytes = elements.multipliedReportingOverflow(by: dtype.byteSize)
            guard !overflow, !expectedBytes.overflow, expectedBytes.partialValue == end - begin else {
                throw fail("tensor '\(name)': shape \(shape) of \(dtype.rawValue) needs \(overflow ? "too many" : String(expectedBytes.partialValue)) bytes but data_offsets span \(end - begin)")
            }
            tensors.append(TensorInfo(name: name, dtype: dtype, shape: shape, dataRange: begin..<end))
        }

        // As the safetensors library requires: the tensors tile the data section exactly, with no
        // overlap and no gap. A gap means the header length or the offsets are wrong (a header
        // length one byte short still parses, through its padding, and shifts every tensor).
        tensors.sort { ($0.dataRange.lowerBound, $0.dataRange.upperBound) < ($1.dataRange.lowerBound, $1.dataRange.upperBound) }
        var covered = 0
        for (index, tensor) in tensors.enumerated() {
            if tensor.dataRange.lowerBound < covered {
                throw fail("tensors '\(tensors[index - 1].name)' and '\(tensor.name)' overlap in the data section")
            }
            if tensor.dataRange.lowerBound > covered {
                throw fail("bytes \(covered)..<\(tensor.dataRange.lowerBound) of the data section belong to no tensor (before '\(tensor.name)'): the header length or data_offsets are wrong")
            }
            covered = tensor.dataRange.upperBound
        }
        guard covered == dataSize else {
            throw fail("the data section has \(dataSize) bytes but the tensors cover \(covered): the header length or data_offsets are wrong")
        }
        self.tensors = tensors
        self.metadata = metadata
    }

    /// JSON integers as Swift Ints (JSONSerialization gives NSNumber; fractions are rejected).
    private static func integers(_ value: Any?) -> [Int]? {
        guard let array = value as? [Any] else { return nil }
        var result: [Int] = []
        result.reserveCapacity(array.count)
        for element in array {
            guard let number = element as? NSNumber, Double(number.int64Value) == number.doubleValue else { return nil }
            result.append(Int(number.int64Value))
        }
        return result
    }
}
