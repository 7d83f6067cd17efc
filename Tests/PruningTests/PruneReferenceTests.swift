import FixtureSupport
import Checkpoint
import Foundation
import Inference
import Models
import Pruning
import Testing

/// moe-compress's prune of a fixed keep-list against the same prune done with transformers
/// (Fixtures/scripts/record_prune_reference.py): logits to 1e-3, the same top-k sets in every
/// layer (in the new numbering), and the same perplexity.
struct PruneReferenceTests {
    @Test(arguments: PruneStageTests.models)
    func matchesTransformersPrune(model name: String) throws {
        let record = try Fixtures.record("prune-reference.json").object("models").object(name)
        let model = try Model.open(Fixtures.url(record["model"] as? String ?? ""))
        let plan = PrunePlan(method: "fixed", layers: record.objects("keep").map { PrunePlan.Layer(layer: $0.int("layer"), kept: $0.ints("experts")) })
        let pruned = try PruneStage(plan: plan).run(model)
        #expect(pruned.config.json[record["expert_count_key"] as? String ?? ""]?.intValue == record.int("num_experts"))
        try expectMatches(pruned, record: record, name)
    }
}

/// Per-layer expert counts (a global budget) against the same plans pruned with transformers and
/// loaded back through modeling_moe_compress.py with trust_remote_code
/// (Fixtures/scripts/record_per_layer_prune.py): the config keys, the shipped modeling file, the
/// logits, top-k sets and perplexity, also after writing and reopening.
struct PerLayerPruneReferenceTests {
    @Test(arguments: PruneStageTests.models)
    func matchesTransformersThroughTheModelingFile(model name: String) throws {
        let record = try Fixtures.record("per-layer-prune.json").object("models").object(name)
        let model = try Model.open(Fixtures.url(record["model"] as? String ?? ""))
        let plan = PrunePlan(method: "fixed", layers: record.objects("keep").map { PrunePlan.Layer(layer: $0.int("layer"), kept: $0.ints("experts")) })
        let pruned = try PruneStage(plan: plan).run(model)
        let written = record.object("config")
        for (key, value) in written {
            let ours = try #require(pruned.config.json[key], "\(name): config lacks \(key)")
            let theirs = try JSONSerialization.data(withJSONObject: ["v": value], options: .sortedKeys)
            let mine = try JSONSerialization.data(withJSONObject: ["v": JSONSerialization.jsonObject(with: JSONEncoder().encode(ours), options: .fragmentsAllowed)], options: .sortedKeys)
            #expect(mine == theirs, "\(name): config \(key)")
        }
        let shipped = try Data(contentsOf: Fixtures.url("Sources/Pruning/Resources/modeling_moe_compress.py"))
        #expect(pruned.files["modeling_moe_compress.py"] == shipped)

        let output = try Fixtures.temporaryDirectory().appendingPathComponent("per-layer")
        try ModelWriter.write(pruned, to: output)
        #expect(try Data(contentsOf: output.appendingPathComponent("modeling_moe_compress.py")) == shipped)
        let reopened = try Model.open(output)
        for candidate in [pruned, reopened] { try expectMatches(candidate, record: record, name) }
    }
}

/// A pruned model's logits (1e-3), top-k sets per layer and perplexity (1e-4) against a record
/// in the shape Fixtures/scripts/record_prune_reference.py writes.
func expectMatches(_ model: Model, record: [String: Any], _ name: String) throws {
    let forward = ForwardPass(model: model.description, source: model.source)
    for testCase in record.objects("forward") {
        let ids = testCase.ints("input_ids")
        let recorder = RoutingRecorder()
        let states = try forward.hiddenStates(TokenBatch(sequences: [ids]), observer: recorder)
        let logits = try forward.outputHead().logits(states.pointer, rows: ids.count).array
        let expected = ((testCase["logits"] as? [[Any]]) ?? []).flatMap { $0.map { Float(($0 as? NSNumber)?.doubleValue ?? .nan) } }
        let difference = zip(logits, expected).map { abs($0 - $1) }.max() ?? .infinity
        #expect(logits.count == expected.count && difference <= 1e-3, "\(name): max |logit difference| \(difference)")
        for routing in testCase.objects("routing") {
            guard let trace = recorder.traces.first(where: { $0.layer == routing.int("layer") }) else {
                Issue.record("\(name): no routing for layer \(routing.int("layer"))")
                continue
            }
            let k = trace.expertsPerToken
            let theirs = ((routing["top_k_index"] as? [[Any]]) ?? []).map { Set($0.map { ($0 as? NSNumber)?.intValue ?? -1 }) }
            let ours = (0..<trace.tokenCount).map { Set(trace.selectedExperts[($0 * k)..<(($0 + 1) * k)]) }
            #expect(ours == theirs, "\(name) layer \(trace.layer) top-k sets")
        }
    }
    let reference = record.object("perplexity")
    let result = try model.perplexity(of: reference.ints("input_ids"), sequenceLength: reference.int("seq_len"), batchTokens: 40)
    #expect(abs(result.perplexity - reference.double("perplexity")) / reference.double("perplexity") < 1e-4,
            "\(name): perplexity \(result.perplexity) vs transformers \(reference.double("perplexity"))")
}
