/// The precision of the forward pass's linear layers.
///
/// `float32` widens every weight and reproduces transformers' float32 logits (to ~1e-5); it is
/// what quality numbers are measured with. `bfloat16` keeps bf16 weights as stored and rounds
/// each linear layer's input to bf16 (accumulating in Float32), as transformers does when a model
/// is loaded in bf16: about twice the matrix throughput on CPUs with AVX512-BF16, at bf16's
/// accuracy. Routers, norms, attention scores and the residual stream stay Float32 either way.
public enum ComputePrecision: String, Sendable, CaseIterable {
    case float32 = "f32"
    case bfloat16 = "bf16"
}
