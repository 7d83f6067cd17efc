import Architectures
import Checkpoint
import Foundation
import Tokenizer

/// A checkpoint opened and resolved the way every command needs it.
struct LoadedModel {
    let directory: URL
    let checkpoint: Checkpoint
    let description: ModelDescription

    init(path: String) throws {
        directory = URL(fileURLWithPath: path)
        checkpoint = try Checkpoint(directory: directory).withPerExpertTensors()
        description = try ModelDescription(checkpoint: checkpoint)
    }

    func tokenizer() throws -> Tokenizer {
        let url = directory.appendingPathComponent("tokenizer.json")
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw CheckpointError(file: url.path, "missing (needed to tokenize text; pass --ids to skip it)")
        }
        try RegularFile.check(url.path)
        return try Tokenizer(contentsOf: url)
    }
}

/// Reads a text file that must be UTF-8.
func readUTF8Text(_ path: String) throws -> String {
    let data = try RegularFile.read(path)
    guard let text = String(validating: data, as: UTF8.self) else {
        throw CheckpointError(file: path, "not valid UTF-8 text")
    }
    return text
}

/// Writes an Encodable as one JSON object on stdout.
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    let data = try encoder.encode(value)
    FileHandle.standardOutput.write(data)
    FileHandle.standardOutput.write(Data("\n".utf8))
}
