import Architectures
import Checkpoint
import Tensors

/// Runs a batch of sequences through a model one decoder layer at a time: every sequence passes
/// layer L before any enters layer L+1, so only one layer's weights (and, in sparse layers, one
/// expert's) are in memory at once, and observers see each layer's routing for the whole batch.
public final class ForwardPass {
    public let model: ModelDescription
    public let source: TensorSource
    public let precision: ComputePrecision
    /// Accumulated over every call; read after a run.
    public let timings = ForwardTimings()
    private let rotary: RotaryEmbedding
    /// The rotary table of the longest sequence seen so far, shared by every layer.
    private var rotaryTable: RotaryTable?

    /// Experts masked out of routing, by layer: their router logits are set to −∞ before the
    /// softmax, so every token is routed as if they were not there (the pass NAEE's enumeration
    /// scores, and what a pruned checkpoint must reproduce).
    public let maskedExperts: [Int: Set<Int>]

    public init(model: ModelDescription, source: TensorSource, precision: ComputePrecision = .float32,
                maskedExperts: [Int: Set<Int>] = [:]) {
        self.model = model
        self.source = source
        self.precision = precision
        self.maskedExperts = maskedExperts
        rotary = RotaryEmbedding(headDim: model.headDim, theta: model.ropeTheta)
    }

    /// The final-normalised hidden states of every token (`batch.tokenCount x hiddenSize`).
    /// `progress` is called after each layer with (layers done, layer count).
    public func hiddenStates(_ batch: TokenBatch, observer: ForwardObserver? = nil,
                             progress: ((Int, Int) -> Void)? = nil) throws -> FloatBuffer {
        let states = try embedding(of: batch)
        for layer in 0..<model.layerCount {
            try applyLayer(layer, to: states, batch: batch, observer: observer)
            progress?(layer + 1, model.layerCount)
        }
        try finish(states, batch: batch, observer: observer)
        return states
    }

    /// The residual stream entering layer 0: the embedding rows of the batch's ids.
    public func embedding(of batch: TokenBatch) throws -> FloatBuffer {
        for id in batch.ids where id < 0 || id >= model.vocabularySize {
            throw InputError("\(model.configPath): token id \(id) is outside the model's vocabulary (0..<\(model.vocabularySize))")
        }
        let states = try embed(batch.ids)
        try checkFinite(states, after: "the embedding of the input ids")
        return states
    }

    /// Runs decoder layer `layer` on the residual stream `states` in place: callers that quantize
    /// layer by layer (GPTQ) keep the stream between layers instead of rerunning the model.
    public func applyLayer(_ layer: Int, to states: FloatBuffer, batch: TokenBatch, observer: ForwardObserver? = nil) throws {
        let normed = FloatBuffer(count: states.count)
        let names = model.spec.tensors
        let inputNorm = try readVector(names.inputNorm.filled(layer: layer), from: source)
        normalize(states, into: normed, weight: inputNorm)
        let attention = try timings.measureWeights { try Attention(layer: layer, model: model, source: source, precision: precision) }
        let rotary = rotaryTable(covering: batch)
        try timings.measureAttention {
            try attention.apply(normed: normed, batch: batch, rotary: rotary, residual: states, timings: timings, observer: observer)
        }
        source.release(attention.projectionNames)
        try checkFinite(states, after: "layer \(layer)'s attention")

        let postNorm = try readVector(names.postAttentionNorm.filled(layer: layer), from: source)
        normalize(states, into: normed, weight: postNorm)
        switch model.feedForward[layer] {
        case .dense:
            let mlp = try GatedMLP(gate: names.denseGate.filled(layer: layer), up: names.denseUp.filled(layer: layer),
                                   down: names.denseDown.filled(layer: layer), from: source, precision: precision)
            let output = FloatBuffer(uninitializedCount: states.count)
            try mlp.apply(normed.pointer, tokens: batch.tokenCount, into: output.pointer, observer: observer)
            for index in 0..<states.count { states[index] += output[index] }
        case .sparse(let shape):
            let block = try SparseMoEBlock(layer: layer, shape: shape, model: model, source: source, precision: precision,
                                           maskedExperts: maskedExperts[layer] ?? [])
            try block.apply(normed: normed, tokens: batch.tokenCount, residual: states, source: source, observer: observer, timings: timings)
        }
        try checkFinite(states, after: "layer \(layer)'s feed-forward block")
    }

    /// The final norm, in place; the output head's input is shown to observers of linear inputs.
    public func finish(_ states: FloatBuffer, batch: TokenBatch, observer: ForwardObserver? = nil) throws {
        let finalNorm = try readVector(model.spec.tensors.finalNorm, from: source)
        normalize(states, into: states, weight: finalNorm)
        try checkFinite(states, after: "the final norm")
        observer?.observeInput(of: [model.outputHeadName(in: source)], states.pointer, tokens: batch.tokenCount, width: model.hiddenSize)
    }

    private func rotaryTable(covering batch: TokenBatch) -> RotaryTable {
        let longest = batch.sequences.map(\.count).max() ?? 0
        if let rotaryTable, rotaryTable.positions >= longest { return rotaryTable }
        let table = rotary.table(positions: longest)
        rotaryTable = table
        return table
    }

    /// A NaN or infinity is reported where it first appears (a bad config value or weight), not
    /// carried on into a NaN perplexity.
    private func checkFinite(_ states: FloatBuffer, after stage: String) throws {
        guard let index = firstNonFinite(states.pointer, count: states.count) else { return }
        throw NumericalError(model: model, "hidden state is \(states[index]) after \(stage) (token \(index / model.hiddenSize))")
    }

    /// The language-model head, to turn final hidden states into logits.
    public func outputHead() throws -> OutputHead {
        try OutputHead(model: model, source: source, precision: precision)
    }

    /// The embedding rows of `ids`, read row by row from the source.
    private func embed(_ ids: [Int]) throws -> FloatBuffer {
        let states = FloatBuffer(uninitializedCount: ids.count * model.hiddenSize)
        try source.readFloat32Rows(model.spec.tensors.embedding, rows: ids, into: states.pointer)
        return states
    }

    private func normalize(_ input: FloatBuffer, into output: FloatBuffer, weight: FloatBuffer) {
        if input !== output { output.pointer.update(from: input.pointer, count: input.count) }
        rmsNormalize(output.pointer, count: output.count / model.hiddenSize, width: model.hiddenSize,
                     weight: weight.pointer, epsilon: model.normEpsilon)
    }
}

/// The language-model head, loaded once and applied to rows of final hidden states.
public struct OutputHead {
    private let projection: LinearWeights
    private let model: ModelDescription
    public var vocabularySize: Int { projection.outFeatures }

    init(model: ModelDescription, source: TensorSource, precision: ComputePrecision) throws {
        self.model = model
        // In place under bf16 compute: the head is used for every row, and a copy would be as large.
        projection = try LinearWeights(model.outputHeadName(in: source), from: source, precision: precision, inPlace: true)
    }

    /// Logits of `rows` consecutive hidden-state rows starting at `states`.
    public func logits(_ states: UnsafePointer<Float>, rows: Int) throws -> FloatBuffer {
        let output = FloatBuffer(uninitializedCount: rows * vocabularySize)
        try logits(states, rows: rows, into: output.pointer)
        return output
    }

    /// Writes the logits of `rows` hidden-state rows into `output` (`rows x vocabularySize`).
    public func logits(_ states: UnsafePointer<Float>, rows: Int, into output: UnsafeMutablePointer<Float>) throws {
        try projection.apply(states, tokens: rows, into: output)
        if let index = firstNonFinite(output, count: rows * vocabularySize) {
            throw NumericalError(model: model, "logit is \(output[index]) (row \(index / vocabularySize), token id \(index % vocabularySize)) after the output head")
        }
    }
}
