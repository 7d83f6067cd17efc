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
        try self.init(data: try RegularFile.read(url.path), file: url.path)
    }

    /// The distinct shard files, in natural order (`…-00010-…` after `…-00009-…`).
    public var shardFileNames: [String] {
        Set(weightMap.values).sorted(by: Checkpoint.naturalOrder)
    }

    /// Checks that the index and the shards agree both ways: every tensor it names is stored in
    /// the shard it names, and every stored tensor is named (loaders that follow the index, as
    /// transformers does, would silently leave an unlisted one out). `storedIn` maps each stored
    /// tensor to the shard file holding it.
    public func check(storedIn: [String: String]) throws {
        if let (name, shard) = storedIn.sorted(by: { $0.key < $1.key }).first(where: { weightMap[$0.key] == nil }) {
            throw CheckpointError(file: file, "does not list tensor '\(name)', which \(shard) stores")
        }
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
