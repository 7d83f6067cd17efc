import Architectures
import Checkpoint
import Foundation

/// A content hash that ties a statistics file to the model it was measured on: the architecture,
/// every tensor's name, dtype and shape, and the values of every router (small, and different in
/// any fine-tune), so statistics from another model, a pruned copy or a fine-tune are refused.
/// FNV-1a (64-bit): an identity check, not a defence against forgery, so no crypto library.
public enum ModelFingerprint {
    public static func of(_ description: ModelDescription, source: TensorSource) throws -> String {
        var hash = FNV1a()
        hash.add(description.modelType)
        for name in source.tensorNames {
            guard let tensor = source.descriptor(name) else { continue }
            hash.add("\(name):\(tensor.dtype.rawValue):\(tensor.shape)")
        }
        for layer in description.sparseLayers {
            let router = try source.float32(description.spec.tensors.router.filled(layer: layer))
            router.scalars.withUnsafeBytes { hash.add(bytes: $0) }
        }
        return String(format: "%016llx", hash.value)
    }
}

struct FNV1a {
    private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325

    mutating func add(bytes: UnsafeRawBufferPointer) {
        for byte in bytes {
            value ^= UInt64(byte)
            value = value &* 0x0000_0100_0000_01B3
        }
    }

    mutating func add(_ text: String) {
        var copy = text + "\n"
        copy.withUTF8 { add(bytes: UnsafeRawBufferPointer($0)) }
    }
}
