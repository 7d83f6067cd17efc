import Architectures
import Checkpoint
import Foundation
import Tokenizer

/// A model as every command and stage works with it: its config, the architecture resolved and
/// checked against the tensors, and where the tensors come from. The source is a checkpoint on
/// disk for an opened model and a computed view for a stage's output (experts dropped or
/// merged), so a stage's result can be evaluated, or fed to the next stage, without being written.
public final class Model: @unchecked Sendable {
    public let config: ModelConfig
    public let description: ModelDescription
    public let source: TensorSource
    /// The directory the model was opened from: its tokenizer and other small files travel with
    /// every stage's output, and no output may be written into it.
    public let origin: URL
    /// Files a stage adds beside the weights (name → contents), e.g. the modeling code that lets
    /// transformers load per-layer expert counts; written with the model.
    public let files: [String: Data]

    /// A stage's output: `config` describes `source`, which is checked against it.
    public init(config: ModelConfig, source: TensorSource, origin: URL, files: [String: Data] = [:]) throws {
        self.config = config
        self.source = source
        self.origin = origin
        self.files = files
        description = try ModelDescription(config: config, source: source)
    }

    /// Opens a checkpoint directory (per-expert or transformers 5's fused expert layout).
    public static func open(_ directory: URL) throws -> Model {
        let checkpoint = try Checkpoint(directory: directory).withPerExpertTensors()
        return try Model(config: checkpoint.config, source: checkpoint, origin: directory)
    }

    public static func open(path: String) throws -> Model { try open(URL(fileURLWithPath: path)) }

    /// The checkpoint behind a model opened from disk; an error for a stage's computed output.
    public func openedCheckpoint() throws -> Checkpoint {
        guard let checkpoint = source as? Checkpoint else {
            throw CheckpointError(file: origin.path, "is computed by a stage, not stored in files")
        }
        return checkpoint
    }

    public func tokenizer() throws -> Tokenizer {
        let url = origin.appendingPathComponent("tokenizer.json")
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw CheckpointError(file: url.path, "missing (needed to tokenize text; pass --ids to skip it)")
        }
        try RegularFile.check(url.path)
        return try Tokenizer(contentsOf: url)
    }
}
