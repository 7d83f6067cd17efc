import Checkpoint
import FixtureSupport
import Foundation
import Models
import Tensors
import Testing

/// A derived source reads exactly what its recipes say, on every read path (Float32, rows, bf16,
/// stored bytes, in place), against the base checkpoint's own reads.
struct DerivedTensorSourceTests {
    let base: Checkpoint
    let matrix: String
    let vector: String

    init() throws {
        base = try Checkpoint(directory: Fixtures.url("Fixtures/default-model"))  // bf16 weights
        matrix = "model.layers.0.block_sparse_moe.gate.weight"
        vector = "model.layers.0.input_layernorm.weight"
    }

    func floats(_ source: TensorSource, _ name: String) throws -> [Float] { try source.float32(name).scalars }

    @Test func rowsOfAMatrixOnEveryReadPath() throws {
        let rows = [5, 0, 3]
        let source = try DerivedTensorSource(base: base, recipes: [("picked", .rows(of: matrix, rows))])
        let whole = try floats(base, matrix), width = try #require(base.descriptor(matrix)).shape[1]
        #expect(source.descriptor("picked")?.shape == [3, width])
        #expect(source.descriptor("picked")?.dtype == base.descriptor(matrix)?.dtype)
        let expected = rows.flatMap { Array(whole[($0 * width)..<(($0 + 1) * width)]) }
        #expect(try floats(source, "picked") == expected)

        var someRows = [Float](repeating: .nan, count: 2 * width)
        try someRows.withUnsafeMutableBufferPointer { try source.readFloat32Rows("picked", rows: [2, 0], into: $0.baseAddress!) }
        #expect(someRows == Array(expected[(2 * width)..<(3 * width)]) + Array(expected[0..<width]))

        var bits = [UInt16](repeating: 0, count: 3 * width), stored = [UInt8](repeating: 0, count: 3 * width * 2)
        try bits.withUnsafeMutableBufferPointer { try source.readBFloat16("picked", into: $0.baseAddress!) }
        try stored.withUnsafeMutableBytes { try source.readStored("picked", into: $0.baseAddress!) }
        #expect(bits.map { Float(bitPattern: UInt32($0) << 16) } == expected)
        #expect(stored.withUnsafeBytes { Array($0.bindMemory(to: UInt16.self)) } == bits)
        #expect(source.storedBFloat16("picked") == nil, "selected rows are not stored contiguously")
        #expect(throws: (any Error).self) {
            try someRows.withUnsafeMutableBufferPointer { try source.readFloat32Rows("picked", rows: [3], into: $0.baseAddress!) }
        }
    }

    @Test func entriesOfAVectorAndRenamedCopies() throws {
        let source = try DerivedTensorSource(base: base, recipes: [("entries", .rows(of: vector, [7, 1])), ("renamed", .copy(of: matrix))])
        let whole = try floats(base, vector)
        #expect(try floats(source, "entries") == [whole[7], whole[1]])
        #expect(try floats(source, "renamed") == floats(base, matrix))
        #expect(source.storedBFloat16("renamed") == base.storedBFloat16(matrix))
        #expect(source.tensorNames == ["entries", "renamed"])
    }

    @Test func recipesOutsideTheBaseAreRefused() {
        #expect(throws: (any Error).self) { _ = try DerivedTensorSource(base: base, recipes: [("x", .copy(of: "no.such.tensor"))]) }
        #expect(throws: (any Error).self) { _ = try DerivedTensorSource(base: base, recipes: [("x", .rows(of: matrix, [1_000_000]))]) }
        #expect(throws: (any Error).self) { _ = try DerivedTensorSource(base: base, recipes: [("x", .copy(of: matrix)), ("x", .copy(of: vector))]) }
    }
}
