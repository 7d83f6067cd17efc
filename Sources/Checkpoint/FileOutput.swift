import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The real path of `url`, resolving symlinks in its deepest existing ancestor (the destination
/// usually does not exist yet, and Foundation resolves only paths that do).
func resolvedPath(_ url: URL) -> String {
    var existing = url.standardizedFileURL
    var missing: [String] = []
    while !FileManager.default.fileExists(atPath: existing.path) && existing.path != "/" {
        missing.insert(existing.lastPathComponent, at: 0)
        existing.deleteLastPathComponent()
    }
    return missing.reduce(existing.resolvingSymlinksInPath()) { $0.appendingPathComponent($1) }.path
}

/// `pwrite` until every byte is down; a short write is retried, an error (full disk …) reported.
public func writeFully(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int, file: String) throws {
    var done = 0
    while done < bytes.count {
        let result = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
        if result < 0 {
            if errno == EINTR { continue }
            throw CheckpointError(file: file, "cannot write: \(String(cString: strerror(errno)))")
        }
        done += result
    }
}
