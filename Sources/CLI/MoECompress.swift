import ArgumentParser
import Foundation
import Tensors

struct MoECompress: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "moe-compress",
        abstract: "Inspect, evaluate and compress Mixture-of-Experts checkpoints.",
        discussion: """
        Reads Hugging Face checkpoints (config.json, tokenizer.json, *.safetensors) by memory map, \
        one layer at a time, so models larger than RAM work.

        Example:
          moe-compress inspect Fixtures/default-model
          moe-compress eval Fixtures/default-model --text Fixtures/text/heldout.txt
        """,
        version: "0.1.0",
        subcommands: [Inspect.self, Eval.self, Forward.self, Calibrate.self, Prune.self, Merge.self, Quantize.self])
}

/// The entry point: ArgumentParser's own `main()` prints the usage block after every error; here
/// every failure, an argument error or one raised while working, is one line on stderr.
@main
enum Entry {
    static func main() {
        AllocatorPolicy.reuseFreedBuffers()
        do {
            var command = try MoECompress.parseAsRoot()
            try command.run()
        } catch {
            if MoECompress.exitCode(for: error) == .success {
                MoECompress.exit(withError: error)  // --help, --version: printed as ArgumentParser does
            }
            let message = MoECompress.message(for: error)
                .split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty }.joined(separator: " ")
            FileHandle.standardError.write(Data("Error: \(message)\n".utf8))
            exit(MoECompress.exitCode(for: error).rawValue)
        }
    }
}
