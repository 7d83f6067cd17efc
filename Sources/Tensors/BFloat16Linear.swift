import CMatmul
import Synchronization

/// A linear layer computed in bfloat16: `output[t] = weight * input[t]` with `weight` stored as
/// PyTorch does (`outFeatures x inFeatures`, bf16 bits) and the Float32 input rounded to bf16 (to
/// nearest even). Products are accumulated and written in Float32, as PyTorch's bf16 matmul on
/// CPU accumulates before it rounds its output.
///
/// Where oneDNN has a native bf16 matrix product (AVX512-BF16, AMX) it runs that; elsewhere the
/// same numbers come from the Float32 product of the operands widened from bf16: a product of two
/// bf16 values is exact in Float32, so only the summation order differs.
public func linearBFloat16(
    input: UnsafePointer<Float>, tokens: Int, inFeatures: Int,
    weight: UnsafePointer<UInt16>, outFeatures: Int,
    output: UnsafeMutablePointer<Float>
) throws {
    guard tokens > 0 else { return }
    guard let kernel = try BFloat16Matmul.nativeKernel(outFeatures: outFeatures, inFeatures: inFeatures) else {
        let widened = FloatBuffer(uninitializedCount: outFeatures * inFeatures)
        convertToFloat32(weight, dtype: .bf16, count: outFeatures * inFeatures, into: widened.pointer)
        try linearBFloat16(input: input, tokens: tokens, inFeatures: inFeatures, widenedWeight: widened.pointer,
                           outFeatures: outFeatures, output: output)
        return
    }
    let rounded = BFloat16Buffer(uninitializedCount: tokens * inFeatures)
    convertFromFloat32(input, count: tokens * inFeatures, to: .bf16, into: UnsafeMutableRawPointer(rounded.pointer))
    let status = cm_bf16_linear_run(kernel, Int64(tokens), rounded.pointer, weight, output)
    guard status == 0 else {
        throw ComputeError("oneDNN's bf16 matrix product failed (status \(status)) for \(tokens)x\(inFeatures) times \(inFeatures)x\(outFeatures)")
    }
}

/// The portable bf16 linear layer: `widenedWeight` holds bf16 values widened to Float32 (exact),
/// the input is rounded to bf16 and widened the same way, and the Float32 GEMM does the rest.
public func linearBFloat16(
    input: UnsafePointer<Float>, tokens: Int, inFeatures: Int,
    widenedWeight: UnsafePointer<Float>, outFeatures: Int,
    output: UnsafeMutablePointer<Float>
) throws {
    guard tokens > 0 else { return }
    let rounded = FloatBuffer(uninitializedCount: tokens * inFeatures)
    rounded.pointer.update(from: input, count: tokens * inFeatures)
    roundToBFloat16(rounded.pointer, count: tokens * inFeatures)
    try linear(input: rounded.pointer, tokens: tokens, inFeatures: inFeatures, weight: widenedWeight,
               outFeatures: outFeatures, output: output)
}

/// Rounds Float32 values in place to the nearest bf16 value (ties to even), kept as Float32.
public func roundToBFloat16(_ values: UnsafeMutablePointer<Float>, count: Int) {
    let chunk = 4096
    let bits = BFloat16Buffer(uninitializedCount: min(count, chunk))
    var start = 0
    while start < count {
        let length = min(chunk, count - start)
        convertFromFloat32(values + start, count: length, to: .bf16, into: UnsafeMutableRawPointer(bits.pointer))
        convertToFloat32(bits.pointer, dtype: .bf16, count: length, into: values + start)
        start += length
    }
}

/// Which bf16 matrix product this CPU runs, and oneDNN's primitives for it.
public enum BFloat16Matmul {
    /// oneDNN's kernel for bf16 linear layers on this CPU (e.g. "brg:avx512_core_bf16"), or nil
    /// when it has none and bf16 compute runs through the Float32 GEMM; probed once.
    public static let nativeKernelName: String? = {
        guard let probe = cm_bf16_linear_create(64, 64) else { return nil }
        defer { cm_bf16_linear_destroy(probe) }
        return String(cString: cm_bf16_linear_kernel(probe))
    }()

    /// What `eval --json` reports as the bf16 kernel.
    public static var kernelDescription: String {
        nativeKernelName.map { "oneDNN bf16 \($0)" } ?? "f32 GEMM over bf16-rounded operands (oneDNN has no bf16 matrix product for this CPU)"
    }

    /// The primitive for one weight shape, or nil when this CPU has no native bf16 product.
    static func nativeKernel(outFeatures: Int, inFeatures: Int) throws -> OpaquePointer? {
        guard nativeKernelName != nil else { return nil }
        return try Kernels.shared.kernel(outFeatures: outFeatures, inFeatures: inFeatures)
    }

    /// One primitive per weight shape (the row count is given at run time), made on first use and
    /// kept for the life of the process: a model has only a handful of distinct projection
    /// shapes, and making one costs about half a millisecond.
    private final class Kernels: Sendable {
        static let shared = Kernels()

        private struct Shape: Hashable { let outFeatures: Int, inFeatures: Int }
        // The handles are immutable after creation and oneDNN allows concurrent execution of one primitive.
        private let kernels = Mutex<[Shape: OpaquePointer]>([:])

        func kernel(outFeatures: Int, inFeatures: Int) throws -> OpaquePointer {
            try kernels.withLock { kernels in
                let shape = Shape(outFeatures: outFeatures, inFeatures: inFeatures)
                if let kernel = kernels[shape] { return kernel }
                guard let kernel = cm_bf16_linear_create(Int64(outFeatures), Int64(inFeatures)) else {
                    throw ComputeError("oneDNN could not make a bf16 matrix product for \(inFeatures) inputs and \(outFeatures) outputs")
                }
                kernels[shape] = kernel
                return kernel
            }
        }
    }
}
