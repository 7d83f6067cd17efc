import Architectures
import Checkpoint
import FixtureSupport
import Foundation
import Testing

struct ModelDescriptionTests {
    func config(_ model: String, editing edit: (inout [String: JSONValue]) -> Void) throws -> ModelConfig {
        let original = try ModelConfig(contentsOf: Fixtures.url("Fixtures/models/\(model)/config.json"))
        guard case .object(var members) = original.json else { throw FixtureError("config is not an object") }
        edit(&members)
        return ModelConfig(path: "config.json", json: .object(members))
    }

    @Test func unknownModelTypeNamesTheSupportedList() throws {
        let config = try config("tiny-mixtral") { $0["model_type"] = .string("llama") }
        #expect { _ = try ArchitectureRegistry.spec(for: config) } throws: { error in
            let text = "\(error)"
            return text.contains("unknown model_type 'llama'") && text.contains("mixtral, qwen2_moe, qwen3_moe, olmoe")
        }
    }

    @Test func missingRequiredKey() throws {
        let config = try config("tiny-mixtral") { $0["hidden_size"] = nil }
        #expect { _ = try ModelDescription(config: config, spec: .mixtral) } throws: { "\($0)".contains("missing required key 'hidden_size'") }
    }

    /// A window that lets a query see no key (not even itself) is an invalid config, not a NaN.
    @Test func nonPositiveSlidingWindow() throws {
        let config = try config("tiny-mixtral") { $0["sliding_window"] = .int(0) }
        #expect { _ = try ModelDescription(config: config, spec: .mixtral) } throws: { "\($0)".contains("'sliding_window' must be a positive number of tokens") }
        let disabled = try self.config("tiny-qwen2-moe") { $0["sliding_window"] = .int(0) }
        #expect(try ModelDescription(config: disabled, spec: .qwen2MoE).slidingWindow == nil, "use_sliding_window is false")
    }

    @Test func configDisagreeingWithTensorShapes() throws {
        let checkpoint = try Checkpoint(directory: Fixtures.url("Fixtures/models/tiny-mixtral"))
        let experts = try checkpoint.config.int("num_local_experts")
        let config = try config("tiny-mixtral") { $0["num_local_experts"] = .int(experts - 1) }
        let description = try ModelDescription(config: config, spec: .mixtral)
        #expect { try description.validate(against: checkpoint, configPath: "config.json") } throws: { error in
            "\(error)".contains("num_local_experts \(experts - 1)")
        }
    }

    /// transformers 5 writes `rope_parameters: {rope_type, rope_theta}` instead of `rope_theta`.
    @Test func ropeThetaFromTransformers5RopeParameters() throws {
        let original = try ModelDescription(config: try config("tiny-qwen3-moe") { _ in }, spec: .qwen3MoE)
        let moved = try config("tiny-qwen3-moe") { members in
            let theta = members["rope_theta"]!
            members["rope_theta"] = nil
            members["rope_parameters"] = .object(["rope_type": .string("default"), "rope_theta": theta])
        }
        #expect(try ModelDescription(config: moved, spec: .qwen3MoE).ropeTheta == original.ropeTheta)
        #expect(original.ropeTheta != ArchitectureSpec.qwen3MoE.keys.defaultRopeTheta, "the fixture should use a non-default theta")
        let yarn = try config("tiny-qwen3-moe") { $0["rope_parameters"] = .object(["rope_type": .string("yarn")]) }
        #expect { _ = try ModelDescription(config: yarn, spec: .qwen3MoE) } throws: { "\($0)".contains("rope_parameters type 'yarn'") }
    }

    @Test func qwen2DenseLayersFollowMlpOnlyLayers() throws {
        let checkpoint = try Checkpoint(directory: Fixtures.url("Fixtures/models/tiny-qwen2-moe"))
        let description = try ModelDescription(checkpoint: checkpoint)
        let mlpOnly = try checkpoint.config.optionalIntArray("mlp_only_layers") ?? []
        #expect(!mlpOnly.isEmpty)
        #expect(description.denseLayers == mlpOnly.sorted())
    }

    @Test(arguments: ["tiny-mixtral", "tiny-qwen2-moe", "tiny-qwen3-moe", "tiny-olmoe"])
    func everyStoredTensorIsRecognised(model: String) throws {
        let checkpoint = try Checkpoint(directory: Fixtures.url("Fixtures/models/\(model)"))
        let inventory = ModelInventory(description: try ModelDescription(checkpoint: checkpoint), source: checkpoint)
        #expect(inventory.unrecognizedTensors.isEmpty, "\(inventory.unrecognizedTensors)")
        #expect((inventory.parametersByKind[.routedExperts] ?? 0) > 0)
    }
}
