import Checkpoint
import GGUF
import Tokenizer

/// Runs `body`; anything it throws must be one of this package's reports, a single line
/// `FILE: problem` for `file`. Any other failure stops the fuzzer as a crash would.
func expectReported(file: String, _ body: () throws -> Void) {
    do {
        try body()
    } catch {
        let reported: (file: String, line: String)
        switch error {
        case let error as CheckpointError: reported = (error.file, error.description)
        case let error as TokenizerError: reported = (error.file, error.description)
        case let error as GGUFError: reported = (error.file, error.description)
        default: fatalError("\(type(of: error)) instead of a one-line report: \(error)")
        }
        guard reported.file == file, !reported.line.contains(where: \.isNewline) else {
            fatalError("malformed report for \(file): \(reported.line.debugDescription)")
        }
    }
}
