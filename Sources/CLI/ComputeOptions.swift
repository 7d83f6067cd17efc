import ArgumentParser
import Foundation
import Inference
import Tensors

extension ComputePrecision: ExpressibleByArgument {}

/// The options every command that runs the forward pass shares.
struct ComputeOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Precision of the linear layers: f32 (matches transformers in float32; use for quality numbers) or bf16 (bf16 weights and inputs, Float32 accumulation, as transformers in bf16; about twice the matrix throughput on CPUs with AVX512-BF16, the same numbers through the f32 GEMM elsewhere).",
        valueName: "f32|bf16"))
    var compute: ComputePrecision = .float32

    @Option(parsing: .unconditional, help: ArgumentHelp("Threads for the matrix libraries (default: one per core; at most 4 per core).", valueName: "n"))
    var threads: Int?

    /// More threads than this only oversubscribes the cores (and an absurd count exhausts the
    /// OpenMP runtime, which then crashes instead of failing).
    static var maximumThreads: Int { 4 * Cores.available }

    func validate() throws {
        if let threads, threads < 1 || threads > Self.maximumThreads {
            throw ValidationError("--threads \(threads): must be between 1 and \(Self.maximumThreads) (4 per core here)")
        }
    }

    /// Checks the environment and applies the thread count; call before any computation.
    func apply() throws {
        try InstructionSet.checkOverride()
        if let threads { BLAS.threads = threads }
    }
}
