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

    @Test func missingConfig() throws {
        let model = try copyOfFixture("tiny-mixtral")
        try FileManager.default.removeItem(at: model.appendingPathComponent("config.json"))
        #expect { _ = try Checkpoint(directory: model) } throws: { "\($0)".contains("config.json: missing") }
    }
}
