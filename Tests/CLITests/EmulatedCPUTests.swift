import FixtureSupport
import Foundation
import Testing

/// The built binary on CPUs this machine is not: qemu's user-mode emulation reports the CPU
/// model's CPUID and raises SIGILL on any instruction that model lacks (checked: an FMA under
/// Westmere dies with signal 4). Westmere has no AVX at all, Haswell has AVX2 but no AVX-512. The
/// Float32 perplexity must be the native one, and bf16 compute must run through the f32 GEMM.
///
/// scripts/test.sh installs qemu-user; under CI a missing qemu fails instead of skipping. The test
/// runs once, in the uncapped pass (MOE_COMPRESS_MAX_ISA unset), since emulation covers the rest.
struct EmulatedCPUTests {
    static let qemu = "/usr/bin/qemu-x86_64"
    static var enabled: Bool {
        let environment = ProcessInfo.processInfo.environment
        guard (environment["MOE_COMPRESS_MAX_ISA"] ?? "").isEmpty else { return false }
        return FileManager.default.isExecutableFile(atPath: qemu) || environment["CI"] == "true"
    }

    /// (qemu CPU model, the OpenBLAS kernel family that CPU gets, our kernels' level, oneDNN's).
    @Test(.enabled(if: enabled), arguments: [
        ("Westmere", "Nehalem", "scalar", "sse41"),
        ("Haswell", "Haswell", "avx2", "avx2"),
    ])
    func evalOnAnEmulatedCPU(cpu: String, openBLASCore: String, isa: String, oneDNNISA: String) throws {
        let arguments = ["eval", "Fixtures/default-model", "--text", "Fixtures/text/heldout.txt",
                         "--max-tokens", "256", "--seq-len", "128", "--json"]
        let native = try report(try MoECompressBinary.run(arguments))
        for compute in ["f32", "bf16"] {
            // OPENBLAS_CORETYPE is set by this environment for the host CPU; the emulated one needs its own.
            let result = try MoECompressBinary.run(
                ["-cpu", cpu, MoECompressBinary.url.path] + arguments + ["--compute", compute],
                executable: URL(fileURLWithPath: Self.qemu), environment: ["OPENBLAS_CORETYPE": openBLASCore])
            let emulated = try report(result)
            #expect(emulated["isa"] as? String == isa)
            #expect(emulated["onednn_isa"] as? String == oneDNNISA)
            let difference = abs(emulated.double("perplexity") - native.double("perplexity")) / native.double("perplexity")
            if compute == "f32" {
                #expect(difference < 1e-5, "\(cpu): \(emulated.double("perplexity")) vs native \(native.double("perplexity"))")
            } else {
                #expect((emulated["bf16_kernel"] as? String)?.contains("f32 GEMM") == true)
                #expect(difference < 1e-2, "\(cpu) bf16: \(emulated.double("perplexity")) vs native f32 \(native.double("perplexity"))")
            }
        }
    }

    private func report(_ result: CommandResult) throws -> [String: Any] {
        #expect(result.status == 0, "\(result.stderr)")
        return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? [:]
    }
}
