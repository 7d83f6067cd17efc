import ArgumentParser
import Calibration
import Foundation
import GGUF
import Models
import Quantization
import Quantizing

extension GGMLType: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
}

extension MoECompress {
    struct Quantize: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the model as one GGUF file for llama.cpp, every weight matrix in the given ggml type.",
            discussion: """
            The output loads in llama.cpp (llama-cli, llama-server, llama-perplexity, \
            llama-cpp-python) with llama.cpp's own names, hyperparameters and tokenizer for the \
            family (Mixtral as `llama`, `qwen2moe`, `qwen3moe`, `olmoe`), experts stacked per \
            projection. It is the streaming replacement for convert_hf_to_gguf.py plus \
            llama-quantize: one expert's matrix is in memory at a time.

            --types TYPE is the ggml type of every weight matrix: F32, F16, BF16 (a plain \
            conversion), Q8_0, Q6_K, Q5_K, Q4_K, Q3_K, Q2_K (k-quants: 256-weight super-blocks, \
            Iwan Kawrakow, llama.cpp PR #1684), Q5_1, Q5_0, Q4_1, Q4_0. Norms, biases and routers \
            stay F32. A row length that a type's blocks do not tile falls back as llama-quantize \
            does (Q2_K/Q3_K → Q4_0, Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, then F16).

            With --stats FILE (from `moe-compress calibrate`) or --data FILE[:N], each routed \
            expert's gate and up rows are rounded with importance weights: the mean squares of the \
            inputs routed to that expert, the per-column weights of llama.cpp's imatrix (PR #4861), \
            so each expert is quantized for the tokens it actually sees. An expert no token \
            reached is rounded without weights.

            --eval FILE prints held-out perplexity of the input and of the written GGUF, read back \
            by moe-compress's own forward pass.

            Example:
              moe-compress quantize Fixtures/default-model -o /tmp/default-q4k.gguf --types Q4_K \\
                --data Fixtures/text/calibration.txt --eval Fixtures/text/heldout.txt
            """)

        @Argument(help: "Checkpoint directory or GGUF file.")
        var model: String

        @Option(name: .shortAndLong, help: ArgumentHelp("Output GGUF file.", valueName: "file"))
        var output: String

        @Option(help: ArgumentHelp("ggml type of the weight matrices (F32, F16, BF16, Q8_0, Q6_K, Q5_K, Q4_K, Q3_K, Q2_K, Q5_1, Q5_0, Q4_1, Q4_0).", valueName: "type"))
        var types: GGMLType

        @Option(help: ArgumentHelp("Statistics file from `moe-compress calibrate` (importance weights).", valueName: "file"))
        var stats: String?

        @OptionGroup var calibration: CalibrationOptions

        @OptionGroup var evaluation: EvalOptions

        @Flag(help: "Replace an existing output file.")
        var force = false

        @OptionGroup var computeOptions: ComputeOptions

        func validate() throws {
            if stats != nil && !calibration.sources.isEmpty { throw ValidationError("pass at most one of --stats FILE and --data FILE[:N]") }
        }

        func run() throws {
            try computeOptions.apply()
            let input = try Model.open(path: model)
            let heldOut = try evaluation.ids(for: input)
            var statistics: RouterStatistics?
            if let stats {
                let read = try StatisticsFile.read(URL(fileURLWithPath: stats))
                try read.check(against: input, file: stats)
                statistics = read
            } else if !calibration.sources.isEmpty {
                statistics = try calibration.measure(input, name: model, precision: computeOptions.compute)
            }
            let (_, tensors) = try GGUFExport.layout(input)
            let assignment = Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, TypeRules.legal(types, for: $0)) })
            let importance = statistics.map { ExpertImportance(statistics: $0) }
            let bar = ProgressBar(label: "quantize")
            let summary = try GGUFExport.write(input, to: URL(fileURLWithPath: output), types: assignment,
                                               importance: importance?.weights, overwrite: force) { bar.update(done: $0, total: $1) }
            var counts: [GGMLType: Int] = [:]
            for type in summary.types.values { counts[type, default: 0] += 1 }
            let typeList = counts.sorted { $0.value > $1.value }.map { "\($0.key.name) ×\($0.value)" }.joined(separator: ", ")
            print(String(format: "wrote %@: %ld bytes (%.2f MiB), %.4f bits/weight over %ld weights; tensors: %@",
                         output, summary.bytes, Double(summary.bytes) / 1_048_576, summary.bitsPerWeight, summary.weights, typeList))
            if let heldOut {
                let before = try evaluation.measure(input, ids: heldOut, label: "eval before", precision: computeOptions.compute)
                let written = try Model.open(path: output)
                let after = try evaluation.measure(written, ids: heldOut, label: "eval after", precision: computeOptions.compute)
                print(String(format: "perplexity before %.4f, after %.4f (%@, seq-len %ld, %ld tokens)",
                             before.perplexity, after.perplexity, evaluation.evalText ?? "", evaluation.evalSeqLen, heldOut.count))
            }
        }
    }
}
