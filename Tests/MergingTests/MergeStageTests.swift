import FixtureSupport
import Foundation
import Inference
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

/// The merge of fixed clusters (average fusing, dominant router) against the same merge built
/// in transformers (Fixtures/scripts/record_merge_reference.py): logits to 1e-3, top-k sets and
/// perplexity on every family.
struct MergeReferenceTests {
    @Test(arguments: ["tiny-mixtral", "tiny-qwen2-moe", "tiny-qwen3-moe", "tiny-olmoe"])
    func matchesTransformersMerge(model name: String) throws {
        let record = try Fixtures.record("merge-reference.json").object("models").object(name)
        let model = try Model.open(Fixtures.url(record["model"] as? String ?? ""))
        let plan = MergePlan(layers: record.objects("clusters").map { layer in
            MergePlan.Layer(layer: layer.int("layer"),
                            clusters: ((layer["clusters"] as? [[Any]]) ?? []).map { $0.map { ($0 as? NSNumber)?.intValue ?? -1 } },
                            usage: layer.doubles("usage"))
        })
        for (layer, recorded) in zip(plan.layers, record.objects("clusters")) { #expect(layer.dominant == recorded.ints("dominant")) }
        let merged = try MergeStage(plan: plan).run(model)
        #expect(merged.config.json[record["expert_count_key"] as? String ?? ""]?.intValue == record.int("num_experts"))
        let forward = ForwardPass(model: merged.description, source: merged.source)
        for testCase in record.objects("forward") {
            let ids = testCase.ints("input_ids")
            let recorder = RoutingRecorder()
            let states = try forward.hiddenStates(TokenBatch(sequences: [ids]), observer: recorder)
            let logits = try forward.outputHead().logits(states.pointer, rows: ids.count).array
            let expected = ((testCase["logits"] as? [[Any]]) ?? []).flatMap { $0.map { Float(($0 as? NSNumber)?.doubleValue ?? .nan) } }
            let difference = zip(logits, expected).map { abs($0 - $1) }.max() ?? .infinity
            #expect(logits.count == expected.count && difference <= 1e-3, "\(name): max |logit difference| \(difference)")
            for routing in testCase.objects("routing") {
                guard let trace = recorder.traces.first(where: { $0.layer == routing.int("layer") }) else { continue }
                let k = trace.expertsPerToken
                let theirs = ((routing["top_k_index"] as? [[Any]]) ?? []).map { Set($0.map { ($0 as? NSNumber)?.intValue ?? -1 }) }
                #expect((0..<trace.tokenCount).map { Set(trace.selectedExperts[($0 * k)..<(($0 + 1) * k)]) } == theirs, "\(name) layer \(trace.layer)")
            }
        }
        let reference = record.object("perplexity")
        let result = try merged.perplexity(of: reference.ints("input_ids"), sequenceLength: reference.int("seq_len"), batchTokens: 40)
        #expect(abs(result.perplexity - reference.double("perplexity")) / reference.double("perplexity") < 1e-4)
    }
}
