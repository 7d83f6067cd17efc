import Checkpoint
import FixtureSupport
import Foundation
import Inference
import Models
@testable import Pruning
import Testing

struct NeuronRecombinationTests {
    static func logits(_ model: Model, _ ids: [Int]) throws -> [Float] {
        let forward = ForwardPass(model: model.description, source: model.source)
        let states = try forward.hiddenStates(TokenBatch(sequences: [ids]))
        return try forward.outputHead().logits(states.pointer, rows: ids.count).array
    }

    /// tiny-mixtral with expert 1 of every layer replaced by a copy of expert 0.
    static func withDuplicateExpert() throws -> Model {
        let model = try Model.open(Fixtures.url("Fixtures/models/tiny-mixtral"))
        let names = model.description.spec.tensors
        let recipes = model.source.tensorNames.map { name -> (name: String, recipe: TensorRecipe) in
            for layer in model.description.sparseLayers {
                for template in [names.expertGate, names.expertUp, names.expertDown] where name == template.filled(layer: layer, expert: 1) {
                    return (name, .copy(of: template.filled(layer: layer, expert: 0)))
                }
            }
            return (name, .copy(of: name))
        }
        return try Model(config: model.config, source: DerivedTensorSource(base: model.source, recipes: recipes), origin: model.origin)
    }

    /// Folding a duplicate expert's neurons into the expert it duplicates changes nothing: each
    /// segment finds its twin (cosine 1) and the average of equal neurons is the neuron.
    @Test func foldingADuplicateExpertChangesNothing() throws {
        let model = try Self.withDuplicateExpert()
        let plan = PrunePlan(method: "fixed", layers: model.description.sparseLayers.map { PrunePlan.Layer(layer: $0, kept: [0, 2, 3, 4, 5, 6, 7]) })
        let usage = Dictionary(uniqueKeysWithValues: model.description.sparseLayers.map { ($0, [3.0, 5, 1, 1, 1, 1, 1, 1]) })
        let plain = try PruneStage(plan: plan).run(model)
        let (recombined, summaries) = try PruneStage(plan: plan, recombination: .init(threshold: 0.999, usage: usage)).apply(model)
        for layer in model.description.sparseLayers {
            let summary = try #require(summaries[layer])
            #expect(summary.folded > 0 && summary.foldedPerKeptExpert[0] == summary.folded, "layer \(layer): \(summary)")
        }
        let ids = try Fixtures.record("tiny-mixtral.json").objects("forward")[1].ints("input_ids")
        let difference = zip(try Self.logits(plain, ids), try Self.logits(recombined, ids)).map { abs($0 - $1) }.max() ?? .infinity
        #expect(difference < 1e-5)
    }

    /// A kept neuron that receives segments becomes the usage-weighted average of itself and them
    /// (gate and up rows, down column), and the rest of the expert is untouched.
    @Test func foldedNeuronIsTheUsageWeightedAverage() throws {
        let model = try Model.open(Fixtures.url("Fixtures/models/tiny-mixtral"))
        let kept = [0, 2, 3, 4, 5, 6]
        let plan = PrunePlan(method: "fixed", layers: model.description.sparseLayers.map { PrunePlan.Layer(layer: $0, kept: kept) })
        let counts: [Double] = [4, 7, 1, 2, 3, 5, 6, 9]
        let usage = Dictionary(uniqueKeysWithValues: model.description.sparseLayers.map { ($0, counts) })
        let (output, _) = try PruneStage(plan: plan, recombination: .init(threshold: -1, usage: usage)).apply(model)
        let recombiner = try NeuronRecombination(model: model, plan: plan, usage: usage, threshold: -1)
        let layer = 0, names = model.description.spec.tensors, hidden = model.description.hiddenSize
        let segments = try #require(recombiner.segments[layer])
        let target = try #require(segments.first).target
        let incoming = segments.filter { $0.target == target }
        let newIndex = try #require(kept.firstIndex(of: target.expert))
        let gate = { (expert: Int) in try model.source.float32(names.expertGate.filled(layer: layer, expert: expert)).scalars }
        var expected = (0..<hidden).map { Double(try! gate(target.expert)[target.neuron * hidden + $0]) * counts[target.expert] }
        var total = counts[target.expert]
        for segment in incoming {
            let theirs = try gate(segment.expert)
            for column in 0..<hidden { expected[column] += counts[segment.expert] * Double(theirs[segment.neuron * hidden + column]) }
            total += counts[segment.expert]
        }
        let ours = try output.source.float32(names.expertGate.filled(layer: layer, expert: newIndex)).scalars
        for column in 0..<hidden {
            #expect(abs(Double(ours[target.neuron * hidden + column]) - expected[column] / total) < 1e-6)
        }
        let receivers = Set(segments.map { $0.target.neuron })
        let original = try gate(target.expert)
        for neuron in 0..<(ours.count / hidden) where !segments.contains(where: { $0.target.expert == target.expert && $0.target.neuron == neuron }) {
            #expect(Array(ours[(neuron * hidden)..<((neuron + 1) * hidden)]) == Array(original[(neuron * hidden)..<((neuron + 1) * hidden)]))
        }
        #expect(!receivers.isEmpty)
    }
}
