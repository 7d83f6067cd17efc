import Architectures
import Calibration
import Checkpoint
import FixtureSupport
import Foundation
import Inference
import Models
@testable import Pruning
import Testing

/// A pruned model must compute exactly what the original computes with the dropped experts masked
/// out of routing, on every family, whether read as a computed view or written and reopened.
struct PruneStageTests {
    static let models = ["tiny-mixtral", "tiny-qwen2-moe", "tiny-qwen3-moe", "tiny-olmoe"]

    /// Drops two experts per sparse layer, different ones in different layers.
    static func plan(for model: Model) -> PrunePlan {
        let layers = model.description.sparseLayers.map { layer -> PrunePlan.Layer in
            guard case .sparse(let shape) = model.description.feedForward[layer] else { return PrunePlan.Layer(layer: layer, kept: []) }
            let dropped: Set = [(layer + 1) % shape.expertCount, (3 * layer + 2) % shape.expertCount]
            return PrunePlan.Layer(layer: layer, kept: (0..<shape.expertCount).filter { !dropped.contains($0) })
        }
        return PrunePlan(method: "fixed", layers: layers)
    }

    static func logits(_ forward: ForwardPass, _ ids: [Int]) throws -> [Float] {
        let states = try forward.hiddenStates(TokenBatch(sequences: [ids]))
        return try forward.outputHead().logits(states.pointer, rows: ids.count).array
    }

    @Test(arguments: models)
    func prunedEqualsMaskedRouting(model name: String) throws {
        let model = try Model.open(Fixtures.url("Fixtures/models/\(name)"))
        let plan = Self.plan(for: model)
        let pruned = try PruneStage(plan: plan).run(model)
        var masked: [Int: Set<Int>] = [:]
        for layer in plan.layers {
            guard case .sparse(let shape) = model.description.feedForward[layer.layer] else { continue }
            masked[layer.layer] = Set(0..<shape.expertCount).subtracting(layer.kept)
            guard case .sparse(let prunedShape) = pruned.description.feedForward[layer.layer] else {
                Issue.record("layer \(layer.layer) is no longer sparse")
                continue
            }
            #expect(prunedShape.expertCount == layer.kept.count)
            #expect(prunedShape.expertsPerToken == shape.expertsPerToken)
        }
        let reference = ForwardPass(model: model.description, source: model.source, maskedExperts: masked)
        let computed = ForwardPass(model: pruned.description, source: pruned.source)
        for testCase in try Fixtures.record("\(name).json").objects("forward") {
            let ids = testCase.ints("input_ids")
            let expected = try Self.logits(reference, ids), ours = try Self.logits(computed, ids)
            let difference = zip(expected, ours).map { abs($0 - $1) }.max() ?? .infinity
            #expect(expected.count == ours.count && difference <= 1e-4, "\(name): max |logit difference| \(difference)")
        }
    }

    /// Written and reopened: the same logits, and every tensor the stage did not change is the
    /// original's bytes under its name (a kept expert under its new number).
    @Test(arguments: models)
    func writtenPrunedCheckpointKeepsTheStoredBytes(model name: String) throws {
        let model = try Model.open(Fixtures.url("Fixtures/models/\(name)"))
        let pruned = try PruneStage(plan: Self.plan(for: model)).run(model)
        let output = try Fixtures.temporaryDirectory().appendingPathComponent("pruned")
        try ModelWriter.write(pruned, to: output)
        let reopened = try Model.open(output)
        #expect(reopened.source.tensorNames == pruned.source.tensorNames)
        let derived = try #require(pruned.source as? DerivedTensorSource)
        for tensorName in pruned.source.tensorNames {
            guard case .copy(let original)? = derived.recipe(tensorName), let descriptor = model.source.descriptor(original) else { continue }
            let bytes = descriptor.elementCount * descriptor.dtype.byteSize
            var expected = [UInt8](repeating: 0, count: bytes), written = [UInt8](repeating: 1, count: bytes)
            try expected.withUnsafeMutableBytes { try model.source.readStored(original, into: $0.baseAddress!) }
            try written.withUnsafeMutableBytes { try reopened.source.readStored(tensorName, into: $0.baseAddress!) }
            #expect(expected == written, "\(tensorName) (from \(original))")
        }
        let ids = try Fixtures.record("\(name).json").objects("forward")[0].ints("input_ids")
        let computed = try Self.logits(ForwardPass(model: pruned.description, source: pruned.source), ids)
        let fromDisk = try Self.logits(ForwardPass(model: reopened.description, source: reopened.source), ids)
        #expect(computed == fromDisk)
    }

    @Test func keepCountsOutsideTheValidRangeAreRefused() throws {
        let model = try Model.open(Fixtures.url("Fixtures/models/tiny-mixtral"))
        guard case .sparse(let shape) = model.description.feedForward[0] else { return }
        for keep in [shape.expertCount, shape.expertCount + 1, shape.expertsPerToken - 1] {
            let layers = model.description.sparseLayers.map { PrunePlan.Layer(layer: $0, kept: Array(0..<min(max(keep, 1), shape.expertCount + 1))) }
            #expect(throws: (any Error).self) { _ = try PruneStage(plan: PrunePlan(method: "fixed", layers: layers)).run(model) }
        }
    }

    @Test func rankingKeepsTheHighestScoresAndTheLowerIdOnTies() {
        #expect(PruneMethod.best(2, of: [0.5, 2, 1, 2]) == [1, 3])
        #expect(PruneMethod.best(3, of: [1, 1, 1, 1]) == [0, 1, 2])
    }
}

/// Super experts as REAP's rule finds them on the calibration statistics that transformers hooks
/// recorded (Fixtures/scripts/record_calibration_stats.py applies torch.quantile to the recorded
/// maxima), and protected experts are kept whatever their score.
struct SuperExpertTests {
    @Test(arguments: PruneStageTests.models)
    func foundAsREAPFindsThem(model name: String) throws {
        let record = try Fixtures.record("calibration-stats.json").object("models").object(name)
        var layers: [LayerStatistics] = []
        for layer in record.objects("layers") {
            var statistics = LayerStatistics(layer: layer.int("layer"), expertCount: layer.doubles("max_abs_activation").count, hiddenSize: 1)
            statistics[.maxAbsActivation] = layer.doubles("max_abs_activation")
            layers.append(statistics)
        }
        let found = SuperExperts.find(in: layers)
        let expected = ((record["super_experts"] as? [[Any]]) ?? []).map { $0.map { ($0 as? NSNumber)?.intValue ?? -1 } }
        #expect(found.flatMap { layer, experts in experts.map { [layer, $0] } }.sorted { $0.lexicographicallyPrecedes($1) } == expected)
    }

    @Test func protectedExpertsAreKept() {
        let scores: [Double] = [5, 1, 4, 3]
        #expect(PruneMethod.best(2, of: PruneStage.protect(scores, [1])) == [0, 1])
    }
}
