import ArgumentParser
import Inference
import Tensors

extension ComputePrecision: ExpressibleByArgument {}

/// The options every command that runs the forward pass shares.
struct ComputeOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Precision of the linear layers: f32 (matches transformers in float32; use for quality numbers) or bf16 (bf16 weights and inputs, Float32 accumulation, as transformers in bf16; about twice the matrix throughput on CPUs with AVX512-BF16).",
        valueName: "f32|bf16"))
    var compute: ComputePrecision = .float32

    @Option(help: "Threads for the matrix libraries (default: one per core).")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    /// Applies the thread count and checks that the precision can run here; call before any
    /// computation.
    func apply() throws {
        if let threads { BLAS.threads = threads }
        if compute == .bfloat16 && bfloat16MatmulKernel == nil {
            throw InputError("--compute bf16: oneDNN has no bf16 matrix product for this CPU; use --compute f32")
        }
    }
}
