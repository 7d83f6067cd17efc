import Checkpoint
import FixtureSupport
import Foundation
import Tensors
import Testing

struct CheckpointWriterTests {
    /// read → write (re-sharded) → read gives identical bytes for every tensor, and the index is right.
    @Test(arguments: ["tiny-mixtral", "tiny-qwen2-moe"])
    func roundTripKeepsEveryByte(model: String) throws {
        let input = try Checkpoint(directory: Fixtures.url("Fixtures/models/\(model)"))
        let output = try Fixtures.temporaryDirectory().appendingPathComponent("out")
        let descriptors = input.tensorNames.map { input.descriptor($0)! }
        let writer = try CheckpointWriter(destination: output, tensors: descriptors, maxShardBytes: 40_000, inputs: [input.directory])
        for name in input.tensorNames {
            let (file, info) = input.location(of: name)!
            try writer.write(name, bytes: file.rawBytes(of: info))
        }
        try writer.commit(config: input.config, copyingAuxiliaryFilesFrom: input.directory)

        let reread = try Checkpoint(directory: output)
        #expect(reread.shards.count > 1)
        #expect(FileManager.default.fileExists(atPath: output.appendingPathComponent(Checkpoint.indexFileName).path))
        #expect(FileManager.default.fileExists(atPath: output.appendingPathComponent("tokenizer.json").path))
        #expect(reread.tensorNames == input.tensorNames)
        #expect(reread.config == ModelConfig(path: reread.config.path, json: input.config.json))
        for name in input.tensorNames {
            let (a, infoA) = input.location(of: name)!
            let (b, infoB) = reread.location(of: name)!
            #expect(infoA.dtype == infoB.dtype && infoA.shape == infoB.shape)
            #expect(Array(a.rawBytes(of: infoA)) == Array(b.rawBytes(of: infoB)), "\(name) bytes differ")
        }
    }

    @Test func float32WritesNarrowToTheDeclaredDType() throws {
        let output = try Fixtures.temporaryDirectory().appendingPathComponent("out")
        let values: [Float] = [1, -2.5, 3.140625, 0]
        let writer = try CheckpointWriter(destination: output, tensors: [TensorDescriptor(name: "w", dtype: .bf16, shape: [2, 2])])
        try values.withUnsafeBufferPointer { try writer.write("w", float32: $0) }
        // A stage describes its output by changing the input's config.
        let config = ModelConfig(path: "config.json", json: .object(["model_type": .string("test"), "num_experts": .int(8)]))
            .setting("num_experts", to: .int(6))
        try writer.commit(config: config, copyingAuxiliaryFilesFrom: nil)
        #expect(try ModelConfig(contentsOf: output.appendingPathComponent("config.json")).optionalInt("num_experts") == 6)
        let file = try SafetensorsFile(path: output.appendingPathComponent("model.safetensors").path)
        var back = [Float](repeating: 0, count: 4)
        try back.withUnsafeMutableBufferPointer { try file.readFloat32(file.tensorsByName["w"]!, into: $0.baseAddress!) }
        #expect(back == values)
    }

    @Test func anAbandonedWriterLeavesNothingBehind() throws {
        let parent = try Fixtures.temporaryDirectory()
        let output = parent.appendingPathComponent("out")
        do {
            let writer = try CheckpointWriter(destination: output, tensors: [TensorDescriptor(name: "w", dtype: .f32, shape: [4])])
            #expect(FileManager.default.fileExists(atPath: writer.temporaryDirectory.path))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent.path).isEmpty)
    }

    @Test func refusesToCommitWithAMissingTensor() throws {
        let output = try Fixtures.temporaryDirectory().appendingPathComponent("out")
        let writer = try CheckpointWriter(destination: output, tensors: [TensorDescriptor(name: "w", dtype: .f32, shape: [4])])
        #expect(throws: CheckpointError.self) {
            try writer.commit(config: ModelConfig(path: "c", json: .object([:])), copyingAuxiliaryFilesFrom: nil)
        }
        #expect(!FileManager.default.fileExists(atPath: output.path))
    }

    @Test func refusesANonEmptyDestinationUnlessForced() throws {
        let output = try Fixtures.temporaryDirectory()
        try Data("keep".utf8).write(to: output.appendingPathComponent("existing.txt"))
        let tensors = [TensorDescriptor(name: "w", dtype: .f32, shape: [1])]
        #expect(throws: CheckpointError.self) { _ = try CheckpointWriter(destination: output, tensors: tensors) }
        let writer = try CheckpointWriter(destination: output, tensors: tensors, overwrite: true)
        try [Float(7)].withUnsafeBufferPointer { try writer.write("w", float32: $0) }
        try writer.commit(config: ModelConfig(path: "c", json: .object([:])), copyingAuxiliaryFilesFrom: nil)
        #expect(!FileManager.default.fileExists(atPath: output.appendingPathComponent("existing.txt").path))
        #expect(FileManager.default.fileExists(atPath: output.appendingPathComponent("model.safetensors").path))
    }

    @Test func refusesToWriteIntoTheInput() throws {
        let input = Fixtures.url("Fixtures/models/tiny-mixtral")
        #expect(throws: CheckpointError.self) {
            _ = try CheckpointWriter(destination: input.appendingPathComponent("sub"), tensors: [], inputs: [input])
        }
    }
}
