import Architectures
import Checkpoint
import Foundation
import GGUF
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
    /// tokenizer.json's bytes when the model carries them itself (a GGUF file); nil: read the
    /// origin directory's tokenizer.json.
    public let tokenizerJSON: Data?

    /// A stage's output: `config` describes `source`, which is checked against it.
    public init(config: ModelConfig, source: TensorSource, origin: URL, files: [String: Data] = [:],
                tokenizerJSON: Data? = nil) throws {
        self.config = config
        self.source = source
        self.origin = origin
        self.files = files
        self.tokenizerJSON = tokenizerJSON
        description = try ModelDescription(config: config, source: source)
    }

    /// Opens a checkpoint directory (per-expert or transformers 5's fused expert layout), or a
    /// GGUF file moe-compress (or llama.cpp's converter) wrote for a supported family.
    public static func open(_ url: URL) throws -> Model {
        if GGUFModelReader.isGGUF(url.path) {
            let (config, source, tokenizer) = try GGUFModelReader.open(url.path)
            return try Model(config: config, source: source, origin: url, tokenizerJSON: tokenizer)
        }
        let checkpoint = try Checkpoint(directory: url).withPerExpertTensors()
        return try Model(config: checkpoint.config, source: checkpoint, origin: url)
    }

    /// True for a model read from one GGUF file rather than a checkpoint directory.
    public var isGGUF: Bool { source is GGUFTensorSource }

    public static func open(path: String) throws -> Model { try open(URL(fileURLWithPath: path)) }

    /// The checkpoint behind a model opened from disk; an error for a stage's computed output.
    public func openedCheckpoint() throws -> Checkpoint {
        guard let checkpoint = source as? Checkpoint else {
            throw CheckpointError(file: origin.path, "is computed by a stage, not stored in files")
        }
        return checkpoint
    }

    public func tokenizer() throws -> Tokenizer {
        if let tokenizerJSON { return try Tokenizer(data: tokenizerJSON, file: origin.path) }
        let url = origin.appendingPathComponent("tokenizer.json")
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw CheckpointError(file: url.path, "missing (needed to tokenize text; pass --ids to skip it)")
        }
        try RegularFile.check(url.path)
        return try Tokenizer(contentsOf: url)
    }
}
