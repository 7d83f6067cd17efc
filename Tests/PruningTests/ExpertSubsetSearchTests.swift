import FixtureSupport
import Foundation
import Inference
import Models
@testable import Pruning
import Testing

struct ExpertSubsetSearchTests {
    @Test func combinationsInLexicographicOrder() {
        var subsets: [[Int]] = []
        ExpertSubsetSearch.forEachCombination(of: [0, 1, 2, 3], choosing: 2) { subsets.append($0) }
        #expect(subsets == [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]])
        #expect(ExpertSubsetSearch.combinationCount(8, 4) == 70)
        #expect(ExpertSubsetSearch.combinationCount(128, 64) == nil)
    }

    /// Records the routed output of one layer's block.
    final class BlockRecorder: ForwardObserver {
        let layer: Int
        var routed: [Float] = []
        var wantsExpertActivations: Bool { true }
        init(layer: Int) { self.layer = layer }
        func observe(routing: RoutingTrace) {}
        func observe(block: MoEBlockActivations) { if block.layer == layer { routed = Array(block.routedOutput) } }
    }

    /// The search's objective is the real pruned layer's deviation: Σ over sequences of the
    /// Frobenius norm between the routed outputs of the original layer and of the same layer with
    /// the other experts masked out (ForwardPass.maskedExperts), for subsets the search did not pick.
    @Test func objectiveEqualsThePrunedLayersDeviation() throws {
        let model = try Model.open(Fixtures.url("Fixtures/models/tiny-mixtral"))
        let ids = try Fixtures.record("calibration-stats.json").object("models").object("tiny-mixtral")["windows"] as? [[Any]] ?? []
        let windows = ids.prefix(2).map { $0.map { ($0 as? NSNumber)?.intValue ?? 0 } }
        let length = windows[0].count
        let collector = SubsetSearchCollector(model: model, keep: 5, tokenBudget: 2 * length, sequenceLength: length, precision: .float32)
        let layer = 1  // the last sparse layer: the collector keeps the last problem it solved
        let original = BlockRecorder(layer: layer)
        _ = try ForwardPass(model: model.description, source: model.source).hiddenStates(TokenBatch(sequences: windows), observer: original)
        _ = try ForwardPass(model: model.description, source: model.source).hiddenStates(TokenBatch(sequences: windows), observer: collector)
        let chosen = try #require(collector.results[layer])
        #expect(chosen.strategy == .exhaustive && chosen.evaluated == 56 && chosen.kept.count == 5)
        for kept in [[0, 1, 2, 3, 4], [1, 3, 5, 6, 7], chosen.kept] {
            let recorder = BlockRecorder(layer: layer)
            let masked = ForwardPass(model: model.description, source: model.source, maskedExperts: [layer: Set(0..<8).subtracting(kept)])
            _ = try masked.hiddenStates(TokenBatch(sequences: windows), observer: recorder)
            let hidden = model.description.hiddenSize
            var deviation: Double = 0
            for sequence in 0..<2 {
                let range = (sequence * length * hidden)..<((sequence + 1) * length * hidden)
                deviation += zip(original.routed[range], recorder.routed[range]).reduce(0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }.squareRoot()
            }
            let problemLoss = try #require(collector.lastProblem).loss(keeping: kept)
            #expect(abs(problemLoss - deviation) <= 1e-4 * max(deviation, 1), "kept \(kept): objective \(problemLoss), real deviation \(deviation)")
            #expect(chosen.loss <= problemLoss + 1e-9)
        }
    }

    /// Greedy elimination must drop the experts the target does not need, and agree with the
    /// exhaustive search here.
    @Test func greedyDropsTheExpertsTheTargetDoesNotNeed() {
        let tokens = 6, hidden = 2, experts = 4
        var logits = [Float](repeating: 0, count: tokens * experts)
        for token in 0..<tokens {
            logits[token * experts + 0] = 1
            logits[token * experts + 2] = 1
            logits[token * experts + 3] = -20
        }
        let outputs = (0..<experts).map { expert in (0..<(tokens * hidden)).map { Float(($0 + expert) % 5) } }
        var target = [Float](repeating: 0, count: tokens * hidden)
        for index in target.indices { target[index] = (outputs[0][index] + outputs[2][index]) / 2 }
        let problem = ExpertSubsetProblem(tokens: tokens, hiddenSize: hidden, expertCount: experts, expertsPerToken: 2, normalize: true,
                                          sequenceLength: 3, logits: logits, expertOutputs: outputs, target: target)
        let greedy = ExpertSubsetSearch.best(problem, keep: 2, exhaustiveLimit: 0)
        #expect(greedy.strategy == .greedy && greedy.evaluated == 7)
        #expect(greedy.kept == [0, 2] && greedy.loss < 1e-6)
        #expect(ExpertSubsetSearch.best(problem, keep: 2).kept == [0, 2])
    }
}
