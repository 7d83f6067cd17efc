import Checkpoint
import Tensors

/// The SwiGLU feed-forward every expert, shared expert and dense MLP of these families uses:
/// `down(silu(gate(x)) * up(x))`.
struct GatedMLP {
    let gate: LinearWeights, up: LinearWeights, down: LinearWeights

    /// `storage`, when given, holds three buffers the weights are read into (reused across experts).
    init(gate: String, up: String, down: String, from source: TensorSource, storage: [FloatBuffer] = []) throws {
        self.gate = try LinearWeights(gate, from: source, storage: storage.first)
        self.up = try LinearWeights(up, from: source, storage: storage.dropFirst().first)
        self.down = try LinearWeights(down, from: source, storage: storage.dropFirst(2).first)
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
