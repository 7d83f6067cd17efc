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

/// Every fusing mode and router rule on every family: the merged model runs to a finite
/// perplexity; clusters of identical experts (a source where each member is a copy of the first)
/// merge back to that expert; singletons are copied as stored; router rows follow their rule.
struct MergeModesTests {
    static let fusings: [FuseMethod] = [.average, .aligned, .subspace(.energy(0.9)), .subspace(.rank(1))]

    /// `model` with every expert of a cluster replaced by a copy of the cluster's first member.
    func withIdenticalMembers(_ model: Model, clusters: [[Int]]) throws -> Model {
        let names = model.description.spec.tensors
        var copies: [String: String] = [:]
        for layer in model.description.sparseLayers {
            for members in clusters {
                for member in members.dropFirst() {
                    for template in [names.expertGate, names.expertUp, names.expertDown] {
                        copies[template.filled(layer: layer, expert: member)] = template.filled(layer: layer, expert: members[0])
                    }
                }
            }
        }
        let recipes = model.source.tensorNames.map { ($0, TensorRecipe.copy(of: copies[$0] ?? $0)) }
        return try Model(config: model.config, source: DerivedTensorSource(base: model.source, recipes: recipes), origin: model.origin)
    }

    @Test(arguments: ["tiny-mixtral", "tiny-qwen2-moe", "tiny-qwen3-moe", "tiny-olmoe"])
    func everyModeRunsAndMergesIdenticalExpertsBackToThemselves(model name: String) throws {
        let original = try Model.open(Fixtures.url("Fixtures/models/\(name)"))
        guard let first = original.description.sparseLayers.first, case .sparse(let shape) = original.description.feedForward[first] else { return }
        let n = shape.expertCount
        // Pairs of neighbours, the rest alone: n - n/4 clusters (at least top-k of them).
        let pairs = max(1, min(n / 4, n - shape.expertsPerToken))
        let clusters = (0..<pairs).map { [2 * $0, 2 * $0 + 1] } + ((2 * pairs)..<n).map { [$0] }
        let usage = (0..<n).map { Double(($0 * 7) % 5 + 1) }
        let plan = MergePlan(layers: original.description.sparseLayers.map { MergePlan.Layer(layer: $0, clusters: clusters, usage: usage) })
        let identical = try withIdenticalMembers(original, clusters: clusters)
        let names = original.description.spec.tensors
        let ids = Array(1...48)
        for fusing in Self.fusings {
            for router in [RouterMethod.dominant, .average] {
                let merged = try MergeStage(plan: plan, fusing: fusing, router: router).run(original)
                let perplexity = try merged.perplexity(of: ids, sequenceLength: 24).perplexity
                #expect(perplexity.isFinite, "\(name) \(fusing) \(router)")
            }
        }
        // A truncated subspace also compresses within the expert, so identity holds at full energy.
        for fusing in [FuseMethod.average, .aligned, .subspace(.energy(1))] {
            let merged = try MergeStage(plan: plan, fusing: fusing).run(identical)
            for layer in original.description.sparseLayers {
                for (index, members) in clusters.enumerated() {
                    for template in [names.expertGate, names.expertUp, names.expertDown] {
                        let ours = try merged.source.float32(template.filled(layer: layer, expert: index)).scalars
                        let expert = try identical.source.float32(template.filled(layer: layer, expert: members[0])).scalars
                        let scale = expert.map(abs).max() ?? 1
                        let worst = zip(ours, expert).map { abs($0 - $1) }.max() ?? .infinity
                        // Averages of equal values are exact; an SVD rebuild is exact to float64 rounding, then stored.
                        #expect(members.count == 1 || fusing != .average ? worst <= 1e-2 * scale : worst == 0,
                                "\(name) \(fusing) layer \(layer) cluster \(members): \(worst)")
                        if members.count == 1 { #expect(worst == 0) }
                    }
                }
            }
        }
    }

    @Test func averageRouterRowsAreTheUsageWeightedMean() throws {
        let model = try Model.open(Fixtures.url("Fixtures/models/tiny-mixtral"))
        let usage: [Double] = [5, 2, 7, 1, 3, 3, 8, 4]
        let clusters = [[0, 1, 5], [2], [3, 7], [4, 6]]
        let plan = MergePlan(layers: model.description.sparseLayers.map { MergePlan.Layer(layer: $0, clusters: clusters, usage: usage) })
        let merged = try MergeStage(plan: plan, router: .average).run(model)
        let hidden = model.description.hiddenSize
        for layer in model.description.sparseLayers {
            let name = model.description.spec.tensors.router.filled(layer: layer)
            let ours = try merged.source.float32(name).scalars
            let rows = try model.source.float32(name).scalars
            for (index, members) in clusters.enumerated() {
                let total = members.reduce(0) { $0 + usage[$1] }
                for h in 0..<hidden {
                    let expected = members.reduce(0.0) { $0 + usage[$1] / total * Double(rows[$1 * hidden + h]) }
                    #expect(abs(Double(ours[index * hidden + h]) - expected) <= 1e-6 * max(1, abs(expected)))
                }
            }
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
