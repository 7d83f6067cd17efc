import ArgumentParser
import Calibration
import Checkpoint
import Foundation
import Inference
import Models

extension MoECompress {
    struct Calibrate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure router statistics on calibration text: the statistics file every pruning, merging and quantizing stage reads.",
            discussion: """
            Draws --samples token windows of --seq-len ids from the --data files (plain text, or \
            JSONL with a "text" field per line; FILE:N draws N windows from that file, so domain \
            mixes are explicit) at positions fixed by --seed, runs them through this tool's own \
            forward pass, and records per MoE layer and expert: top-k counts, routing-probability \
            mass, REAP saliency (mean of routing weight × expert output norm over routed tokens; \
            Lasby et al. 2025, arXiv 2510.13999), output norms (EAN) and the largest activation \
            (super experts, arXiv 2507.23279), EASY-EP's contribution-weighted score (Dong et al. \
            2025, arXiv 2504.06792), the co-activation matrix and each expert's input second \
            moments. Only routed tokens are observed, so it costs one forward pass. The file is \
            safetensors with JSON provenance (docs/statistics.md), tied to the model by a \
            fingerprint of its tensors and routers.

            Example:
              moe-compress calibrate Fixtures/default-model \\
                --data Fixtures/text/calibration.txt --seq-len 128 --samples 64 -o /tmp/stats.safetensors
              moe-compress calibrate MODEL --data code.jsonl:512 --data chat.jsonl:256 -o stats.safetensors
            """)

        @Argument(help: "Checkpoint directory.")
        var model: String

        @OptionGroup var data: CalibrationOptions

        @Option(name: [.customShort("o"), .long], help: ArgumentHelp("Statistics file to write.", valueName: "file"))
        var output: String

        @Flag(help: "Replace an existing statistics file.")
        var force = false

        @OptionGroup var computeOptions: ComputeOptions

        func run() throws {
            try computeOptions.apply()
            let opened = try Model.open(path: model)
            let destination = URL(fileURLWithPath: output)
            try checkStatisticsDestination(destination, model: opened, force: force)
            let statistics = try data.measure(opened, name: model, precision: computeOptions.compute)
            try StatisticsFile.write(statistics, to: destination)
            print("wrote \(output): \(statistics.provenance.windows) windows of \(statistics.provenance.sequenceLength) ids (\(statistics.provenance.tokens) tokens), \(statistics.layers.count) MoE layers")
            for layer in statistics.layers { print(layerSummary(layer)) }
        }
    }
}

/// The calibration options `calibrate` and every stage that can calibrate on the fly share.
struct CalibrationOptions: ParsableArguments {
    @Option(name: .customLong("data"), help: ArgumentHelp("Calibration text (plain or JSONL with \"text\"), optionally with a window count: FILE[:N]. Repeat to mix sources.", valueName: "file[:n]"))
    var sources: [String] = []

    @Option(parsing: .unconditional, help: "Ids per calibration window.")
    var seqLen = 2048

    @Option(parsing: .unconditional, help: "Windows in all, shared by the --data files without a count (default: every window).")
    var samples: Int?

    @Option(parsing: .unconditional, help: "Seed of the window draw.")
    var seed: UInt64 = 42

    @Option(parsing: .unconditional, help: "Ids per pass over the weights.")
    var batchTokens = 8192

    func validate() throws {
        guard seqLen >= 2 && seqLen <= MoECompress.Eval.maximumSequenceLength else {
            throw ValidationError("--seq-len \(seqLen): must be between 2 and \(MoECompress.Eval.maximumSequenceLength)")
        }
        if let samples, samples < 1 { throw ValidationError("--samples \(samples): must be positive") }
        guard batchTokens > 0 else { throw ValidationError("--batch-tokens \(batchTokens): must be positive") }
    }

    func data(for model: Model) throws -> CalibrationData {
        let specs = try sources.map(CalibrationSourceSpec.init(argument:))
        return try CalibrationData(sources: specs, tokenizer: model.tokenizer(), sequenceLength: seqLen, samples: samples, seed: seed)
    }

    /// `data`: windows already drawn (a stage that also needs the tokens); drawn here otherwise.
    func measure(_ model: Model, name: String, precision: ComputePrecision, data: CalibrationData? = nil) throws -> RouterStatistics {
        let data = try data ?? self.data(for: model)
        let bar = ProgressBar(label: "calibrate")
        return try Calibrator(precision: precision, batchTokens: batchTokens)
            .statistics(of: model, data: data, modelName: name) { bar.update(done: $0, total: $1) }
    }
}

/// A statistics file goes beside the model, never into its directory (a stray *.safetensors there
/// would become part of the checkpoint).
func checkStatisticsDestination(_ destination: URL, model: Model, force: Bool) throws {
    let directory = model.origin.resolvingSymlinksInPath().standardizedFileURL.path
    let parent = destination.deletingLastPathComponent().resolvingSymlinksInPath().standardizedFileURL.path
    guard parent != directory && !parent.hasPrefix(directory + "/") else {
        throw CheckpointError(file: destination.path, "is inside the model directory; write statistics elsewhere")
    }
    if FileManager.default.fileExists(atPath: destination.path) && !force {
        throw CheckpointError(file: destination.path, "already exists (pass --force to replace it)")
    }
}

/// "layer 3: load 0.81–1.24 × uniform, unused: none".
func layerSummary(_ layer: LayerStatistics) -> String {
    let counts = layer[.counts], total = counts.reduce(0, +)
    let uniform = total / Double(max(counts.count, 1))
    let loads = counts.map { uniform > 0 ? $0 / uniform : 0 }
    let unused = counts.indices.filter { counts[$0] == 0 }
    return String(format: "layer %ld: load %.2f–%.2f × uniform, ", layer.layer, loads.min() ?? 0, loads.max() ?? 0)
        + "experts that saw no token: \(unused.isEmpty ? "none" : unused.map(String.init).joined(separator: ", "))"
}
