import Architectures
import Checkpoint
import FixtureSupport
import Foundation
import Inference
import Testing

/// The forward pass against transformers' own outputs, recorded by Fixtures/scripts/make_fixtures.py
/// for a tiny checkpoint of every supported family.
struct TransformersParityTests {
    static let models = ["tiny-mixtral", "tiny-qwen2-moe", "tiny-qwen3-moe", "tiny-olmoe"]

    func open(_ path: String) throws -> ForwardPass {
        let checkpoint = try Checkpoint(directory: Fixtures.url(path)).withPerExpertTensors()
        return ForwardPass(model: try ModelDescription(checkpoint: checkpoint), source: checkpoint)
    }

    @Test(arguments: models)
    func logitsAndRoutingMatchTransformers(model: String) throws {
        let record = try Fixtures.record("\(model).json")
        try expectLogitsAndRouting(of: try open(record["model"] as? String ?? ""), matching: record, model)
    }

    /// The same weights saved by transformers 5 in its fused expert layout
    /// (Fixtures/scripts/make_transformers5_fixtures.py) give the same logits and routing.
    @Test(arguments: models)
    func fusedExpertLayoutOfTransformers5MatchesTheSameRecord(model: String) throws {
        let fused = try Fixtures.record("transformers5-fused.json").object("models").object("\(model)-fused")
        let record = try Fixtures.record(fused["record"] as? String ?? "")
        try expectLogitsAndRouting(of: try open(fused["model"] as? String ?? ""), matching: record, "\(model)-fused")
    }

    func expectLogitsAndRouting(of forward: ForwardPass, matching record: [String: Any], _ model: String) throws {
        let cases = record.objects("forward")
        #expect(!cases.isEmpty)
        for testCase in cases {
            let ids = testCase.ints("input_ids")
            let recorder = RoutingRecorder()
            let states = try forward.hiddenStates(TokenBatch(sequences: [ids]), observer: recorder)
            let logits = try forward.outputHead().logits(states.pointer, rows: ids.count).array
            let expected = ((testCase["logits"] as? [[Any]]) ?? []).flatMap { $0.map { Float(($0 as! NSNumber).doubleValue) } }
            #expect(logits.count == expected.count)
            let worst = zip(logits, expected).map { abs($0 - $1) }.max() ?? .infinity
            #expect(worst <= 1e-3, "\(model), \(ids.count) tokens: max |logit difference| \(worst)")

            let expectedRouting = testCase.objects("routing")
            #expect(recorder.traces.map(\.layer) == expectedRouting.map { $0.int("layer") }, "\(model): sparse layers")
            for (trace, reference) in zip(recorder.traces, expectedRouting) {
                let k = trace.expertsPerToken
                let indices = (reference["top_k_index"] as? [[Int]]) ?? []
                let weights = (reference["top_k_weights"] as? [[Double]]) ?? []
                for token in 0..<trace.tokenCount {
                    let ours = Array(trace.selectedExperts[(token * k)..<((token + 1) * k)])
                    #expect(Set(ours) == Set(indices[token]), "\(model) layer \(trace.layer) token \(token): experts \(ours) vs \(indices[token])")
                    for (slot, expert) in indices[token].enumerated() {
                        guard let ourSlot = ours.firstIndex(of: expert) else { continue }
                        #expect(abs(Double(trace.selectedWeights[token * k + ourSlot]) - weights[token][slot]) < 1e-4)
                    }
                }
            }
        }
    }

    @Test(arguments: models)
    func perplexityMatchesTransformers(model: String) throws {
        let record = try Fixtures.record("\(model).json")
        let reference = record.object("perplexity")
        let evaluator = try PerplexityEvaluator(forward: open(record["model"] as? String ?? ""), sequenceLength: reference.int("seq_len"), batchTokens: 40)
        let result = try evaluator.evaluate(ids: reference.ints("input_ids"))
        #expect(result.tokens == reference.int("tokens"))
        let relative = abs(result.perplexity - reference.double("perplexity")) / reference.double("perplexity")
        #expect(relative < 1e-4, "\(model): ours \(result.perplexity), transformers \(reference.double("perplexity"))")
    }
}
