/// The routing of one sparse layer for every token of a batch, as later stages (calibration,
/// pruning statistics, merging) need it.
public struct RoutingTrace: Sendable {
    public let layer: Int
    public let tokenCount: Int
    public let expertCount: Int
    public let expertsPerToken: Int
    /// Router logits, `tokenCount x expertCount`, row-major.
    public let routerLogits: [Float]
    /// Softmax of the logits over all experts, `tokenCount x expertCount`.
    public let probabilities: [Float]
    /// Chosen experts, `tokenCount x expertsPerToken`, best first.
    public let selectedExperts: [Int]
    /// Their weights as the block applies them (renormalised when the family does).
    public let selectedWeights: [Float]
}

/// One expert's work in one layer: the tokens routed to it, its inputs (the normalised hidden
/// states) and its outputs before the routing weight is applied.
public struct ExpertActivations {
    public let layer: Int
    public let expert: Int
    /// Indices into the batch's tokens.
    public let tokens: [Int]
    public let routingWeights: [Float]
    /// `tokens.count x hiddenSize`.
    public let inputs: UnsafeBufferPointer<Float>
    /// `tokens.count x hiddenSize`.
    public let outputs: UnsafeBufferPointer<Float>
}

/// A sparse block's effect on the residual stream, for scores that weigh tokens by how much the
/// routed experts change them (EASY-EP's token contribution).
public struct MoEBlockActivations {
    public let layer: Int
    /// The block's input (the post-attention-normalised states), `tokens x hiddenSize`.
    public let input: UnsafeBufferPointer<Float>
    /// The residual stream entering the block (after attention), `tokens x hiddenSize`.
    public let residual: UnsafeBufferPointer<Float>
    /// The weighted sum of the routed experts' outputs, without any shared expert, `tokens x hiddenSize`.
    public let routedOutput: UnsafeBufferPointer<Float>
}

/// The rows entering weight matrices, as llama.cpp's imatrix collects them: `tokens x width`
/// values that every tensor in `weights` multiplies (q, k and v share their input; an expert's
/// gate and up share the tokens routed to it).
public struct LinearInput {
    public let weights: [String]
    public let tokens: Int
    public let width: Int
    public let rows: UnsafeBufferPointer<Float>
}

/// Watches the batch pass through each sparse layer, without a second forward implementation.
/// Expert activations are large, so they are delivered only when asked for; the buffers are
/// valid only during the call.
public protocol ForwardObserver: AnyObject {
    var wantsExpertActivations: Bool { get }
    /// Whether `observe(block:)` is wanted without the per-expert activations (it is always
    /// delivered to observers that want those).
    var wantsBlockActivations: Bool { get }
    func observe(routing: RoutingTrace)
    func observe(expert: ExpertActivations)
    /// After every routed expert of the layer has run, before the shared expert is added.
    func observe(block: MoEBlockActivations)
    /// Whether `observe(linearInput:)` is wanted: the input of every quantizable weight matrix.
    var wantsLinearInputs: Bool { get }
    func observe(linearInput: LinearInput)
}

extension ForwardObserver {
    public var wantsExpertActivations: Bool { false }
    public var wantsBlockActivations: Bool { false }
    public func observe(expert: ExpertActivations) {}
    public func observe(block: MoEBlockActivations) {}
    public var wantsLinearInputs: Bool { false }
    public func observe(linearInput: LinearInput) {}
}

extension ForwardObserver {
    /// Delivers `rows` as the input of `weights` when linear inputs are wanted.
    func observeInput(of weights: [String], _ rows: UnsafePointer<Float>, tokens: Int, width: Int) {
        guard wantsLinearInputs else { return }
        observe(linearInput: LinearInput(weights: weights, tokens: tokens, width: width,
                                         rows: UnsafeBufferPointer(start: rows, count: tokens * width)))
    }
}

/// Records every routing trace; what `forward` prints and the fixture tests compare.
public final class RoutingRecorder: ForwardObserver {
    public private(set) var traces: [RoutingTrace] = []
    public init() {}
    public func observe(routing: RoutingTrace) { traces.append(routing) }
}
