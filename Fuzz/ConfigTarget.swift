import Architectures
import Checkpoint
import Foundation

/// config.json: read as a checkpoint reads it, its architecture looked up, and its
/// hyperparameters resolved under every supported family (not only its own model_type, so the
/// fuzzer reaches each family's keys), then written back as a compression stage writes it.
enum ConfigTarget {
    static func run(_ bytes: UnsafeRawBufferPointer) {
        ScratchFile.withFile(bytes, named: "config.json") { path in
            expectReported(file: path) {
                let config = try ModelConfig(contentsOf: URL(fileURLWithPath: path))
                expectReported(file: path) { _ = try ArchitectureRegistry.spec(for: config) }
                for spec in ArchitectureRegistry.all {
                    expectReported(file: path) { _ = try ModelDescription(config: config, spec: spec) }
                }
                // JSON that was read must be writable again.
                do {
                    _ = try config.json.prettyPrinted()
                } catch {
                    fatalError("a config.json that was read cannot be written back: \(error)")
                }
            }
        }
    }
}
