import Architectures
import Checkpoint
import FixtureSupport
import Inference
import Testing

/// Later stages watch each sparse layer through `ForwardObserver`; what they see must agree with
/// the routing the forward pass applied.
final class ExpertCollector: ForwardObserver {
    var wantsExpertActivations: Bool { true }
    var routing: [RoutingTrace] = []
    var experts: [(layer: Int, expert: Int, tokens: [Int], weights: [Float], inputRows: Int, outputRows: Int)] = []
    let hidden: Int

    init(hidden: Int) { self.hidden = hidden }

    func observe(routing trace: RoutingTrace) { routing.append(trace) }

    func observe(expert: ExpertActivations) {
        experts.append((expert.layer, expert.expert, expert.tokens, expert.routingWeights,
                        expert.inputs.count / hidden, expert.outputs.count / hidden))
    }
}

struct ObserverTests {
    @Test func expertActivationsFollowTheRouting() throws {
        let checkpoint = try Checkpoint(directory: Fixtures.url("Fixtures/models/tiny-qwen2-moe"))
        let model = try ModelDescription(checkpoint: checkpoint)
        let ids = try Fixtures.record("tiny-qwen2-moe.json").objects("forward")[2].ints("input_ids")
        let collector = ExpertCollector(hidden: model.hiddenSize)
        _ = try ForwardPass(model: model, source: checkpoint).hiddenStates(TokenBatch(sequences: [ids, ids.reversed()]), observer: collector)

        #expect(collector.routing.map(\.layer) == model.sparseLayers)
        for trace in collector.routing {
            #expect(trace.tokenCount == 2 * ids.count)
            let k = trace.expertsPerToken
            for expert in 0..<trace.expertCount {
                let routed = (0..<trace.tokenCount).filter { token in trace.selectedExperts[(token * k)..<((token + 1) * k)].contains(expert) }
                let seen = collector.experts.first { $0.layer == trace.layer && $0.expert == expert }
                #expect((seen?.tokens ?? []) == routed, "layer \(trace.layer) expert \(expert)")
                if let seen {
                    #expect(seen.inputRows == routed.count && seen.outputRows == routed.count)
                }
            }
            for token in 0..<trace.tokenCount {
                let probabilities = trace.probabilities[(token * trace.expertCount)..<((token + 1) * trace.expertCount)]
                #expect(abs(probabilities.reduce(0, +) - 1) < 1e-5)
            }
        }
    }
}
