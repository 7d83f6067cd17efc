import Checkpoint
import Foundation
import GGUF

/// A whole GGUF file: the header parsed and checked as GGUFFile does it, then, where it describes
/// a supported model, the config rebuilt from its metadata and every tensor dequantized through
/// the Hugging Face names the forward pass reads.
enum GGUFTarget {
    static func run(_ bytes: UnsafeRawBufferPointer) {
        ScratchFile.withFile(bytes, named: "model.gguf") { path in
            expectReported(file: path) {
                let file = try GGUFFile(path: path)
                // Tensor views must lie inside the mapping the header was checked against.
                for tensor in file.tensors { _ = file.bytes(of: tensor).last }
                let (config, source, _) = try GGUFModelReader.open(path)
                _ = config.json
                // Dequantized tensors are bounded by the file's size (a block decodes to at most
                // 256 floats from 2 bytes at least), so reading each stays small.
                for name in source.tensorNames {
                    guard let descriptor = source.descriptor(name), descriptor.elementCount <= 1 << 24 else { continue }
                    let values = UnsafeMutablePointer<Float>.allocate(capacity: max(descriptor.elementCount, 1))
                    defer { values.deallocate() }
                    expectReported(file: path) { try source.readFloat32(name, into: values) }
                }
            }
        }
    }
}
