import Architectures
import Checkpoint
import FixtureSupport
import Foundation
import Inference
import Testing

/// `--compute bf16` against transformers' float32 records, with transformers' own bf16 inference
/// as the yardstick (Fixtures/scripts/record_bf16_reference.py): ours must be at least as close
/// to float32, in mean |logit difference|, as transformers is when it computes in bf16. (The default model's perplexity in
/// bf16 is checked through the CLI, in EvalCommandTests.)
struct BFloat16ComputeTests {
    let reference: [String: Any]

    init() throws { reference = try Fixtures.record("bf16-reference.json") }

    func open(_ path: String) throws -> ForwardPass {
        let checkpoint = try Checkpoint(directory: Fixtures.url(path))
        return ForwardPass(model: try ModelDescription(checkpoint: checkpoint), source: checkpoint, precision: .bfloat16)
    }

    @Test(arguments: TransformersParityTests.models)
    func logitsStayWithinTransformersOwnBFloat16Deviation(model: String) throws {
        let record = try Fixtures.record("\(model).json")
        let allowed = reference.object("tiny_mean_logit_deviation").double(model)
        #expect(allowed > 0)
        let forward = try open(record["model"] as? String ?? "")
        var total: Double = 0, count = 0
        for testCase in record.objects("forward") {
            let ids = testCase.ints("input_ids")
            let states = try forward.hiddenStates(TokenBatch(sequences: [ids]))
            let logits = try forward.outputHead().logits(states.pointer, rows: ids.count).array
            let expected = ((testCase["logits"] as? [[Any]]) ?? []).flatMap { $0.map { Float(($0 as! NSNumber).doubleValue) } }
            #expect(logits.count == expected.count)
            total += zip(logits, expected).reduce(0) { $0 + Double(abs($1.0 - $1.1)) }
            count += logits.count
        }
        let ours = total / Double(max(count, 1))
        #expect(count > 0 && ours <= allowed, "\(model): ours \(ours) from float32, transformers' bf16 \(allowed)")
    }
}
