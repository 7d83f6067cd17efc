import Foundation
import Tensors
#if canImport(Glibc)
import Glibc
#endif

/// Writes a checkpoint directory the way Hugging Face lays one out, without ever holding it in memory.
///
/// The caller declares every output tensor up front; the writer assigns them to shards of at most
/// `maxShardBytes`, writes each shard's header first and reserves its full size (so a full disk
/// fails at once, not after an hour), then accepts tensor data in any order straight into place.
/// Everything goes into a hidden sibling directory that is renamed onto the destination only by
/// `commit`, after every file is flushed; if the writer is dropped before that, the partial
/// directory is removed. An interrupted run therefore leaves nothing half-written.
public final class CheckpointWriter {
    public let destination: URL
    public let temporaryDirectory: URL
    private let plan: [String: (shard: Int, offset: Int, descriptor: TensorDescriptor)]
    private let shardNames: [String]
    private var descriptors: [Int32]
    private var written: Set<String> = []
    private var committed = false
    private let overwrite: Bool

    /// - Parameters:
    ///   - inputs: directories being read; the destination may be neither one of them nor inside one.
    ///   - overwrite: replace an existing non-empty destination (the CLI's `--force`).
    public init(destination: URL, tensors: [TensorDescriptor], maxShardBytes: Int = 5 << 30,
                overwrite: Bool = false, inputs: [URL] = []) throws {
        self.destination = destination.standardizedFileURL
        self.overwrite = overwrite
        try Self.checkDestination(self.destination, inputs: inputs, overwrite: overwrite)

        // Greedy sharding in declaration order, as transformers' save_pretrained does.
        var shards: [[TensorDescriptor]] = [[]]
        var shardBytes = 0
        for descriptor in tensors {
            let bytes = descriptor.elementCount * descriptor.dtype.byteSize
            if !shards[shards.count - 1].isEmpty && shardBytes + bytes > maxShardBytes {
                shards.append([])
                shardBytes = 0
            }
            shards[shards.count - 1].append(descriptor)
            shardBytes += bytes
        }
        shardNames = shards.count == 1
            ? ["model.safetensors"]
            : (1...shards.count).map { String(format: "model-%05ld-of-%05ld.safetensors", $0, shards.count) }

        let parent = self.destination.deletingLastPathComponent()
        temporaryDirectory = parent.appendingPathComponent(".\(self.destination.lastPathComponent).partial-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        do {
            try FileManager.default.createDirectory(at: temporaryDirectory, withIntermediateDirectories: true)
        } catch {
            throw CheckpointError(file: temporaryDirectory.path, "cannot create: \(error.localizedDescription)")
        }

        var plan: [String: (shard: Int, offset: Int, descriptor: TensorDescriptor)] = [:]
        descriptors = []
        do {
            for (index, members) in shards.enumerated() {
                let (header, offsets) = try Self.header(for: members)
                for (descriptor, offset) in zip(members, offsets) {
                    guard plan[descriptor.name] == nil else {
                        throw CheckpointError(file: destination.path, "tensor '\(descriptor.name)' declared twice")
                    }
                    plan[descriptor.name] = (index, header.count + offset, descriptor)
                }
                let dataBytes = members.reduce(0) { $0 + $1.elementCount * $1.dtype.byteSize }
                descriptors.append(try Self.createShard(at: temporaryDirectory.appendingPathComponent(shardNames[index]),
                                                        header: header, totalBytes: header.count + dataBytes))
            }
        } catch {
            descriptors.forEach { close($0) }
            descriptors = []
            try? FileManager.default.removeItem(at: temporaryDirectory)
            throw error
        }
        self.plan = plan
    }

    deinit {
        descriptors.forEach { close($0) }
        if !committed { try? FileManager.default.removeItem(at: temporaryDirectory) }
    }

    /// Stores a tensor's bytes exactly as given (they must already be in the declared dtype).
    public func write(_ name: String, bytes: UnsafeRawBufferPointer) throws {
        guard let entry = plan[name] else {
            throw CheckpointError(file: destination.path, "tensor '\(name)' was not declared")
        }
        let expected = entry.descriptor.elementCount * entry.descriptor.dtype.byteSize
        guard bytes.count == expected else {
            throw CheckpointError(file: destination.path, "tensor '\(name)': got \(bytes.count) bytes, declared \(expected)")
        }
        try writeFully(descriptors[entry.shard], bytes, at: entry.offset, file: shardNames[entry.shard])
        written.insert(name)
    }

    /// Stores Float32 values, narrowed to the declared dtype (f32, f16 or bf16).
    public func write(_ name: String, float32 values: UnsafeBufferPointer<Float>) throws {
        guard let entry = plan[name] else {
            throw CheckpointError(file: destination.path, "tensor '\(name)' was not declared")
        }
        let dtype = entry.descriptor.dtype
        guard [.f32, .f16, .bf16].contains(dtype) else {
            throw CheckpointError(file: destination.path, "tensor '\(name)': cannot write \(dtype.rawValue) from Float32")
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: values.count * dtype.byteSize, alignment: 16)
        defer { buffer.deallocate() }
        convertFromFloat32(values.baseAddress!, count: values.count, to: dtype, into: buffer.baseAddress!)
        try write(name, bytes: UnsafeRawBufferPointer(buffer))
    }

    /// Flushes the shards, writes the index, config.json and the source's other small files
    /// (tokenizer, generation config …), then moves the directory into place.
    /// `additionalFiles` (name → contents, e.g. a stage's report) are written beside them.
    public func commit(config: ModelConfig, copyingAuxiliaryFilesFrom source: URL?, additionalFiles: [String: Data] = [:]) throws {
        if let missing = plan.keys.sorted().first(where: { !written.contains($0) }) {
            throw CheckpointError(file: destination.path, "tensor '\(missing)' was declared but never written")
        }
        for (descriptor, name) in zip(descriptors, shardNames) where fsync(descriptor) != 0 {
            throw CheckpointError(file: temporaryDirectory.appendingPathComponent(name).path, "cannot flush: \(String(cString: strerror(errno)))")
        }
        descriptors.forEach { close($0) }
        descriptors = []

        if let source { try copyAuxiliaryFiles(from: source) }
        try writeFile("config.json", try config.json.prettyPrinted())
        for (name, contents) in additionalFiles.sorted(by: { $0.key < $1.key }) { try writeFile(name, contents) }
        if shardNames.count > 1 { try writeFile(Checkpoint.indexFileName, try indexJSON()) }
        try moveIntoPlace()
        committed = true
    }

    // MARK: - Layout

    /// The JSON header (padded with spaces to a multiple of 8 bytes, like safetensors does) and each
    /// tensor's offset from the start of the file's data section.
    private static func header(for members: [TensorDescriptor]) throws -> (bytes: [UInt8], offsets: [Int]) {
        var entries: [String] = ["\"__metadata__\":{\"format\":\"pt\"}"]
        var offsets: [Int] = []
        var cursor = 0
        for descriptor in members {
            let bytes = descriptor.elementCount * descriptor.dtype.byteSize
            let shape = descriptor.shape.map(String.init).joined(separator: ",")
            entries.append("\(jsonString(descriptor.name)):{\"dtype\":\"\(descriptor.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(cursor),\(cursor + bytes)]}")
            offsets.append(cursor)
            cursor += bytes
        }
        var json = Array("{\(entries.joined(separator: ","))}".utf8)
        while (json.count + 8) % 8 != 0 { json.append(UInt8(ascii: " ")) }
        var length = UInt64(json.count).littleEndian
        let prefix = withUnsafeBytes(of: &length) { Array($0) }
        return (prefix + json, offsets)
    }

    private static func jsonString(_ text: String) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: [text])) ?? Data("[\"\"]".utf8)
        return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
    }

    private func indexJSON() throws -> Data {
        var weightMap: [String: JSONValue] = [:]
        var totalSize = 0
        for (name, entry) in plan {
            weightMap[name] = .string(shardNames[entry.shard])
            totalSize += entry.descriptor.elementCount * entry.descriptor.dtype.byteSize
        }
        return try JSONValue.object(["metadata": .object(["total_size": .int(totalSize)]), "weight_map": .object(weightMap)]).prettyPrinted()
    }

    // MARK: - Files

    private static func checkDestination(_ destination: URL, inputs: [URL], overwrite: Bool) throws {
        let resolved = resolvedPath(destination)
        for input in inputs {
            let inputPath = resolvedPath(input)
            if resolved == inputPath || resolved.hasPrefix(inputPath + "/") {
                throw CheckpointError(file: destination.path, "refusing to write into the input model directory \(input.path)")
            }
        }
        var isDirectory: ObjCBool = false
        guard !overwrite, FileManager.default.fileExists(atPath: destination.path, isDirectory: &isDirectory) else { return }
        let contents = (try? FileManager.default.contentsOfDirectory(atPath: destination.path)) ?? []
        if !isDirectory.boolValue || !contents.isEmpty {
            throw CheckpointError(file: destination.path, "already exists and is not empty (use --force to replace it)")
        }
    }

    private static func createShard(at url: URL, header: [UInt8], totalBytes: Int) throws -> Int32 {
        let descriptor = open(url.path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard descriptor >= 0 else {
            throw CheckpointError(file: url.path, "cannot create: \(String(cString: strerror(errno)))")
        }
        let reserved = posix_fallocate(descriptor, 0, off_t(totalBytes))
        if reserved == ENOSPC || reserved == EDQUOT {
            close(descriptor)
            throw CheckpointError(file: url.path, "not enough disk space: needs \(totalBytes) bytes")
        }
        if reserved != 0 && ftruncate(descriptor, off_t(totalBytes)) != 0 {
            close(descriptor)
            throw CheckpointError(file: url.path, "cannot size to \(totalBytes) bytes: \(String(cString: strerror(errno)))")
        }
        try header.withUnsafeBytes { try writeFully(descriptor, $0, at: 0, file: url.path) }
        return descriptor
    }

    private func writeFile(_ name: String, _ data: Data) throws {
        let url = temporaryDirectory.appendingPathComponent(name)
        do { try data.write(to: url) } catch {
            throw CheckpointError(file: url.path, "cannot write: \(error.localizedDescription)")
        }
    }

    /// Files that are not weights (tokenizer, generation config, chat template, README …).
    private func copyAuxiliaryFiles(from source: URL) throws {
        let skippedSuffixes = [".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt", ".h5", ".msgpack", ".index.json"]
        let names = (try? FileManager.default.contentsOfDirectory(atPath: source.path)) ?? []
        for name in names.sorted() where name != "config.json" && !name.hasPrefix(".")
            && !skippedSuffixes.contains(where: { name.hasSuffix($0) }) {
            let from = source.appendingPathComponent(name)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: from.path, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            do { try FileManager.default.copyItem(at: from, to: temporaryDirectory.appendingPathComponent(name)) } catch {
                throw CheckpointError(file: from.path, "cannot copy: \(error.localizedDescription)")
            }
        }
    }

    private func moveIntoPlace() throws {
        let manager = FileManager.default
        var replaced: URL?
        if manager.fileExists(atPath: destination.path) {
            let aside = destination.deletingLastPathComponent()
                .appendingPathComponent(".\(destination.lastPathComponent).replaced-\(getpid())")
            do { try manager.moveItem(at: destination, to: aside) } catch {
                throw CheckpointError(file: destination.path, "cannot move the old directory aside: \(error.localizedDescription)")
            }
            replaced = aside
        }
        guard rename(temporaryDirectory.path, destination.path) == 0 else {
            let reason = String(cString: strerror(errno))
            if let replaced { try? manager.moveItem(at: replaced, to: destination) }
            throw CheckpointError(file: destination.path, "cannot move the finished checkpoint into place: \(reason)")
        }
        if let replaced { try? manager.removeItem(at: replaced) }
        let parent = open(destination.deletingLastPathComponent().path, O_RDONLY)
        if parent >= 0 { fsync(parent); close(parent) }
    }
}
