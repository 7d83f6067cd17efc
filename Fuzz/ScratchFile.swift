import Foundation

/// The current input as a file, for the readers that open a path (scripts/fuzz.sh points TMPDIR
/// at a tmpfs folder, so this costs no disk I/O). One name per process; removed after each input.
enum ScratchFile {
    static func withFile(_ bytes: UnsafeRawBufferPointer, named name: String, _ body: (String) -> Void) {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("moe-compress-fuzz-\(getpid())-\(name)")
        guard FileManager.default.createFile(atPath: url.path, contents: Data(bytes)) else {
            fatalError("cannot write the scratch file \(url.path)")
        }
        defer { try? FileManager.default.removeItem(at: url) }
        body(url.path)
    }
}
