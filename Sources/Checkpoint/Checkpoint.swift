import Foundation
import Tensors

/// A Hugging Face checkpoint directory: config.json plus one or more safetensors shards (with
/// model.safetensors.index.json when sharded). Opening it maps the shards and validates every
/// header; no tensor data is read until asked for.
public final class Checkpoint: TensorSource, @unchecked Sendable {
    public static let indexFileName = "model.safetensors.index.json"

    public let directory: URL
    public let config: ModelConfig
    public let shards: [SafetensorsFile]
    public let tensorNames: [String]
    private let locations: [String: (shard: Int, info: TensorInfo)]

    public init(directory: URL) throws {
        self.directory = directory
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CheckpointError(file: directory.path, "not a model directory")
        }
        let configURL = directory.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: configURL.path) else {
            throw CheckpointError(file: configURL.path, "missing (every checkpoint needs a config.json)")
        }
        config = try ModelConfig(contentsOf: configURL)

        let indexURL = directory.appendingPathComponent(Self.indexFileName)
        let index = FileManager.default.fileExists(atPath: indexURL.path) ? try ShardIndex(contentsOf: indexURL) : nil
        let shardNames = try index.map { try Self.shardFileNames(of: $0, in: directory) } ?? Self.shardFileNames(in: directory)
        shards = try shardNames.map { try SafetensorsFile(path: directory.appendingPathComponent($0).path) }

        var locations: [String: (shard: Int, info: TensorInfo)] = [:]
        for (index, shard) in shards.enumerated() {
            for info in shard.header.tensors {
                if let existing = locations[info.name] {
                    throw CheckpointError(file: shard.path, "tensor '\(info.name)' is also stored in \(shards[existing.shard].path)")
                }
                locations[info.name] = (index, info)
            }
        }
        try index?.check(storedIn: locations.mapValues { shardNames[$0.shard] })
        self.locations = locations
        tensorNames = locations.keys.sorted(by: Self.naturalOrder)
    }

    private init(directory: URL, config: ModelConfig, shards: [SafetensorsFile],
                 locations: [String: (shard: Int, info: TensorInfo)]) {
        self.directory = directory
        self.config = config
        self.shards = shards
        self.locations = locations
        tensorNames = locations.keys.sorted(by: Self.naturalOrder)
    }

    /// This checkpoint with some tensors presented differently: each `TensorView` names a block of
    /// consecutive elements inside a stored tensor (one expert's matrix inside a fused
    /// `[experts, rows, columns]` tensor, or the whole tensor under another name). The viewed
    /// stored tensors are no longer listed; every read, in-place use and release works on the
    /// views as on stored tensors, with no copy.
    public func presenting(_ views: [TensorView]) throws -> Checkpoint {
        var locations = self.locations
        for view in views {
            guard let stored = self.locations[view.stored] else {
                throw CheckpointError(file: directory.path, "tensor '\(view.stored)' not found (needed for '\(view.name)')")
            }
            let elements = view.shape.reduce(1, *)
            guard view.elementOffset >= 0, view.elementOffset + elements <= stored.info.elementCount else {
                throw CheckpointError(file: shards[stored.shard].path,
                                      "tensor '\(view.stored)' \(stored.info.shape) is too small for '\(view.name)' \(view.shape)")
            }
            let start = stored.info.dataRange.lowerBound + view.elementOffset * stored.info.dtype.byteSize
            let info = TensorInfo(name: view.name, dtype: stored.info.dtype, shape: view.shape,
                                  dataRange: start..<(start + elements * stored.info.dtype.byteSize))
            locations[view.name] = (stored.shard, info)
        }
        let viewNames = Set(views.map(\.name))
        for stored in Set(views.map(\.stored)) where !viewNames.contains(stored) {
            locations[stored] = nil
        }
        return Checkpoint(directory: directory, config: config, shards: shards, locations: locations)
    }

    public func descriptor(_ name: String) -> TensorDescriptor? {
        guard let location = locations[name] else { return nil }
        return TensorDescriptor(name: name, dtype: location.info.dtype, shape: location.info.shape)
    }

    /// The shard and header entry of a tensor, for byte-exact copies.
    public func location(of name: String) -> (file: SafetensorsFile, info: TensorInfo)? {
        guard let location = locations[name] else { return nil }
        return (shards[location.shard], location.info)
    }

    public func readFloat32(_ name: String, into destination: UnsafeMutablePointer<Float>) throws {
        guard let (file, info) = location(of: name) else {
            throw CheckpointError(file: directory.path, "tensor '\(name)' not found")
        }
        try file.readFloat32(info, into: destination)
    }

    public func readBFloat16(_ name: String, into destination: UnsafeMutablePointer<UInt16>) throws {
        guard let (file, info) = location(of: name) else {
            throw CheckpointError(file: directory.path, "tensor '\(name)' not found")
        }
        try file.readBFloat16(info, into: destination)
    }

    public func readFloat32Rows(_ name: String, rows: [Int], into destination: UnsafeMutablePointer<Float>) throws {
        guard let (file, info) = location(of: name), info.shape.count == 2 else {
            throw CheckpointError(file: directory.path, "tensor '\(name)' not found or not 2-D")
        }
        try file.readFloat32Rows(info, rows: rows, into: destination)
    }

    public func storedBFloat16(_ name: String) -> UnsafePointer<UInt16>? {
        guard let (file, info) = location(of: name), info.dtype == .bf16 else { return nil }
        return file.storedHalves(of: info)
    }

    public func readStored(_ name: String, into destination: UnsafeMutableRawPointer) throws {
        guard let (file, info) = location(of: name) else {
            throw CheckpointError(file: directory.path, "tensor '\(name)' not found")
        }
        let bytes = file.rawBytes(of: info)
        if let base = bytes.baseAddress { destination.copyMemory(from: base, byteCount: bytes.count) }
        file.release(info)
    }

    public func release(_ names: [String]) {
        for name in names {
            if let (file, info) = location(of: name) { file.release(info) }
        }
    }

    public func prefetch(_ names: [String]) {
        for name in names {
            guard let (file, info) = location(of: name) else { continue }
            file.mapping.prefetch((file.header.dataStart + info.dataRange.lowerBound)..<(file.header.dataStart + info.dataRange.upperBound))
        }
    }

    /// Names such as `layers.10` sort after `layers.9`.
    public static func naturalOrder(_ lhs: String, _ rhs: String) -> Bool {
        lhs.compare(rhs, options: [.numeric]) == .orderedAscending
    }

    /// The shards the index names, each of which must exist.
    private static func shardFileNames(of index: ShardIndex, in directory: URL) throws -> [String] {
        let names = index.shardFileNames
        for name in names where !FileManager.default.fileExists(atPath: directory.appendingPathComponent(name).path) {
            throw CheckpointError(file: index.file, "names shard '\(name)', which is missing")
        }
        return names
    }

    /// Without an index: every *.safetensors file in the directory.
    private static func shardFileNames(in directory: URL) throws -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path))?
            .filter { $0.hasSuffix(".safetensors") }.sorted(by: naturalOrder) ?? []
        guard !names.isEmpty else {
            throw CheckpointError(file: directory.path, "no *.safetensors files (and no \(indexFileName))")
        }
        return names
    }
}

/// A tensor presented by `Checkpoint.presenting`: `shape` elements starting `elementOffset`
/// elements into the stored tensor `stored`, under the name `name`.
public struct TensorView: Sendable, Equatable {
    public let name: String
    public let stored: String
    public let shape: [Int]
    public let elementOffset: Int

    public init(name: String, stored: String, shape: [Int], elementOffset: Int = 0) {
        self.name = name
        self.stored = stored
        self.shape = shape
        self.elementOffset = elementOffset
    }
}
