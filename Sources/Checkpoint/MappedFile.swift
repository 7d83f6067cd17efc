#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory map of a whole file. Tensors are views into it; pages are faulted in when a
/// tensor is converted and handed back to the kernel afterwards (`release`), so the resident set
/// stays near the layer being computed rather than growing to the model size.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    private let base: UnsafeMutableRawPointer?
    private static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    public init(path: String) throws {
        self.path = path
        let descriptor = try RegularFile.open(path)
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw CheckpointError(file: path, "cannot stat: \(String(cString: strerror(errno)))")
        }
        size = Int(status.st_size)
        if size == 0 {
            base = nil
            return
        }
        let mapping = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0)
        guard let mapping, mapping != MAP_FAILED else {
            throw CheckpointError(file: path, "cannot map: \(String(cString: strerror(errno)))")
        }
        base = mapping
    }

    deinit {
        if let base { munmap(base, size) }
    }

    /// The bytes at `range`; valid while this object lives.
    public func bytes(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        // Invariant, not input: every range comes from a header validated against the file size
        // (SafetensorsHeader), a GGUF header whose every tensor extent GGUFFile.init checks against
        // the file size, or a view checked against its stored tensor (Checkpoint.presenting).
        precondition(range.lowerBound >= 0 && range.upperBound <= size, "range \(range) outside \(path)")
        guard let base else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count)
    }

    /// Asks the kernel to start reading `range` from disk now, so the read overlaps other work.
    public func prefetch(_ range: Range<Int>) {
        guard let base, !range.isEmpty else { return }
        let start = range.lowerBound / Self.pageSize * Self.pageSize
        madvise(base + start, min(size, range.upperBound) - start, MADV_WILLNEED)
    }

    /// Drops the pages covering `range` from this process (they stay in the page cache), so a
    /// streamed pass over a model larger than RAM keeps a bounded resident set.
    public func release(_ range: Range<Int>) {
        guard let base, !range.isEmpty else { return }
        // Only whole pages inside the range; partial pages may belong to a neighbouring tensor in use.
        let firstWhole = (range.lowerBound + Self.pageSize - 1) / Self.pageSize * Self.pageSize
        let lastWhole = min(size, range.upperBound) / Self.pageSize * Self.pageSize
        guard lastWhole > firstWhole else { return }
        madvise(base + firstWhole, lastWhole - firstWhole, MADV_DONTNEED)
    }
}
