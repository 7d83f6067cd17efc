import Checkpoint

/// The supported families, looked up by config.json's model_type.
public enum ArchitectureRegistry {
    public static let all: [ArchitectureSpec] = [.mixtral, .qwen2MoE, .qwen3MoE, .olmoe]

    public static var supportedModelTypes: [String] { all.flatMap(\.modelTypes) }

    public static func spec(for config: ModelConfig) throws -> ArchitectureSpec {
        guard let modelType = try config.optionalString("model_type") else {
            throw config.error("missing 'model_type' (supported: \(supportedModelTypes.joined(separator: ", ")))")
        }
        guard let spec = all.first(where: { $0.modelTypes.contains(modelType) }) else {
            throw config.error("unknown model_type '\(modelType)' (supported: \(supportedModelTypes.joined(separator: ", ")))")
        }
        return spec
    }
}
