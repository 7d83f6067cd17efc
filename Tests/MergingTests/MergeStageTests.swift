import FixtureSupport
import Foundation
import Merging
import Models
import Testing

/// The merge stage's own properties on a tiny fixture: merged weights are the usage-weighted
/// average, singletons are copied as stored, router rows are the dominant members', and a plan
/// that is no partition is refused.
struct MergeStageTests {
    let model: Model
    let plan: MergePlan

    init() throws {
        model = try Model.open(Fixtures.url("Fixtures/models/tiny-mixtral"))
        let usage: [Double] = [5, 2, 7, 1, 3, 3, 8, 4]
        plan = MergePlan(layers: model.description.sparseLayers.map { MergePlan.Layer(layer: $0, clusters: [[0, 1, 5], [2], [3, 7], [4, 6]], usage: usage) })
    }

    @Test func mergedWeightsAreTheUsageWeightedAverage() throws {
        let merged = try MergeStage(plan: plan).run(model)
        let names = model.description.spec.tensors
        for layer in model.description.sparseLayers {
            let planned = try #require(plan.layer(layer))
            for (index, members) in planned.clusters.enumerated() {
                for template in [names.expertGate, names.expertUp, names.expertDown] {
                    let ours = try merged.source.float32(template.filled(layer: layer, expert: index)).scalars
                    let parts = try members.map { try model.source.float32(template.filled(layer: layer, expert: $0)).scalars }
                    let total = members.reduce(0) { $0 + planned.usage[$1] }
                    for element in stride(from: 0, to: ours.count, by: 7) {
                        let expected = zip(members, parts).reduce(0.0) { $0 + planned.usage[$1.0] * Double($1.1[element]) } / total
                        #expect(Float(expected) == ours[element], "layer \(layer) cluster \(members) element \(element)")
                    }
                }
            }
            let router = try merged.source.float32(names.router.filled(layer: layer))
            let original = try model.source.float32(names.router.filled(layer: layer))
            #expect(planned.dominant == [0, 2, 7, 6])
            let hidden = model.description.hiddenSize
            #expect(router.scalars == planned.dominant.flatMap { Array(original.scalars[($0 * hidden)..<(($0 + 1) * hidden)]) })
        }
        #expect(merged.config.json["num_local_experts"]?.intValue == 4)
    }

    @Test func refusesPlansThatAreNoPartition() {
        let usage = [Double](repeating: 1, count: 8)
        for clusters in [[[0, 1], [2, 3], [4, 5], [6]], [[0, 1, 2, 3], [4, 5, 6, 7, 1]], [[0, 1, 2, 3, 4, 5, 6, 7]], [[1, 0], [2, 3, 4, 5, 6, 7]]] {
            let bad = MergePlan(layers: model.description.sparseLayers.map { MergePlan.Layer(layer: $0, clusters: clusters, usage: usage) })
            #expect(throws: MergingError.self) { _ = try MergeStage(plan: bad).run(model) }
        }
    }
}
