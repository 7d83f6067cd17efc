import Checkpoint
import Tensors

/// The SwiGLU feed-forward every expert, shared expert and dense MLP of these families uses:
/// `down(silu(gate(x)) * up(x))`.
struct GatedMLP {
    /// The gate and up projections stacked (gate rows first), computed by one GEMM.
    let gateUp: LinearWeights
    let down: LinearWeights
    /// The tensor names, for observers of linear inputs.
    let gateUpNames: [String], downName: String

    /// `buffers`, when given, are two buffers the weights are read into (reused across experts);
    /// `inPlace` as for `LinearWeights`.
    init(gate: String, up: String, down: String, from source: TensorSource, precision: ComputePrecision,
         buffers: [WeightBuffer]? = nil, inPlace: Bool = false) throws {
        gateUpNames = [gate, up]
        downName = down
        gateUp = try LinearWeights(stacking: [gate, up], from: source, precision: precision, buffer: buffers?[0], inPlace: inPlace)
        self.down = try LinearWeights(stacking: [down], from: source, precision: precision, buffer: buffers?[1], inPlace: inPlace)
        guard gateUp.outFeatures == 2 * self.down.inFeatures else {
            throw CheckpointError(file: down, "takes \(self.down.inFeatures) inputs; \(gate) and \(up) give \(gateUp.outFeatures / 2) each")
        }
    }

    /// Writes the MLP's output for `tokens` rows of `input` into `output`.
    func apply(_ input: UnsafePointer<Float>, tokens: Int, into output: UnsafeMutablePointer<Float>,
               observer: ForwardObserver? = nil) throws {
        let width = down.inFeatures
        let stacked = FloatBuffer(uninitializedCount: tokens * 2 * width)
        try gateUp.apply(input, tokens: tokens, into: stacked.pointer)
        let activated = FloatBuffer(uninitializedCount: tokens * width)
        swiGLU(stacked: stacked.pointer, rows: tokens, width: width, into: activated.pointer)
        observer?.observeInput(of: gateUpNames, input, tokens: tokens, width: gateUp.inFeatures)
        observer?.observeInput(of: [downName], activated.pointer, tokens: tokens, width: width)
        try down.apply(activated.pointer, tokens: tokens, into: output)
    }
}
