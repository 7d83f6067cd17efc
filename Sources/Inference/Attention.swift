import Architectures
import Checkpoint
import Foundation
import Tensors

/// Grouped-query self-attention with RoPE, as the Mixtral family computes it, over a batch of
/// independent sequences.
struct Attention {
    let model: ModelDescription
    /// The query, key and value projections stacked into one matrix: one GEMM of
    /// `heads + 2 * keyValueHeads` head widths instead of three narrower ones (the key and value
    /// GEMMs alone are a quarter of the query's width under 4:1 grouping).
    let queryKeyValue: LinearWeights
    let output: LinearWeights
    let queryNorm: FloatBuffer?, keyNorm: FloatBuffer?
    /// The projection tensors, which bf16 compute uses in place: release them after `apply`.
    let projectionNames: [String]

    init(layer: Int, model: ModelDescription, source: TensorSource, precision: ComputePrecision) throws {
        let names = model.spec.tensors
        self.model = model
        projectionNames = [names.query, names.key, names.value, names.output].map { $0.filled(layer: layer) }
        queryKeyValue = try LinearWeights(stacking: Array(projectionNames[0..<3]), from: source, precision: precision, inPlace: true)
        output = try LinearWeights(projectionNames[3], from: source, precision: precision, inPlace: true)
        if model.spec.attention.queryKeyNorm != .none, let q = names.queryNorm, let k = names.keyNorm {
            queryNorm = try readVector(q.filled(layer: layer), from: source)
            keyNorm = try readVector(k.filled(layer: layer), from: source)
        } else {
            queryNorm = nil
            keyNorm = nil
        }
    }

    /// Adds the attention output for `normed` (the input-normalised hidden states) to `residual`.
    /// `rotary` covers the batch's longest sequence.
    func apply(normed: FloatBuffer, batch: TokenBatch, rotary: RotaryTable, residual: FloatBuffer, timings: ForwardTimings,
               observer: ForwardObserver? = nil) throws {
        let tokens = batch.tokenCount
        let headDim = model.headDim
        let queryWidth = model.attentionHeads * headDim
        let keyValueWidth = model.keyValueHeads * headDim
        // One row per token: its query heads, then its key heads, then its value heads.
        let rowWidth = queryWidth + 2 * keyValueWidth
        let projected = FloatBuffer(uninitializedCount: tokens * rowWidth)
        try queryKeyValue.apply(normed.pointer, tokens: tokens, into: projected.pointer)
        observer?.observeInput(of: Array(projectionNames[0..<3]), normed.pointer, tokens: tokens, width: model.hiddenSize)
        let q = projected.pointer, k = q + queryWidth, v = k + keyValueWidth

        if let queryNorm, let keyNorm {
            // Per head: rows of head_dim values; whole projection: one row per token.
            let perHead = model.spec.attention.queryKeyNorm == .perHead
            for token in 0..<tokens {
                rmsNormalize(q + token * rowWidth, count: perHead ? model.attentionHeads : 1, width: perHead ? headDim : queryWidth,
                             weight: queryNorm.pointer, epsilon: model.normEpsilon)
                rmsNormalize(k + token * rowWidth, count: perHead ? model.keyValueHeads : 1, width: perHead ? headDim : keyValueWidth,
                             weight: keyNorm.pointer, epsilon: model.normEpsilon)
            }
        }
        if let clip = model.clipQKV {
            for index in 0..<projected.count { projected[index] = min(max(projected[index], -clip), clip) }
        }
        // Keys and values packed again: the kernel walks a block of keys for every block of
        // queries, and rows 6 KB apart (the fused layout under Mixtral's shapes) cost it ~20% on
        // a 512 KB L2; the queries are copied into the kernel's blocks anyway.
        let keys = FloatBuffer(uninitializedCount: tokens * keyValueWidth)
        let values = FloatBuffer(uninitializedCount: tokens * keyValueWidth)
        for token in 0..<tokens {
            (keys.pointer + token * keyValueWidth).update(from: k + token * rowWidth, count: keyValueWidth)
            (values.pointer + token * keyValueWidth).update(from: v + token * rowWidth, count: keyValueWidth)
        }
        for (sequence, start) in zip(batch.sequences, batch.offsets) {
            try rotary.rotate(q + start * rowWidth, count: sequence.count, stride: rowWidth, heads: model.attentionHeads)
            try rotary.rotate(keys.pointer + start * keyValueWidth, count: sequence.count, stride: keyValueWidth,
                              heads: model.keyValueHeads)
        }

        let context = FloatBuffer(uninitializedCount: tokens * queryWidth)
        let kernel = CausalAttention(heads: model.attentionHeads, keyValueHeads: model.keyValueHeads,
                                     headDim: headDim, window: model.slidingWindow)
        let sequences = zip(batch.offsets, batch.sequences).map { $0..<($0 + $1.count) }
        try timings.measureAttentionKernel(flops: kernel.flops(sequences: sequences)) {
            try kernel.apply(q: q, k: keys.pointer, v: values.pointer, queryStride: rowWidth,
                             sequences: sequences, into: context.pointer, threads: BLAS.threads)
        }
        let attended = FloatBuffer(uninitializedCount: tokens * model.hiddenSize)
        observer?.observeInput(of: [projectionNames[3]], context.pointer, tokens: tokens, width: queryWidth)
        try output.apply(context.pointer, tokens: tokens, into: attended.pointer)
        for index in 0..<residual.count { residual[index] += attended[index] }
    }
}
