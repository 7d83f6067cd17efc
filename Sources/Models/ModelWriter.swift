import Checkpoint
import Foundation

/// Writes any model, an opened checkpoint or a stage's computed output, as a Hugging Face
/// checkpoint: every tensor in its declared dtype, one at a time (memory holds the largest tensor,
/// never the model), then config.json and the origin's tokenizer and other small files, moved
/// into place only when complete (CheckpointWriter).
public enum ModelWriter {
    /// The model's own `files` and `additionalFiles` (a stage's report) go into the directory
    /// before it is moved into place; `additionalFiles` is called after the tensors are written,
    /// so a report can include what computing them measured.
    public static func write(_ model: Model, to destination: URL, overwrite: Bool = false,
                             additionalFiles: () throws -> [String: Data] = { [:] },
                             maxShardBytes: Int = 5 << 30, progress: ((Int, Int) -> Void)? = nil) throws {
        let source = model.source
        let descriptors = try source.tensorNames.map { name in
            guard let descriptor = source.descriptor(name) else { throw CheckpointError(file: name, "tensor listed but not described") }
            return descriptor
        }
        let writer = try CheckpointWriter(destination: destination, tensors: descriptors, maxShardBytes: maxShardBytes,
                                          overwrite: overwrite, inputs: [model.origin])
        let largest = descriptors.map { $0.elementCount * $0.dtype.byteSize }.max() ?? 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(largest, 1), alignment: 64)
        defer { buffer.deallocate() }
        for (index, descriptor) in descriptors.enumerated() {
            let bytes = descriptor.elementCount * descriptor.dtype.byteSize
            try source.readStored(descriptor.name, into: buffer.baseAddress!)
            try writer.write(descriptor.name, bytes: UnsafeRawBufferPointer(rebasing: buffer[0..<bytes]))
            progress?(index + 1, descriptors.count)
        }
        try writer.commit(config: model.config, copyingAuxiliaryFilesFrom: model.origin,
                          additionalFiles: model.files.merging(try additionalFiles()) { $1 })
    }
}
