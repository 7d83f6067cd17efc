import CKernels
import Foundation

/// The instruction-set level of this package's own kernels (SwiGLU, softmax, conversions): the
/// CPU's, capped by MOE_COMPRESS_MAX_ISA, which also caps oneDNN's (see CPUFeatures.c).
public enum InstructionSet {
    public static let variable = "MOE_COMPRESS_MAX_ISA"

    /// "scalar", "avx2" or "avx512".
    public static var current: String { String(cString: ck_isa_name(ck_isa())) }
    /// The CPU's own level.
    public static var detected: String { String(cString: ck_isa_name(ck_detected_isa())) }

    /// Rejects a value of MOE_COMPRESS_MAX_ISA that names no level (the kernels would fall back
    /// to scalar, which the user did not ask for).
    public static func checkOverride(environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        guard let value = environment[variable], !value.isEmpty else { return }
        guard ck_parse_isa(value) >= 0 else {
            throw ComputeError("\(variable)=\(value) is not one of scalar, avx2, avx512")
        }
    }
}
