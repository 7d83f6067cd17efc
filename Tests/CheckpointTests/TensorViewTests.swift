import Checkpoint
import FixtureSupport
import Foundation
import Testing

/// `Checkpoint.presenting`: a view is a block of a stored tensor, read exactly as that block.
struct TensorViewTests {
    let checkpoint: Checkpoint
    let stored = "model.layers.0.mlp.experts.gate_up_proj"

    init() throws {
        checkpoint = try Checkpoint(directory: Fixtures.url("Fixtures/models/tiny-qwen3-moe-fused"))
    }

    @Test func aViewReadsItsBlockOfTheStoredTensor() throws {
        let shape = try #require(checkpoint.descriptor(stored)).shape  // [experts, 2 x width, hidden]
        let whole = try checkpoint.float32(stored).scalars
        let block = shape[1] / 2 * shape[2]
        let offset = 3 * block  // the second expert's up rows
        let view = try checkpoint.presenting([TensorView(name: "up", stored: stored, shape: [shape[1] / 2, shape[2]], elementOffset: offset)])
        #expect(try view.float32("up").scalars == Array(whole[offset..<(offset + block)]))
        #expect(view.descriptor(stored) == nil, "the stored tensor is presented only through its views")
        var bits = [UInt16](repeating: 0, count: block)
        try bits.withUnsafeMutableBufferPointer { try view.readBFloat16("up", into: $0.baseAddress!) }
        #expect(view.storedBFloat16("up").map { Array(UnsafeBufferPointer(start: $0, count: block)) } == bits)
    }

    @Test func aViewOutsideTheStoredTensorIsAnError() throws {
        let shape = try #require(checkpoint.descriptor(stored)).shape
        let tooFar = TensorView(name: "beyond", stored: stored, shape: [shape[1], shape[2]], elementOffset: shape[0] * shape[1] * shape[2] - 1)
        #expect(throws: CheckpointError.self) { try checkpoint.presenting([tooFar]) }
        #expect(throws: CheckpointError.self) { try checkpoint.presenting([TensorView(name: "x", stored: "missing", shape: [1])]) }
    }
}
