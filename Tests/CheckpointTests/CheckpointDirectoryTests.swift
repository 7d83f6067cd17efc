import Checkpoint
import FixtureSupport
import Foundation
import Testing

struct CheckpointDirectoryTests {
    /// A copy of a fixture model that a test may damage.
    func copyOfFixture(_ name: String) throws -> URL {
        let copy = try Fixtures.temporaryDirectory().appendingPathComponent(name)
        try FileManager.default.copyItem(at: Fixtures.url("Fixtures/models/\(name)"), to: copy)
        return copy
    }

    @Test func opensAShardedCheckpointThroughItsIndex() throws {
        let checkpoint = try Checkpoint(directory: Fixtures.url("Fixtures/models/tiny-qwen2-moe"))
        #expect(checkpoint.shards.count >= 3)
        #expect(checkpoint.contains("model.embed_tokens.weight"))
        #expect(checkpoint.descriptor("model.embed_tokens.weight")?.dtype == .bf16)
    }

    @Test func missingShardNamedByTheIndex() throws {
        let model = try copyOfFixture("tiny-qwen2-moe")
        let shard = try FileManager.default.contentsOfDirectory(atPath: model.path).filter { $0.hasSuffix(".safetensors") }.sorted()[1]
        try FileManager.default.removeItem(at: model.appendingPathComponent(shard))
        #expect {
            _ = try Checkpoint(directory: model)
        } throws: { error in
            "\(error)".contains(Checkpoint.indexFileName) && "\(error)".contains("'\(shard)', which is missing")
        }
    }

    /// A shard name is joined to the model directory; one that leaves it must be refused before
    /// anything is opened (it used to open `../outside.safetensors` and report on that file).
    @Test(arguments: ["../outside.safetensors", "/tmp/outside.safetensors", "sub/outside.safetensors", "..", ""])
    func shardNameOutsideTheModelDirectory(_ shard: String) throws {
        let model = try copyOfFixture("tiny-qwen2-moe")
        let existing = try FileManager.default.contentsOfDirectory(atPath: model.path).filter { $0.hasSuffix(".safetensors") }.sorted()[0]
        try FileManager.default.copyItem(at: model.appendingPathComponent(existing),
                                         to: model.deletingLastPathComponent().appendingPathComponent("outside.safetensors"))
        let indexURL = model.appendingPathComponent(Checkpoint.indexFileName)
        var index = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: indexURL)) as? [String: Any])
        var weightMap = try #require(index["weight_map"] as? [String: String])
        weightMap["lm_head.weight"] = shard
        index["weight_map"] = weightMap
        try JSONSerialization.data(withJSONObject: index).write(to: indexURL)
        #expect {
            _ = try Checkpoint(directory: model)
        } throws: { error in
            let error = try #require(error as? CheckpointError)
            return error.file == indexURL.path && error.problem.contains("shard name '\(shard)'")
                && !error.description.contains("\n")
        }
    }

    @Test func missingConfig() throws {
        let model = try copyOfFixture("tiny-mixtral")
        try FileManager.default.removeItem(at: model.appendingPathComponent("config.json"))
        #expect { _ = try Checkpoint(directory: model) } throws: { "\($0)".contains("config.json: missing") }
    }
}
