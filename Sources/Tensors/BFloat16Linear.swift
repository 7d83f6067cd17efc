import CMatmul
import Synchronization

/// A linear layer computed in bfloat16: `output[t] = weight * input[t]` with `weight` stored as
/// PyTorch does (`outFeatures x inFeatures`, bf16 bits) and the Float32 input rounded to bf16 (to
/// nearest even). Products are accumulated and written in Float32, as PyTorch's bf16 matmul on
/// CPU accumulates before it rounds its output.
public func linearBFloat16(
    input: UnsafePointer<Float>, tokens: Int, inFeatures: Int,
    weight: UnsafePointer<UInt16>, outFeatures: Int,
    output: UnsafeMutablePointer<Float>
) {
    guard tokens > 0 else { return }
    let rounded = BFloat16Buffer(uninitializedCount: tokens * inFeatures)
    convertFromFloat32(input, count: tokens * inFeatures, to: .bf16, into: UnsafeMutableRawPointer(rounded.pointer))
    let kernel = BFloat16LinearKernels.shared.kernel(outFeatures: outFeatures, inFeatures: inFeatures)
    let status = cm_bf16_linear_run(kernel, Int64(tokens), rounded.pointer, weight, output)
    precondition(status == 0, "oneDNN bf16 matmul failed with status \(status) for \(tokens)x\(inFeatures) * \(inFeatures)x\(outFeatures)")
}

/// oneDNN primitives for bf16 linear layers, one per weight shape (the row count is given at run
/// time), made on first use and kept for the life of the process: a model has only a handful of
/// distinct projection shapes, and making one costs about half a millisecond.
final class BFloat16LinearKernels: Sendable {
    static let shared = BFloat16LinearKernels()

    private struct Shape: Hashable { let outFeatures: Int, inFeatures: Int }
    // The handles are immutable after creation and oneDNN allows concurrent execution of one primitive.
    private let kernels = Mutex<[Shape: OpaquePointer]>([:])

    func kernel(outFeatures: Int, inFeatures: Int) -> OpaquePointer {
        kernels.withLock { kernels in
            let shape = Shape(outFeatures: outFeatures, inFeatures: inFeatures)
            if let kernel = kernels[shape] { return kernel }
            guard let kernel = cm_bf16_linear_create(Int64(outFeatures), Int64(inFeatures)) else {
                preconditionFailure("oneDNN could not make a bf16 matmul for \(inFeatures)x\(outFeatures)")
            }
            kernels[shape] = kernel
            return kernel
        }
    }
}

/// The oneDNN kernel bf16 linear layers run on with this CPU (e.g. "gemm:jit"), or nil when
/// oneDNN has no bf16 matrix product for it; probed once, on a small shape.
public let bfloat16MatmulKernel: String? = {
    guard let probe = cm_bf16_linear_create(64, 64) else { return nil }
    defer { cm_bf16_linear_destroy(probe) }
    return String(cString: cm_bf16_linear_kernel(probe))
}()
