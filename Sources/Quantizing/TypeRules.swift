import GGUF
import Quantization

/// The rules every GGUF type choice goes through, as llama-quantize applies them
/// (llama-quant.cpp, llama_tensor_get_type): tensors that stay float, and the fallback when a
/// row length is not a multiple of the wanted type's block.
public enum TypeRules {
    /// Norms, biases and routers stay F32 (llama.cpp keeps 1-D tensors and ffn_gate_inp wide).
    public static func staysFloat(_ tensor: GGUFTensorPlan) -> Bool {
        tensor.role.staysFloat || tensor.dimensions.count == 1
    }

    /// llama-quant.cpp's fallback for rows the type's blocks do not tile: Q2_K/Q3_K → Q4_0,
    /// Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0; then F16 if even 32-weight blocks do not fit.
    /// llama.cpp sends IQ2_XXS/IQ2_XS to IQ4_NL, a 32-weight block of Q4_0's size that this
    /// tool does not write; Q4_0 stands in for it.
    public static func fallback(for type: GGMLType) -> GGMLType {
        switch type {
        case .q2_K, .q3_K, .iq2_xxs, .iq2_xs: .q4_0
        case .q4_K: .q5_0
        case .q5_K: .q5_1
        case .q6_K: .q8_0
        default: .f16
        }
    }

    /// The type a tensor actually gets when `wanted` is asked for.
    public static func legal(_ wanted: GGMLType, for tensor: GGUFTensorPlan) -> GGMLType {
        if staysFloat(tensor) { return .f32 }
        var type = wanted
        while tensor.rowLength % type.blockSize != 0 { type = fallback(for: type) }
        return type
    }
}
