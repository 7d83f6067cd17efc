import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Every file this tool reads must be a regular file: opening a FIFO blocks until some writer
/// appears (a hang), and a directory or device gives errors that name no file. The file is opened
/// without blocking and checked with fstat before anything is read.
public enum RegularFile {
    /// An open descriptor of the regular file at `path`; the caller closes it.
    public static func open(_ path: String) throws -> Int32 {
        let descriptor = Glibc.open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw CheckpointError(file: path, "cannot open: \(String(cString: strerror(errno)))")
        }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            let reason = String(cString: strerror(errno))
            close(descriptor)
            throw CheckpointError(file: path, "cannot stat: \(reason)")
        }
        guard status.st_mode & S_IFMT == S_IFREG else {
            close(descriptor)
            throw CheckpointError(file: path, "is \(kind(status.st_mode)), not a regular file")
        }
        return descriptor
    }

    /// Throws unless `path` is a regular file that can be opened for reading.
    public static func check(_ path: String) throws {
        close(try open(path))
    }

    /// The whole contents of the regular file at `path`.
    public static func read(_ path: String) throws -> Data {
        let descriptor = try open(path)
        let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        do {
            return try handle.readToEnd() ?? Data()
        } catch {
            throw CheckpointError(file: path, "cannot read: \(error.localizedDescription)")
        }
    }

    private static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: return "a directory"
        case S_IFIFO: return "a FIFO"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        default: return "not a plain file"
        }
    }
}
