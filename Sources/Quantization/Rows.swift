import Dispatch
import Foundation
import Tensors

/// Encodes `rows` rows of `rowLength` floats (row-major) into ggml blocks, `type.rowBytes(rowLength)`
/// bytes per row. `importance` (rowLength non-negative weights, may be nil) is llama.cpp's imatrix
/// column weights: with it, each block's scales and mins minimise the importance-weighted squared
/// error as ggml's quantize_row_*_impl does with quant_weights; without it, the bytes are what
/// ggml_quantize_chunk writes without an imatrix (the k-quants' and Q4_0…Q5_1's `_ref` paths).
/// Q8_0 and the float types ignore `importance`, as ggml does.
///
/// Throws before writing anything for a row length that is not a multiple of the block size or
/// an invalid importance weight; for a NaN or infinity in the source it throws naming the first
/// such row, and the destination's contents are then unspecified.
public func quantizeRows(_ type: GGMLType, _ source: UnsafePointer<Float>, rows: Int, rowLength: Int,
                         importance: UnsafePointer<Float>?, into destination: UnsafeMutableRawPointer) throws {
    try checkShape(type, rows: rows, rowLength: rowLength)
    if let importance, type.isQuantized {
        for column in 0..<rowLength where !(importance[column].isFinite && importance[column] >= 0) {
            throw QuantizationError.invalidImportance(column: column, value: importance[column])
        }
    }
    let rowBytes = type.rowBytes(rowLength)
    let format = type.blockFormat
    // Each chunk reads and writes only its own rows; both buffers outlive the call.
    nonisolated(unsafe) let input = source, output = destination, weights = importance
    let failure = forEachRowChunk(rows: rows, rowLength: rowLength) { chunk -> QuantizationError? in
        let scratch = BlockScratch()
        defer { scratch.deallocate() }
        for row in chunk {
            let x = input + row * rowLength, out = output + row * rowBytes
            if let column = firstNonFinite(x, count: rowLength) {
                return .nonFiniteInput(row: row, column: column)
            }
            if let format {
                format.encode(x, count: rowLength, importance: weights, into: out, scratch: scratch)
            } else {
                convertFromFloat32(x, count: rowLength, to: type.floatDType, into: out)
            }
        }
        return nil
    }
    if let failure { throw failure }
}

/// Decodes `rows` rows of ggml blocks (`type.rowBytes(rowLength)` bytes each) into floats,
/// exactly as ggml's dequantize_row_* (and gguf-py's dequantize) compute them.
public func dequantizeRows(_ type: GGMLType, _ source: UnsafeRawPointer, rows: Int, rowLength: Int,
                           into destination: UnsafeMutablePointer<Float>) throws {
    try checkShape(type, rows: rows, rowLength: rowLength)
    guard let format = type.blockFormat else {
        // The Tensors conversion splits large inputs across the cores itself.
        return convertToFloat32(source, dtype: type.floatDType, count: rows * rowLength, into: destination)
    }
    let rowBytes = type.rowBytes(rowLength)
    nonisolated(unsafe) let input = source, output = destination
    _ = forEachRowChunk(rows: rows, rowLength: rowLength) { chunk -> QuantizationError? in
        for row in chunk {
            format.decode(input + row * rowBytes, count: rowLength, into: output + row * rowLength)
        }
        return nil
    }
}

private func checkShape(_ type: GGMLType, rows: Int, rowLength: Int) throws {
    guard rows >= 0, rowLength >= 0 else { throw QuantizationError.negativeShape(rows: rows, rowLength: rowLength) }
    guard rowLength % type.blockSize == 0 else {
        throw QuantizationError.rowLengthNotMultipleOfBlock(type: type, rowLength: rowLength)
    }
}

extension GGMLType {
    /// The Tensors dtype of a float type (whose conversions round as ggml's do: to nearest even).
    fileprivate var floatDType: DType {
        switch self {
        case .f16: .f16
        case .bf16: .bf16
        default: .f32
        }
    }
}

/// Runs `body` over consecutive ranges of rows covering 0..<rows, on all cores when there is
/// enough work to pay for the threads (the only level of parallelism: `body` runs serially).
/// Returns the failure of the earliest failing range.
private func forEachRowChunk(rows: Int, rowLength: Int, _ body: @Sendable (Range<Int>) -> QuantizationError?) -> QuantizationError? {
    let workers = Cores.available
    guard workers > 1, rows > 1, rows * rowLength >= 1 << 16 else { return body(0..<rows) }
    // A few chunks per core, so a core slowed by other work does not hold up the rest.
    let chunks = Swift.min(rows, 4 * workers)
    let failures = UnsafeMutableBufferPointer<QuantizationError?>.allocate(capacity: chunks)
    failures.initialize(repeating: nil)
    defer { failures.deallocate() }
    nonisolated(unsafe) let results = failures
    DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
        results[chunk] = body(rows * chunk / chunks..<rows * (chunk + 1) / chunks)
    }
    return failures.lazy.compactMap { $0 }.first
}
