import Architectures
import Checkpoint
import Foundation
import Tensors

/// Grouped-query self-attention with RoPE, as the Mixtral family computes it, over a batch of
/// independent sequences.
struct Attention {
    let model: ModelDescription
    let query: LinearWeights, key: LinearWeights, value: LinearWeights, output: LinearWeights
    let queryNorm: FloatBuffer?, keyNorm: FloatBuffer?
    let rotary: RotaryEmbedding
    /// The projection tensors, which bf16 compute uses in place: release them after `apply`.
    let projectionNames: [String]

    init(layer: Int, model: ModelDescription, source: TensorSource, precision: ComputePrecision, rotary: RotaryEmbedding) throws {
        let names = model.spec.tensors
        self.model = model
        self.rotary = rotary
        projectionNames = [names.query, names.key, names.value, names.output].map { $0.filled(layer: layer) }
        let projections = try projectionNames.map { try LinearWeights($0, from: source, precision: precision, inPlace: true) }
        (query, key, value, output) = (projections[0], projections[1], projections[2], projections[3])
        if model.spec.attention.queryKeyNorm != .none, let q = names.queryNorm, let k = names.keyNorm {
            queryNorm = try readVector(q.filled(layer: layer), from: source)
            keyNorm = try readVector(k.filled(layer: layer), from: source)
        } else {
            queryNorm = nil
            keyNorm = nil
        }
    }

    /// Adds the attention output for `normed` (the input-normalised hidden states) to `residual`.
    func apply(normed: FloatBuffer, batch: TokenBatch, residual: FloatBuffer, timings: ForwardTimings,
               observer: ForwardObserver? = nil) throws {
        let tokens = batch.tokenCount
        let headDim = model.headDim
        let queryWidth = model.attentionHeads * headDim
        let keyValueWidth = model.keyValueHeads * headDim
        let q = FloatBuffer(uninitializedCount: tokens * queryWidth)
        let k = FloatBuffer(uninitializedCount: tokens * keyValueWidth)
        let v = FloatBuffer(uninitializedCount: tokens * keyValueWidth)
        try query.apply(normed.pointer, tokens: tokens, into: q.pointer)
        try key.apply(normed.pointer, tokens: tokens, into: k.pointer)
        try value.apply(normed.pointer, tokens: tokens, into: v.pointer)
        observer?.observeInput(of: Array(projectionNames[0..<3]), normed.pointer, tokens: tokens, width: model.hiddenSize)

        if let queryNorm, let keyNorm {
            // Per head: rows of head_dim values; whole projection: one row per token.
            let perHead = model.spec.attention.queryKeyNorm == .perHead
            let qWidth = perHead ? headDim : queryWidth, kWidth = perHead ? headDim : keyValueWidth
            rmsNormalize(q.pointer, count: q.count / qWidth, width: qWidth, weight: queryNorm.pointer, epsilon: model.normEpsilon)
            rmsNormalize(k.pointer, count: k.count / kWidth, width: kWidth, weight: keyNorm.pointer, epsilon: model.normEpsilon)
        }
        if let clip = model.clipQKV {
            for buffer in [q, k, v] {
                for index in 0..<buffer.count { buffer[index] = min(max(buffer[index], -clip), clip) }
            }
        }
        for (sequence, start) in zip(batch.sequences, batch.offsets) {
            for position in 0..<sequence.count {
                let token = start + position
                rotary.apply(q.pointer + token * queryWidth, heads: model.attentionHeads, position: position)
                rotary.apply(k.pointer + token * keyValueWidth, heads: model.keyValueHeads, position: position)
            }
        }

        let context = FloatBuffer(uninitializedCount: tokens * queryWidth)
        let kernel = CausalAttention(heads: model.attentionHeads, keyValueHeads: model.keyValueHeads,
                                     headDim: headDim, window: model.slidingWindow)
        let sequences = zip(batch.offsets, batch.sequences).map { $0..<($0 + $1.count) }
        try timings.measureAttentionKernel(flops: kernel.flops(sequences: sequences)) {
            try kernel.apply(q: q.pointer, k: k.pointer, v: v.pointer, sequences: sequences, into: context.pointer, threads: BLAS.threads)
        }
        let projected = FloatBuffer(uninitializedCount: tokens * model.hiddenSize)
        observer?.observeInput(of: [projectionNames[3]], context.pointer, tokens: tokens, width: queryWidth)
        try output.apply(context.pointer, tokens: tokens, into: projected.pointer)
        for index in 0..<residual.count { residual[index] += projected[index] }
    }
}
