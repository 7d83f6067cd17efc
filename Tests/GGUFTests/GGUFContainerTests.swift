import FixtureSupport
import Foundation
@testable import GGUF
import Quantization
import Testing

/// The GGUF container: what the writer lays out reads back exactly, and a damaged or lying file
/// is a one-line GGUFError naming the problem, never a crash, a hang or a huge allocation.
struct GGUFContainerTests {
    static let metadata: [(key: String, value: GGUFValue)] = [
        ("general.architecture", .string("llama")), ("u8", .uint8(7)), ("i8", .int8(-7)), ("u16", .uint16(700)),
        ("i16", .int16(-700)), ("u32", .uint32(70_000)), ("i32", .int32(-70_000)), ("u64", .uint64(1 << 40)),
        ("i64", .int64(-(1 << 40))), ("f32", .float32(0.25)), ("f64", .float64(-1e-300)), ("flag", .bool(true)),
        ("text", .string("ünïcödé ▁ tokens")), ("list", .strings(["a", "b c", ""])), ("scores", .float32s([-1, 0, 2.5])),
        ("empty", .array(.int32, [])),
    ]

    func write(_ tensors: [(GGUFTensorInfo, [UInt8])], to url: URL, alignment: Int = 32) throws {
        let writer = try GGUFWriter(destination: url, metadata: Self.metadata, tensors: tensors.map(\.0), alignment: alignment)
        for (info, bytes) in tensors { try bytes.withUnsafeBytes { try writer.write(info.name, bytes: $0) } }
        try writer.commit()
    }

    func randomTensors() throws -> [(GGUFTensorInfo, [UInt8])] {
        var generator = SystemRandomNumberGenerator()
        return try [(GGMLType.f32, [7]), (.f16, [32, 3]), (.q8_0, [64, 2]), (.q4_K, [256, 2, 3]), (.bf16, [5])].enumerated().map { index, spec in
            let (type, dimensions) = spec
            let info = GGUFTensorInfo(name: "tensor.\(index)", dimensions: dimensions, type: type)
            let values = (0..<info.elementCount).map { _ in Float.random(in: -1...1, using: &generator) }
            var bytes = [UInt8](repeating: 0, count: info.byteCount)
            try values.withUnsafeBufferPointer { source in
                try bytes.withUnsafeMutableBytes {
                    try quantizeRows(type, source.baseAddress!, rows: info.rowCount, rowLength: info.rowLength, importance: nil, into: $0.baseAddress!)
                }
            }
            return (info, bytes)
        }
    }

    @Test(arguments: [32, 64]) func writtenFileReadsBack(alignment: Int) throws {
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("round.gguf")
        let tensors = try randomTensors()
        try write(tensors, to: url, alignment: alignment)
        let file = try GGUFFile(path: url.path)
        #expect(file.version == 3 && file.alignment == alignment)
        let expected = Self.metadata + (alignment == 32 ? [] : [("general.alignment", GGUFValue.uint32(UInt32(alignment)))])
        #expect(file.metadata.map(\.key) == expected.map(\.key))
        #expect(zip(file.metadata, expected).allSatisfy { $0.value == $1.value })
        #expect(file.dataOffset % alignment == 0)
        for (info, bytes) in tensors {
            let read = try #require(file.tensor(info.name))
            #expect(read.dimensions == info.dimensions && read.type == info.type && read.offset % alignment == 0)
            #expect(Array(file.bytes(of: read)) == bytes)
        }
    }

    /// Bytes of a well-formed file, then damaged in one place per case.
    @Test func damagedFilesAreOneLineErrors() throws {
        let directory = try Fixtures.temporaryDirectory()
        let good = directory.appendingPathComponent("good.gguf")
        try write(try randomTensors(), to: good)
        let bytes = try [UInt8](Data(contentsOf: good))
        let file = try GGUFFile(path: good.path)
        let firstTensorEntry = file.tensors[0]
        func offsetOf(_ text: String) -> Int {
            let needle = Array(text.utf8)
            return (0...(bytes.count - needle.count)).first { Array(bytes[$0..<($0 + needle.count)]) == needle }!
        }
        func patched(_ edit: (inout [UInt8]) -> Void) -> [UInt8] {
            var copy = bytes
            edit(&copy)
            return copy
        }
        func put64(_ value: UInt64, at offset: Int, in data: inout [UInt8]) {
            withUnsafeBytes(of: value.littleEndian) { data.replaceSubrange(offset..<(offset + 8), with: $0) }
        }
        // The tensor entry "tensor.0": name length (8) + name, rank (4), ne (8·rank), type (4), offset (8).
        let entry = offsetOf("tensor.0") - 8
        let cases: [(String, [UInt8], String)] = [
            ("truncated string", Array(bytes[0..<(offsetOf("ünïcödé") + 4)]), "string of 22 bytes runs past the end of the file"),
            ("truncated number", Array(bytes[0..<(offsetOf("ünïcödé") - 10)]), "truncated while reading"),
            ("header cut early", Array(bytes[0..<100]), "more than the file holds"),
            ("empty file", [], "not a GGUF file"),
            ("bad magic", patched { $0[0] = UInt8(ascii: "X") }, "not a GGUF file"),
            ("version 9", patched { $0[4] = 9 }, "GGUF version 9"),
            ("huge key count", patched { put64(UInt64.max, at: 16, in: &$0) }, "more than the file holds"),
            ("huge tensor count", patched { put64(1 << 50, at: 8, in: &$0) }, "more than the file holds"),
            ("string past the end", patched { put64(1 << 40, at: 24, in: &$0) }, "runs past the end of the file"),
            ("unknown value type", patched { $0[24 + 8 + 20] = 99 }, "unknown value type 99"),
            ("rank 9", patched { $0[entry + 16] = 9 }, "rank 9"),
            ("zero dimension", patched { put64(0, at: entry + 20, in: &$0) }, "impossible dimension 0"),
            ("unknown tensor type", patched { $0[entry + 28] = 200 }, "ggml type 200"),
            ("misaligned offset", patched { put64(3, at: entry + 32, in: &$0) }, "not a multiple of the alignment"),
            ("data past the end", patched { put64(1 << 30, at: entry + 32, in: &$0) }, "runs past the end of the file"),
            ("overlapping tensors", patched { put64(UInt64(firstTensorEntry.offset), at: offsetOf("tensor.1") + 8 + 4 + 16 + 4, in: &$0) }, "overlap"),
            ("data cut short", Array(bytes.dropLast(40)), "runs past the end of the file"),
        ]
        for (name, data, fragment) in cases {
            let url = directory.appendingPathComponent("bad.gguf")
            try Data(data).write(to: url)
            #expect(throws: GGUFError.self, "\(name)") { _ = try GGUFFile(path: url.path) }
            do { _ = try GGUFFile(path: url.path) } catch {
                #expect("\(error)".contains(fragment), "\(name): \(error)")
                #expect(!"\(error)".contains("\n"))
            }
        }
        // A directory and a FIFO are refused before anything is read.
        #expect(throws: (any Error).self) { _ = try GGUFFile(path: directory.path) }
        let fifo = directory.appendingPathComponent("fifo.gguf")
        #expect(mkfifo(fifo.path, 0o600) == 0)
        #expect(throws: (any Error).self) { _ = try GGUFFile(path: fifo.path) }
    }

    @Test func writerChecksWhatItIsGiven() throws {
        let directory = try Fixtures.temporaryDirectory()
        let url = directory.appendingPathComponent("w.gguf")
        let tensor = GGUFTensorInfo(name: "t", dimensions: [32, 2], type: .q8_0)
        #expect(throws: GGUFError.self) {
            _ = try GGUFWriter(destination: url, metadata: [], tensors: [GGUFTensorInfo(name: "t", dimensions: [48], type: .q8_0)])
        }
        #expect(throws: GGUFError.self) { _ = try GGUFWriter(destination: url, metadata: [], tensors: [tensor, tensor]) }
        do {
            let writer = try GGUFWriter(destination: url, metadata: [], tensors: [tensor])
            try [UInt8](repeating: 0, count: 34).withUnsafeBytes { try writer.write("t", bytes: $0) }
            // Half the tensor: commit refuses, and the partial file is removed with the writer.
            #expect(throws: GGUFError.self) { try writer.commit() }
        }
        #expect(!FileManager.default.fileExists(atPath: url.path))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
    }

    @Test func llamaQueryKeyPermutationInverts() {
        let rows = 16, width = 3, heads = 2
        let original = (0..<(rows * width)).map(Float.init)
        var values = original
        values.withUnsafeMutableBufferPointer { GGUFTensorSource.permuteRows($0.baseAddress!, rows: rows, rowLength: width, heads: heads) }
        // convert_hf_to_gguf.py: reshape(heads, 2, d/2, in).swapaxes(1, 2): row 2i+j of a head is row j·d/2+i.
        #expect(values[(2 * 1 + 1) * width] == original[(1 * 4 + 1) * width])
        #expect(values[(8 + 2 * 3 + 0) * width] == original[(8 + 0 * 4 + 3) * width])
        values.withUnsafeMutableBufferPointer { GGUFTensorSource.unpermuteRows($0.baseAddress!, rows: rows, rowLength: width, heads: heads) }
        #expect(values == original)
    }
}
