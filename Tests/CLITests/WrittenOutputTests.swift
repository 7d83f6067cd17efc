import FixtureSupport
import Foundation
import Inference
import Models
import Testing

/// `prune` and `merge` outputs as stock transformers loads them: each recorded job
/// (Fixtures/scripts/record_written_outputs.py) is run again, and moe-compress's forward pass on
/// what it wrote matches transformers' logits on the same files (1e-3).
struct WrittenOutputTests {
    @Test(arguments: ["tiny-mixtral", "tiny-qwen2-moe", "tiny-qwen3-moe", "tiny-olmoe"])
    func transformersComputesWhatWeComputeOnOurOutputs(model name: String) throws {
        let jobs = try Fixtures.record("written-outputs.json").object("models").object(name)
        #expect(jobs.count == 3)
        for (job, value) in jobs {
            let record = try #require(value as? [String: Any])
            var arguments = (record["arguments"] as? [String]) ?? []
            let output = try Fixtures.temporaryDirectory().appendingPathComponent(job)
            guard let flag = arguments.firstIndex(of: "-o") else { Issue.record("\(job): no -o"); continue }
            arguments[flag + 1] = output.path
            let result = try MoECompressBinary.run(arguments)
            #expect(result.status == 0, "\(name) \(job): \(result.stderr)")
            let written = try Model.open(output)
            let forward = ForwardPass(model: written.description, source: written.source)
            for testCase in record.objects("forward") {
                let ids = testCase.ints("input_ids")
                let states = try forward.hiddenStates(TokenBatch(sequences: [ids]))
                let logits = try forward.outputHead().logits(states.pointer, rows: ids.count).array
                let expected = ((testCase["logits"] as? [[Any]]) ?? []).flatMap { $0.map { Float(($0 as? NSNumber)?.doubleValue ?? .nan) } }
                let difference = zip(logits, expected).map { abs($0 - $1) }.max() ?? .infinity
                #expect(logits.count == expected.count && difference <= 1e-3, "\(name) \(job): max |logit difference| \(difference)")
            }
        }
    }
}
