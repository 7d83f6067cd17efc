import Architectures
import Checkpoint
import Foundation

/// Opens a GGUF file written for one of the supported families as a config and a tensor source,
/// the two things every command works from; the tokenizer comes from the file's copy of
/// tokenizer.json.
public enum GGUFModelReader {
    public static func isGGUF(_ path: String) -> Bool {
        guard let descriptor = try? RegularFile.open(path) else { return false }
        defer { close(descriptor) }
        var magic = [UInt8](repeating: 0, count: 4)
        return read(descriptor, &magic, 4) == 4 && magic == GGUFFile.magic
    }

    public static func open(_ path: String) throws -> (config: ModelConfig, source: GGUFTensorSource, tokenizer: Data?) {
        let file = try GGUFFile(path: path)
        let architecture = try file.string("general.architecture")
        guard let family = GGUFFamily.forArchitecture(architecture) else {
            let known = GGUFFamily.all.map(\.architecture).joined(separator: ", ")
            throw GGUFError(file: path, "general.architecture '\(architecture)' is not one moe-compress reads (\(known))")
        }
        let config = try GGUFModelMetadata.config(of: file, family: family, hasOutputHead: file.tensor("output.weight") != nil)
        let spec = try ArchitectureRegistry.spec(for: config)
        let source = try GGUFTensorSource(file: file, family: family, templates: spec.tensors,
                                          attentionHeads: try config.int("num_attention_heads"),
                                          keyValueHeads: try config.int("num_key_value_heads"))
        let tokenizer = file["tokenizer.huggingface.json"]?.stringValue.map { Data($0.utf8) }
        return (config, source, tokenizer)
    }
}
