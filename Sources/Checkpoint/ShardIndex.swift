import Foundation

/// model.safetensors.index.json of a sharded checkpoint: which shard file stores each tensor.
public struct ShardIndex: Sendable, Equatable {
    /// The index file, for error messages.
    public let file: String
    /// Tensor name → shard file name; every shard name is a plain file name in the model directory.
    public let weightMap: [String: String]

    /// Parses the bytes of the index file `file`.
    public init(data: Data, file: String) throws {
        self.file = file
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw CheckpointError(file: file, "not a valid JSON object")
        }
        guard let map = object["weight_map"] as? [String: String] else {
            throw CheckpointError(file: file, "missing 'weight_map' of tensor name to shard file")
        }
        // The names are joined to the model directory; one that could leave it would make us open
        // (and report on) an arbitrary file.
        for shard in Set(map.values).sorted() where !Self.isPlainFileName(shard) {
            throw CheckpointError(file: file, "shard name '\(shard)' is not a file name inside the model directory")
        }
        weightMap = map
    }

    public init(contentsOf url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw CheckpointError(file: url.path, "cannot read: \(error.localizedDescription)")
        }
        try self.init(data: data, file: url.path)
    }

    /// The distinct shard files, in natural order (`…-00010-…` after `…-00009-…`).
    public var shardFileNames: [String] {
        Set(weightMap.values).sorted(by: Checkpoint.naturalOrder)
    }

    /// Checks that every tensor the index names is stored in the shard it names; `storedIn` maps
    /// each stored tensor to the shard file holding it.
    public func check(storedIn: [String: String]) throws {
        for (name, shard) in weightMap.sorted(by: { $0.key < $1.key }) {
            guard let actual = storedIn[name] else {
                throw CheckpointError(file: file, "tensor '\(name)' is mapped to \(shard) but no shard stores it")
            }
            guard actual == shard else {
                throw CheckpointError(file: file, "tensor '\(name)' is mapped to \(shard) but stored in \(actual)")
            }
        }
    }

    /// Not empty, `.` or `..`, and free of path separators and NUL (which would end the C path).
    private static func isPlainFileName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".."
            && !name.unicodeScalars.contains { $0 == "/" || $0 == "\\" || $0 == "\0" }
    }
}
