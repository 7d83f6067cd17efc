import CKernels
import Dispatch
import Foundation

/// Widens stored elements to Float32. `source` points at `count` elements of `dtype`, which need
/// not be aligned (safetensors offsets are only byte-aligned).
///
/// Large tensors are split across the cores: widening runs between BLAS calls, never during one,
/// so it uses the cores BLAS would otherwise leave idle rather than competing with it. Streaming
/// a bf16 checkpoint spends a large share of its time here (docs/benchmarks.md).
public func convertToFloat32(_ source: UnsafeRawPointer, dtype: DType, count: Int, into destination: UnsafeMutablePointer<Float>) {
    let workers = Cores.available
    guard workers > 1, count >= 1 << 20 else {
        convertChunkToFloat32(source, dtype: dtype, count: count, into: destination)
        return
    }
    // Chunks are multiples of 64 elements so the vector kernels keep whole blocks.
    let chunk = (count / workers + 63) / 64 * 64
    // Each worker touches a disjoint chunk of both buffers, which outlive the call.
    nonisolated(unsafe) let input = source, output = destination
    DispatchQueue.concurrentPerform(iterations: workers) { worker in
        let start = worker * chunk
        guard start < count else { return }
        convertChunkToFloat32(input + start * dtype.byteSize, dtype: dtype, count: min(chunk, count - start),
                              into: output + start)
    }
}

private func convertChunkToFloat32(_ source: UnsafeRawPointer, dtype: DType, count: Int, into destination: UnsafeMutablePointer<Float>) {
    switch dtype {
    case .f32:
        UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: count * 4)
    case .bf16:
        withAlignedHalves(source, count: count) { ck_bf16_to_f32($0, destination, count) }
    case .f16:
        withAlignedHalves(source, count: count) { ck_f16_to_f32($0, destination, count) }
    case .f64: widen(source, Double.self, count, destination)
    case .i8: widen(source, Int8.self, count, destination)
    case .u8: widen(source, UInt8.self, count, destination)
    case .i16: widen(source, Int16.self, count, destination)
    case .u16: widen(source, UInt16.self, count, destination)
    case .i32: widen(source, Int32.self, count, destination)
    case .u32: widen(source, UInt32.self, count, destination)
    case .i64: widen(source, Int64.self, count, destination)
    case .u64: widen(source, UInt64.self, count, destination)
    case .bool, .f8e4m3, .f8e5m2:
        // Invariant: every reader checks DType.convertsToFloat and throws a CheckpointError first;
        // the GGUF paths (GGUFTensorSource, quantizeRows/dequantizeRows) pass only f32, f16 and bf16.
        preconditionFailure("\(dtype.rawValue) has no Float32 conversion; check DType.convertsToFloat first")
    }
}

/// Narrows Float32 to a stored float dtype (f32, f16 or bf16), rounding to nearest even.
public func convertFromFloat32(_ source: UnsafePointer<Float>, count: Int, to dtype: DType, into destination: UnsafeMutableRawPointer) {
    switch dtype {
    case .f32:
        destination.copyMemory(from: source, byteCount: count * 4)
    case .bf16:
        ck_f32_to_bf16(source, destination.assumingMemoryBound(to: UInt16.self), count)
    case .f16:
        ck_f32_to_f16(source, destination.assumingMemoryBound(to: UInt16.self), count)
    default:
        // Invariant: the writer and produced tensors accept only f32, f16 and bf16 (and throw
        // otherwise); GGUFTensorSource describes every tensor as one of those three, and
        // quantizeRows maps its float types to them.
        preconditionFailure("writing \(dtype.rawValue) from Float32 is not supported")
    }
}

private func withAlignedHalves(_ source: UnsafeRawPointer, count: Int, _ body: (UnsafePointer<UInt16>) -> Void) {
    if Int(bitPattern: source) % MemoryLayout<UInt16>.alignment == 0 {
        body(source.assumingMemoryBound(to: UInt16.self))
    } else {
        let copy = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: count)
        defer { copy.deallocate() }
        UnsafeMutableRawPointer(copy.baseAddress!).copyMemory(from: source, byteCount: count * 2)
        body(copy.baseAddress!)
    }
}

private func widen<T: BinaryInteger>(_ source: UnsafeRawPointer, _: T.Type, _ count: Int, _ destination: UnsafeMutablePointer<Float>) {
    for index in 0..<count {
        destination[index] = Float(source.loadUnaligned(fromByteOffset: index * MemoryLayout<T>.size, as: T.self))
    }
}

private func widen(_ source: UnsafeRawPointer, _: Double.Type, _ count: Int, _ destination: UnsafeMutablePointer<Float>) {
    for index in 0..<count {
        destination[index] = Float(source.loadUnaligned(fromByteOffset: index * 8, as: Double.self))
    }
}
