import Checkpoint
import Tensors

/// The SwiGLU feed-forward every expert, shared expert and dense MLP of these families uses:
/// `down(silu(gate(x)) * up(x))`.
struct GatedMLP {
    let gate: LinearWeights, up: LinearWeights, down: LinearWeights

    /// `buffers`, when given, are three buffers the weights are read into (reused across experts).
    init(gate: String, up: String, down: String, from source: TensorSource, precision: ComputePrecision,
         buffers: [WeightBuffer]? = nil) throws {
        self.gate = try LinearWeights(gate, from: source, precision: precision, buffer: buffers?[0])
        self.up = try LinearWeights(up, from: source, precision: precision, buffer: buffers?[1])
        self.down = try LinearWeights(down, from: source, precision: precision, buffer: buffers?[2])
    }

    /// Writes the MLP's output for `tokens` rows of `input` into `output`.
    func apply(_ input: UnsafePointer<Float>, tokens: Int, into output: UnsafeMutablePointer<Float>) {
        let width = gate.outFeatures
        let gated = FloatBuffer(count: tokens * width)
        let upped = FloatBuffer(count: tokens * width)
        gate.apply(input, tokens: tokens, into: gated.pointer)
        up.apply(input, tokens: tokens, into: upped.pointer)
        swiGLU(gate: gated.pointer, up: upped.pointer, count: tokens * width)
        down.apply(gated.pointer, tokens: tokens, into: output)
    }
}
