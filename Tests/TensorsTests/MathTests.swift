import FixtureSupport
import Foundation
import Tensors
import Testing

/// Each small math function against the values torch/transformers recorded in
/// Fixtures/records/math.json (made by Fixtures/scripts/make_math_records.py).
struct MathTests {
    let record: [String: Any]

    init() throws { record = try Fixtures.record("math.json") }

    func expectClose(_ actual: [Float], _ expected: [Float], tolerance: Float, _ what: String) {
        #expect(actual.count == expected.count, "\(what): count")
        let worst = zip(actual, expected).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
        #expect(worst <= tolerance, "\(what): worst relative error \(worst)")
    }

    @Test func rmsNormMatchesTransformers() {
        let c = record.object("rms_norm")
        let output = rmsNormalized(c.floats("input"), width: c.int("width"), weight: c.floats("weight"), epsilon: Float(c.double("epsilon")))
        expectClose(output, c.floats("output"), tolerance: 1e-6, "rms_norm")
    }

    @Test func softmaxAndLogSumExpMatchTorch() {
        let c = record.object("softmax")
        let input = c.floats("input")
        expectClose(softmax(input), c.floats("output"), tolerance: 1e-6, "softmax")
        let lse = input.withUnsafeBufferPointer { logSumExp($0.baseAddress!, count: $0.count) }
        #expect(abs(lse - c.double("logsumexp")) < 1e-5)
    }

    @Test func activationsMatchTorch() {
        let c = record.object("activations")
        expectClose(c.floats("input").map(silu), c.floats("silu"), tolerance: 1e-6, "silu")
        expectClose(c.floats("input").map(sigmoid), c.floats("sigmoid"), tolerance: 1e-6, "sigmoid")
    }

    /// The vectorised SwiGLU on a stacked row (gate values, then up values of 1) is torch's silu.
    @Test func swiGLUOfStackedRowsMatchesTorchSiLU() {
        let c = record.object("activations")
        let input = c.floats("input")
        let stacked = input + [Float](repeating: 1, count: input.count)
        var output = [Float](repeating: .nan, count: input.count)
        output.withUnsafeMutableBufferPointer { swiGLU(stacked: stacked, rows: 1, width: input.count, into: $0.baseAddress!) }
        expectClose(output, c.floats("silu"), tolerance: 1e-6, "swiGLU")
    }

    @Test func topKMatchesTorch() {
        let c = record.object("top_k")
        let input = c.floats("input")
        let chosen = input.withUnsafeBufferPointer { topKIndices($0.baseAddress!, count: $0.count, k: c.int("k")) }
        #expect(chosen == c.ints("indices"))
    }

    @Test func rotaryEmbeddingMatchesTransformers() throws {
        let c = record.object("rope")
        let rotary = RotaryEmbedding(headDim: c.int("head_dim"), theta: c.double("theta"))
        let table = rotary.table(positions: c.int("positions"))
        var values = c.floats("input")
        let width = c.int("head_dim") * c.int("heads")
        try values.withUnsafeMutableBufferPointer { buffer in
            try table.rotate(buffer.baseAddress!, count: c.int("positions"), stride: width, heads: c.int("heads"))
        }
        expectClose(values, c.floats("output"), tolerance: 2e-6, "rope")
    }

    @Test func halfPrecisionConversionsMatchTorchBitForBit() {
        let c = record.object("conversion")
        let source = c.floats("float32")
        for (dtype, bitsKey, widenedKey) in [(DType.bf16, "bf16_bits", "bf16_as_float32"), (.f16, "f16_bits", "f16_as_float32")] {
            var bits = [UInt16](repeating: 0, count: source.count)
            source.withUnsafeBufferPointer { input in
                bits.withUnsafeMutableBytes { convertFromFloat32(input.baseAddress!, count: source.count, to: dtype, into: $0.baseAddress!) }
            }
            #expect(bits.map(Int.init) == c.ints(bitsKey), "\(dtype) narrowing")
            var widened = [Float](repeating: 0, count: source.count)
            bits.withUnsafeBytes { raw in
                widened.withUnsafeMutableBufferPointer { convertToFloat32(raw.baseAddress!, dtype: dtype, count: source.count, into: $0.baseAddress!) }
            }
            // The record stores ±infinity as ±1e300 (JSON has no infinity); Float(1e300) is infinite.
            #expect(widened == c.floats(widenedKey), "\(dtype) widening")
        }
    }

    @Test(arguments: [0, 1]) func linearMatchesTorch(caseIndex: Int) throws {
        let c = record.objects("linear")[caseIndex]
        let (tokens, inFeatures, outFeatures) = (c.int("tokens"), c.int("in_features"), c.int("out_features"))
        var output = [Float](repeating: 0, count: tokens * outFeatures)
        let input = c.floats("input"), weight = c.floats("weight")
        try output.withUnsafeMutableBufferPointer { out in
            try linear(input: input, tokens: tokens, inFeatures: inFeatures, weight: weight, outFeatures: outFeatures, output: out.baseAddress!)
        }
        expectClose(output, c.floats("output"), tolerance: 1e-5, "linear with \(tokens) token(s)")
    }

    /// oneDNN's bf16 kernel must round the Float32 input to bf16 exactly as torch does and
    /// accumulate in Float32: the record holds the exact product of the rounded operands.
    @Test(arguments: [0, 1]) func bfloat16LinearMatchesTorchRounding(caseIndex: Int) throws {
        let c = record.objects("bf16_linear")[caseIndex]
        let (tokens, inFeatures, outFeatures) = (c.int("tokens"), c.int("in_features"), c.int("out_features"))
        let input = c.floats("input"), weight = c.ints("weight_bf16_bits").map { UInt16($0) }
        var output = [Float](repeating: .nan, count: tokens * outFeatures)
        try output.withUnsafeMutableBufferPointer { out in
            try linearBFloat16(input: input, tokens: tokens, inFeatures: inFeatures, weight: weight,
                           outFeatures: outFeatures, output: out.baseAddress!)
        }
        expectClose(output, c.floats("output"), tolerance: 1e-5, "bf16 linear with \(tokens) token(s)")
    }

    /// The path for CPUs without a native bf16 product: Float32 GEMM over the widened bf16 values.
    @Test(arguments: [0, 1]) func portableBFloat16LinearMatchesTorchRounding(caseIndex: Int) throws {
        let c = record.objects("bf16_linear")[caseIndex]
        let (tokens, inFeatures, outFeatures) = (c.int("tokens"), c.int("in_features"), c.int("out_features"))
        let input = c.floats("input")
        let weight = c.ints("weight_bf16_bits").map { Float(bitPattern: UInt32($0) << 16) }
        var output = [Float](repeating: .nan, count: tokens * outFeatures)
        try output.withUnsafeMutableBufferPointer { out in
            try linearBFloat16(input: input, tokens: tokens, inFeatures: inFeatures, widenedWeight: weight,
                               outFeatures: outFeatures, output: out.baseAddress!)
        }
        expectClose(output, c.floats("output"), tolerance: 1e-5, "portable bf16 linear with \(tokens) token(s)")
    }
}
