import Checkpoint
import FixtureSupport
import Foundation
import Testing

/// Every way a safetensors file can lie must give one line naming the file and the problem.
struct SafetensorsValidationTests {
    /// Writes `8-byte length + header + data` (or raw `bytes`) to a scratch file.
    func file(header: String, data: [UInt8] = [], lengthOverride: UInt64? = nil) throws -> String {
        let headerBytes = Array(header.utf8)
        var length = (lengthOverride ?? UInt64(headerBytes.count)).littleEndian
        var bytes = withUnsafeBytes(of: &length) { Array($0) }
        bytes += headerBytes + data
        return try raw(bytes)
    }

    func raw(_ bytes: [UInt8]) throws -> String {
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("model.safetensors")
        try Data(bytes).write(to: url)
        return url.path
    }

    func expectError(_ path: String, containing fragment: String) {
        do {
            _ = try SafetensorsFile(path: path)
            Issue.record("expected an error containing '\(fragment)'")
        } catch let error as CheckpointError {
            #expect(error.file == path)
            #expect(error.description.contains(fragment), "got: \(error)")
            let lineBreaks = error.description.filter(\.isNewline)
            #expect(lineBreaks.isEmpty, "got: \(error)")
        } catch {
            Issue.record("unexpected error type: \(error)")
        }
    }

    @Test func acceptsAWellFormedFile() throws {
        let path = try file(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"format":"pt"}}"#,
                            data: [UInt8](repeating: 0, count: 8))
        let parsed = try SafetensorsFile(path: path)
        #expect(parsed.header.tensors.map(\.name) == ["a"])
        #expect(parsed.header.metadata["format"] == "pt")
    }

    @Test func truncatedFile() throws {
        expectError(try raw([1, 2, 3]), containing: "truncated")
    }

    @Test func headerLengthBeyondTheFile() throws {
        expectError(try file(header: "{}", lengthOverride: 1 << 40), containing: "runs past the end")
    }

    @Test func invalidJSON() throws {
        expectError(try file(header: "{not json"), containing: "not a valid JSON object")
    }

    @Test func unknownDType() throws {
        expectError(try file(header: #"{"a":{"dtype":"F7","shape":[1],"data_offsets":[0,1]}}"#, data: [0]), containing: "unknown dtype 'F7'")
    }

    @Test func nameWithALineBreakIsReportedOnOneLine() throws {
        // expectError also checks that the report is one line.
        expectError(try file(header: #"{"a\nb\r":{"dtype":"F7","shape":[1],"data_offsets":[0,1]}}"#, data: [0]),
                    containing: #"tensor 'a\nb\r': unknown dtype"#)
    }

    @Test func offsetsOutOfRange() throws {
        expectError(try file(header: #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: [UInt8](repeating: 0, count: 8)),
                    containing: "outside the 8-byte data section")
    }

    @Test func overlappingTensors() throws {
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        expectError(try file(header: header, data: [UInt8](repeating: 0, count: 12)), containing: "overlap")
    }

    @Test func shapeDisagreesWithByteLength() throws {
        expectError(try file(header: #"{"a":{"dtype":"BF16","shape":[3],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8)),
                    containing: "needs 6 bytes but data_offsets span 8")
    }

    @Test func truncatedDataSection() throws {
        // A real file cut short: the header promises more data than is left.
        let source = Fixtures.url("Fixtures/models/tiny-mixtral/model.safetensors")
        let bytes = try Array(Data(contentsOf: source))
        expectError(try raw(Array(bytes.prefix(bytes.count - 100))), containing: "outside the")
    }
}
