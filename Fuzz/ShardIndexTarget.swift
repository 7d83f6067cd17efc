import Checkpoint
import Foundation

/// model.safetensors.index.json: parsed, then checked against the shards it describes (which
/// must pass) and against shards missing one of its tensors (which must be reported).
enum ShardIndexTarget {
    static let file = "model.safetensors.index.json"

    static func run(_ bytes: UnsafeRawBufferPointer) {
        expectReported(file: file) {
            let index = try ShardIndex(data: Data(bytes), file: file)
            _ = index.shardFileNames
            do {
                try index.check(storedIn: index.weightMap)
            } catch {
                fatalError("an index disagrees with the shards it describes: \(error)")
            }
            guard let dropped = index.weightMap.keys.min() else { return }
            var storedIn = index.weightMap
            storedIn[dropped] = nil
            try index.check(storedIn: storedIn)
            fatalError("an index naming '\(dropped)', which no shard stores, was accepted")
        }
    }
}
