import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A progress bar on stderr: redrawn in place on a terminal, a line every 10% otherwise (so logs
/// of long batch jobs still show that work is moving).
final class ProgressBar {
    private let label: String
    private let isTerminal = isatty(STDERR_FILENO) != 0
    private let started = Date()
    private var lastTenth = -1

    init(label: String) { self.label = label }

    func update(done: Int, total: Int) {
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        let elapsed = Date().timeIntervalSince(started)
        if isTerminal {
            let width = 30, filled = Int(fraction * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            write("\r\(label) \(bar) \(Int(fraction * 100))% (\(done)/\(total), \(String(format: "%.1f", elapsed)) s)")
            if done >= total { write("\n") }
        } else if Int(fraction * 10) > lastTenth {
            lastTenth = Int(fraction * 10)
            write("\(label) \(Int(fraction * 100))% (\(done)/\(total), \(String(format: "%.1f", elapsed)) s)\n")
        }
    }

    private func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}
