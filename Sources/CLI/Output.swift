import Checkpoint
import Foundation

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
