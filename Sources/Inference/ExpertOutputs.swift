import Architectures
import Checkpoint
import Tensors

/// One routed expert run on rows of inputs of its layer, whatever the router chose: what output
/// similarity for merging and NAEE's subset search need (an expert's answer for tokens it was not
/// routed). `inputs` are post-attention-normalised states, `rows x hiddenSize`.
public func routedExpertOutputs(layer: Int, expert: Int, inputs: UnsafePointer<Float>, rows: Int,
                                model: ModelDescription, source: TensorSource,
                                precision: ComputePrecision = .float32) throws -> FloatBuffer {
    let names = model.spec.tensors
    let mlp = try GatedMLP(gate: names.expertGate.filled(layer: layer, expert: expert),
                           up: names.expertUp.filled(layer: layer, expert: expert),
                           down: names.expertDown.filled(layer: layer, expert: expert),
                           from: source, precision: precision)
    let outputs = FloatBuffer(uninitializedCount: rows * model.hiddenSize)
    try mlp.apply(inputs, tokens: rows, into: outputs.pointer)
    return outputs
}
