import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One output file (a GGUF model) written the way CheckpointWriter writes a directory: into a
/// hidden temporary sibling reserved to its full size up front (a full disk fails at once), filled
/// at explicit offsets, and renamed onto the destination only by `commit` after it is flushed. If
/// the value is dropped first, the partial file is removed, so an interrupted run leaves nothing.
public final class StagedFile {
    public let destination: URL
    public let temporaryURL: URL
    private var descriptor: Int32
    private var committed = false

    /// - Parameters:
    ///   - size: the file's final size in bytes.
    ///   - inputs: files or directories being read; the destination may be none of them nor inside one.
    ///   - overwrite: replace an existing destination (the CLI's `--force`).
    public init(destination: URL, size: Int, inputs: [URL] = [], overwrite: Bool = false) throws {
        self.destination = destination.standardizedFileURL
        let resolved = resolvedPath(self.destination)
        for input in inputs {
            let inputPath = resolvedPath(input)
            if resolved == inputPath || resolved.hasPrefix(inputPath + "/") {
                throw CheckpointError(file: destination.path, "refusing to overwrite or write into the input \(input.path)")
            }
        }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: self.destination.path, isDirectory: &isDirectory) {
            if isDirectory.boolValue {
                throw CheckpointError(file: destination.path, "is a directory; the output is a single file")
            }
            if !overwrite {
                throw CheckpointError(file: destination.path, "already exists (use --force to replace it)")
            }
        }
        let parent = self.destination.deletingLastPathComponent()
        guard FileManager.default.fileExists(atPath: parent.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CheckpointError(file: destination.path, "its directory \(parent.path) does not exist")
        }
        temporaryURL = parent.appendingPathComponent(".\(self.destination.lastPathComponent).partial-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        descriptor = open(temporaryURL.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw CheckpointError(file: temporaryURL.path, "cannot create: \(String(cString: strerror(errno)))")
        }
        let reserved = posix_fallocate(descriptor, 0, off_t(size))
        if reserved == ENOSPC || reserved == EDQUOT {
            discard()
            throw CheckpointError(file: destination.path, "not enough disk space: needs \(size) bytes")
        }
        if reserved != 0 && ftruncate(descriptor, off_t(size)) != 0 {
            let reason = String(cString: strerror(errno))
            discard()
            throw CheckpointError(file: destination.path, "cannot size to \(size) bytes: \(reason)")
        }
    }

    deinit { if !committed { discard() } }

    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        try writeFully(descriptor, bytes, at: offset, file: destination.path)
    }

    /// Flushes the file and moves it onto the destination (replacing an old one atomically).
    public func commit() throws {
        guard fsync(descriptor) == 0 else {
            throw CheckpointError(file: temporaryURL.path, "cannot flush: \(String(cString: strerror(errno)))")
        }
        close(descriptor)
        descriptor = -1
        guard rename(temporaryURL.path, destination.path) == 0 else {
            throw CheckpointError(file: destination.path, "cannot move the finished file into place: \(String(cString: strerror(errno)))")
        }
        committed = true
        let parent = open(destination.deletingLastPathComponent().path, O_RDONLY)
        if parent >= 0 { fsync(parent); close(parent) }
    }

    private func discard() {
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
        unlink(temporaryURL.path)
    }
}
