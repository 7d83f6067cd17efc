import Foundation
import Tensors

/// One mapped, validated safetensors file.
public final class SafetensorsFile: @unchecked Sendable {
    public let mapping: MappedFile
    public let header: SafetensorsHeader
    public private(set) var tensorsByName: [String: TensorInfo] = [:]

    public var path: String { mapping.path }

    public init(path: String) throws {
        mapping = try MappedFile(path: path)
        header = try SafetensorsHeader(file: path, bytes: mapping.bytes(0..<mapping.size))
        for info in header.tensors { tensorsByName[info.name] = info }
    }

    /// The stored bytes of a tensor, valid while this file is open.
    public func rawBytes(of info: TensorInfo) -> UnsafeRawBufferPointer {
        mapping.bytes(absoluteRange(of: info))
    }

    /// A 16-bit tensor's values in place, if its offset is 2-byte aligned (safetensors writers
    /// order tensors by alignment, so in practice it is).
    public func storedHalves(of info: TensorInfo) -> UnsafePointer<UInt16>? {
        guard info.dtype.byteSize == 2, let base = rawBytes(of: info).baseAddress,
              Int(bitPattern: base) % MemoryLayout<UInt16>.alignment == 0 else { return nil }
        return base.assumingMemoryBound(to: UInt16.self)
    }

    /// Drops the tensor's pages from this process (they stay in the page cache).
    public func release(_ info: TensorInfo) {
        mapping.release(absoluteRange(of: info))
    }

    /// Widens the tensor into `destination` (`info.elementCount` floats), then hands its pages
    /// back to the kernel so a streamed pass keeps a bounded resident set.
    public func readFloat32(_ info: TensorInfo, into destination: UnsafeMutablePointer<Float>) throws {
        guard info.dtype.convertsToFloat else {
            throw CheckpointError(file: path, "tensor '\(info.name)': \(info.dtype.rawValue) cannot be read as Float32")
        }
        if let base = rawBytes(of: info).baseAddress {
            convertToFloat32(base, dtype: info.dtype, count: info.elementCount, into: destination)
        }
        mapping.release(absoluteRange(of: info))
    }

    /// Copies a bf16 tensor into `destination`, or widens and rounds any other float type, then
    /// hands its pages back like `readFloat32`.
    public func readBFloat16(_ info: TensorInfo, into destination: UnsafeMutablePointer<UInt16>) throws {
        guard info.dtype.convertsToFloat else {
            throw CheckpointError(file: path, "tensor '\(info.name)': \(info.dtype.rawValue) cannot be read as bfloat16")
        }
        if let base = rawBytes(of: info).baseAddress {
            if info.dtype == .bf16 {
                UnsafeMutableRawPointer(destination).copyMemory(from: base, byteCount: info.elementCount * 2)
            } else {
                let widened = FloatBuffer(uninitializedCount: info.elementCount)
                convertToFloat32(base, dtype: info.dtype, count: info.elementCount, into: widened.pointer)
                convertFromFloat32(widened.pointer, count: info.elementCount, to: .bf16, into: UnsafeMutableRawPointer(destination))
            }
        }
        mapping.release(absoluteRange(of: info))
    }

    /// Widens rows of a 2-D tensor; each row's bytes are contiguous in the file.
    public func readFloat32Rows(_ info: TensorInfo, rows: [Int], into destination: UnsafeMutablePointer<Float>) throws {
        guard info.dtype.convertsToFloat else {
            throw CheckpointError(file: path, "tensor '\(info.name)': \(info.dtype.rawValue) cannot be read as Float32")
        }
        let width = info.shape[1], rowBytes = width * info.dtype.byteSize
        let bytes = rawBytes(of: info)
        for (index, row) in rows.enumerated() {
            guard row >= 0 && row < info.shape[0] else {
                throw CheckpointError(file: path, "tensor '\(info.name)': row \(row) is outside its \(info.shape[0]) rows")
            }
            convertToFloat32(bytes.baseAddress! + row * rowBytes, dtype: info.dtype, count: width, into: destination + index * width)
        }
    }

    private func absoluteRange(of info: TensorInfo) -> Range<Int> {
        (header.dataStart + info.dataRange.lowerBound)..<(header.dataStart + info.dataRange.upperBound)
    }
}
