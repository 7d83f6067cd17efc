import Calibration
import FixtureSupport
import Foundation
import Inference
import Models
import Testing

/// Calibration statistics against an independent computation with transformers hooks
/// (Fixtures/scripts/record_calibration_stats.py), on every family's tiny fixture, to 1e-4.
struct StatisticsReferenceTests {
    static let models = ["tiny-mixtral", "tiny-qwen2-moe", "tiny-qwen3-moe", "tiny-olmoe"]

    func expectClose(_ ours: [Double], _ theirs: [Double], _ what: String) {
        #expect(ours.count == theirs.count, "\(what): \(ours.count) values, recorded \(theirs.count)")
        for (index, (a, b)) in zip(ours, theirs).enumerated() {
            let scale = max(abs(b), 1e-3)
            #expect(abs(a - b) / scale <= 1e-4, "\(what)[\(index)]: ours \(a), transformers \(b)")
        }
    }

    @Test(arguments: models)
    func statisticsMatchTransformersHooks(model name: String) throws {
        let record = try Fixtures.record("calibration-stats.json").object("models").object(name)
        let model = try Model.open(Fixtures.url(record["model"] as? String ?? ""))
        let windows = ((record["windows"] as? [[Any]]) ?? []).map { $0.map { ($0 as? NSNumber)?.intValue ?? -1 } }
        #expect(!windows.isEmpty)
        let data = CalibrationData(windows: windows, sources: [], sequenceLength: windows.first?.count ?? 0, seed: 0)
        let statistics = try Calibrator(batchTokens: 100).statistics(of: model, data: data, modelName: name)
        let layers = record.objects("layers")
        #expect(statistics.layers.map(\.layer) == layers.map { $0.int("layer") })
        for expected in layers {
            let layer = expected.int("layer")
            guard let ours = statistics.layer(layer) else { continue }
            let what = "\(name) layer \(layer)"
            #expect(ours.tokenCount == Double(expected.int("token_count")))
            #expect(ours[.counts] == expected.doubles("counts"), "\(what) counts")
            expectClose(ours[.probabilitySum], expected.doubles("probability_sum"), "\(what) probability_sum")
            expectClose(ours[.routedProbabilitySum], expected.doubles("routed_probability_sum"), "\(what) routed_probability_sum")
            expectClose(ours[.routedWeightSum], expected.doubles("routed_weight_sum"), "\(what) routed_weight_sum")
            expectClose(ours.reap, expected.doubles("reap"), "\(what) reap")
            expectClose(ours[.outputNormSum], expected.doubles("ean_sum"), "\(what) ean_sum")
            expectClose(ours.meanOutputNorm, expected.doubles("ean_mean"), "\(what) ean_mean")
            expectClose(ours[.maxOutputNorm], expected.doubles("max_output_norm"), "\(what) max_output_norm")
            expectClose(ours[.maxAbsActivation], expected.doubles("max_abs_activation"), "\(what) max_abs_activation")
            expectClose(ours[.easyEP], expected.doubles("easy_ep"), "\(what) easy_ep")
            expectClose(ours[.top1LogitSum], expected.doubles("top1_logit_sum"), "\(what) top1_logit_sum")
            let coactivation = ((expected["coactivation"] as? [[Any]]) ?? []).flatMap { $0.map { ($0 as? NSNumber)?.doubleValue ?? .nan } }
            #expect(ours.coactivation == coactivation, "\(what) coactivation")
            let squares = ((expected["input_square_sum"] as? [[Any]]) ?? []).flatMap { $0.map { ($0 as? NSNumber)?.doubleValue ?? .nan } }
            expectClose(ours.inputSquareSum, squares, "\(what) input_square_sum")
        }
    }

    /// Written and read back, the file holds the same statistics and provenance.
    @Test func statisticsFileRoundTrip() throws {
        let record = try Fixtures.record("calibration-stats.json").object("models").object("tiny-qwen2-moe")
        let model = try Model.open(Fixtures.url(record["model"] as? String ?? ""))
        let windows = ((record["windows"] as? [[Any]]) ?? []).map { $0.map { ($0 as? NSNumber)?.intValue ?? -1 } }
        let data = CalibrationData(windows: windows, sources: [], sequenceLength: windows.first?.count ?? 0, seed: 3)
        let statistics = try Calibrator().statistics(of: model, data: data, modelName: "tiny-qwen2-moe")
        let file = try Fixtures.temporaryDirectory().appendingPathComponent("stats.safetensors")
        try StatisticsFile.write(statistics, to: file)
        let read = try StatisticsFile.read(file)
        #expect(read.provenance == statistics.provenance)
        #expect(read.layers == statistics.layers)
        try read.check(against: model, file: file.path)
    }
}

/// An expert no token reaches has zero counts and sums and a zero REAP score, never NaN, and the
/// file stores it.
struct UnusedExpertTests {
    @Test func unusedExpertGivesZerosNotNaN() throws {
        let model = try Model.open(Fixtures.url("Fixtures/models/tiny-mixtral"))
        let collector = StatisticsCollector(model: model.description)
        let forward = ForwardPass(model: model.description, source: model.source, maskedExperts: [0: [3], 1: [3]])
        _ = try forward.hiddenStates(TokenBatch(sequences: [Array(1..<40)]), observer: collector)
        for layer in collector.layers.values {
            #expect(layer[.counts][3] == 0 && layer.reap[3] == 0 && layer.meanOutputNorm[3] == 0 && layer[.easyEP][3] == 0)
            #expect(layer.measures.values.allSatisfy { $0.allSatisfy(\.isFinite) })
            #expect(layer.reap.allSatisfy(\.isFinite) && layer.inputSquareSum.allSatisfy(\.isFinite))
        }
    }
}
