import Calibration
import FixtureSupport
import Foundation
import GGUF
import Inference
import Models
import Quantization
@testable import Quantizing
import Testing

/// The end-to-end error measure --bits allocates by: each tensor's KL divergence, measured
/// alone, must predict what quantizing many tensors at once does to the next-token distributions.
struct LogitDivergenceTests {
    @Test func klDivergenceIsTheDefinition() {
        var generator = SeededGenerator(state: 7)
        let count = 50
        let p = (0..<count).map { _ in Float.random(in: -4...4, using: &generator) }
        let q = (0..<count).map { _ in Float.random(in: -4...4, using: &generator) }
        func probabilities(_ logits: [Float]) -> [Double] {
            let exps = logits.map { exp(Double($0)) }
            let sum = exps.reduce(0, +)
            return exps.map { $0 / sum }
        }
        let pp = probabilities(p), qq = probabilities(q)
        let expected = zip(pp, qq).reduce(0.0) { $0 + $1.0 * log($1.0 / $1.1) }
        let logP = pp.map { Float(log($0)) }
        let measured = logP.withUnsafeBufferPointer { lp in
            q.withUnsafeBufferPointer { LogitDivergence.klDivergence(logProbabilities: lp.baseAddress!, logits: $0.baseAddress!, count: count) }
        }
        #expect(abs(measured - expected) < 1e-5 * max(1, expected), "\(measured) vs \(expected)")
        let same = logP.withUnsafeBufferPointer { lp in
            p.withUnsafeBufferPointer { LogitDivergence.klDivergence(logProbabilities: lp.baseAddress!, logits: $0.baseAddress!, count: count) }
        }
        #expect(abs(same) < 1e-6)
    }

    @Test func tensorsMeasuredAlonePredictTheWholeModel() throws {
        let model = try Model.open(path: Fixtures.url("Fixtures/models/tiny-mixtral").path)
        var generator = SeededGenerator(state: 11)
        let vocabulary = model.description.vocabularySize
        let windows = (0..<4).map { _ in (0..<48).map { _ in Int.random(in: 0..<vocabulary, using: &generator) } }
        let importance = try InputImportance.collect(from: model, data: CalibrationData(windows: windows, sources: [], sequenceLength: 48, seed: 0),
                                                     precision: .float32)
        let (_, tensors) = try GGUFExport.layout(model)
        let table = try ErrorTable.measure(model, tensors: tensors, types: [.q4_0, .q8_0], importance: importance,
                                           by: .klDivergence(sample: windows, precision: .float32))
        for (tensor, candidates) in zip(tensors, table.candidates) where candidates.count == 2 {
            #expect(candidates[0].error > candidates[1].error && candidates[1].error >= 0, "\(tensor.name): \(candidates)")
        }
        // Every matrix in Q4_0 at once: the KL divergence measured on the same windows is close
        // to the sum of the tensors' own (small perturbations add to first order).
        let predicted = table.candidates.reduce(0.0) { $0 + ($1.count == 2 ? $1[0].error : 0) }
        let overlay = QuantizedOverlay(base: model.source)
        for (tensor, candidates) in zip(tensors, table.candidates) where candidates.count == 2 {
            try LogitDivergence.replace(tensor, type: candidates[0].type, importance: importance, in: overlay, source: model.source)
        }
        let clean = ForwardPass(model: model.description, source: model.source)
        let quantized = ForwardPass(model: model.description, source: overlay)
        let batch = TokenBatch(sequences: windows)
        let reference = try LogitDivergence.logProbabilities(try clean.outputHead(), try clean.hiddenStates(batch), rows: batch.tokenCount)
        let actual = try LogitDivergence.klDivergenceSum(reference, try quantized.outputHead(), try quantized.hiddenStates(batch),
                                                         rows: batch.tokenCount) / Double(batch.tokenCount)
        #expect(predicted > 0 && actual > predicted * 0.7 && actual < predicted * 1.4, "predicted \(predicted), measured \(actual)")
    }
}
