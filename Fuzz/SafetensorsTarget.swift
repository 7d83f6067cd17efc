import Checkpoint
import Foundation

/// A whole safetensors file (8-byte length, JSON header, data): opened and validated as
/// `SafetensorsFile` does it, then every tensor read each way the forward pass reads one.
enum SafetensorsTarget {
    static func run(_ bytes: UnsafeRawBufferPointer) {
        ScratchFile.withFile(bytes, named: "model.safetensors") { path in
            expectReported(file: path) {
                let file = try SafetensorsFile(path: path)
                file.mapping.prefetch(file.header.dataStart..<file.mapping.size)
                for info in file.header.tensors { read(info, of: file) }
            }
        }
    }

    /// Non-float dtypes must refuse the conversions with a report, so each read runs on its own.
    private static func read(_ info: TensorInfo, of file: SafetensorsFile) {
        // The header bounds elementCount by the file size, so these stay small.
        let count = max(info.elementCount, 1)
        let floats = UnsafeMutablePointer<Float>.allocate(capacity: count)
        let halves = UnsafeMutablePointer<UInt16>.allocate(capacity: count)
        defer {
            floats.deallocate()
            halves.deallocate()
        }
        _ = file.storedHalves(of: info)
        expectReported(file: file.path) { try file.readFloat32(info, into: floats) }
        expectReported(file: file.path) { try file.readBFloat16(info, into: halves) }
        if info.shape.count == 2, info.shape[0] > 0 {
            // The first and the last row (distinct, so they fit in `floats`).
            let rows = Array(Set([0, info.shape[0] - 1])).sorted()
            expectReported(file: file.path) { try file.readFloat32Rows(info, rows: rows, into: floats) }
        }
        file.release(info)
    }
}
