import ArgumentParser
import Calibration
import Foundation
import GGUF
import Merging
import Models
import Quantization
import Pruning
import Quantizing

/// How --bits measures each candidate's error.
enum ErrorMeasureOption: String, ExpressibleByArgument, CaseIterable {
    case kl, output
}

/// How each tensor is rounded to its type's grid.
enum QuantizeMethod: String, ExpressibleByArgument, CaseIterable {
    case rtn, gptq
}

extension MoECompress {
    struct Quantize: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the model as one GGUF file for llama.cpp, each tensor in the ggml type its measured error earns.",
            discussion: """
            The output loads in llama.cpp (llama-cli, llama-server, llama-perplexity, \
            llama-cpp-python) with llama.cpp's own names, hyperparameters and tokenizer for the \
            family (Mixtral as `llama`, `qwen2moe`, `qwen3moe`, `olmoe`), experts stacked per \
            projection (llama.cpp gives one type to all experts of a layer's projection). It is the \
            streaming replacement for convert_hf_to_gguf.py plus llama-quantize: one expert's matrix \
            is in memory at a time. Norms, biases and routers stay F32; a row length a type's blocks \
            do not tile falls back as llama-quantize does (Q2_K/Q3_K → Q4_0, Q4_K → Q5_0, \
            Q5_K → Q5_1, Q6_K → Q8_0, IQ2_XXS/IQ2_XS → Q4_0, then F16).

            Types: F32, F16, BF16 (plain conversions; also --bits 16 / --bits 32), Q8_0, Q6_K, Q5_K, \
            Q4_K, Q3_K, Q2_K (k-quants, 256-weight super-blocks: llama.cpp PR #1684), Q5_1, Q5_0, \
            Q4_1, Q4_0; the blocks are byte-identical to ggml's own quantizer. IQ2_XS and IQ2_XXS \
            (2.31 and 2.06 bits per weight: groups of eight weights as points of an E8 lattice \
            codebook, QuIP#, Tseng et al. 2024, arXiv 2402.04396, as llama.cpp PR #4773 stores \
            them): ggml's byte layout, with this tool's own search for points and scales, which \
            minimises the imatrix-weighted error ggml's does not (its weighted error is lower than \
            ggml's on the recorded rows).

            Calibration (--data FILE[:N], or --stats FILE whose windows are drawn again): one forward \
            pass measures every weight matrix's input second moments, llama.cpp's importance matrix \
            (imatrix, llama.cpp PR #4861), each routed expert's over only the tokens routed to it.

              --types TYPE        every weight matrix in TYPE
              --bits B            B bits per weight over the whole file, as llama.cpp counts them: for \
            every tensor and candidate type (--types T1,T2,…; default IQ2_XXS,IQ2_XS,Q2_K,Q3_K,Q4_K,Q5_K,Q6_K,Q8_0) \
            the error its rounding causes is measured, and the mix with the least total error within \
            the size is solved exactly (multiple-choice knapsack by dynamic programming, as \
            exllamav2's optimiser and MC-MoE's PMQ, Huang et al. 2024, arXiv 2410.06270, pose it). \
            --measure kl (default): the tensor alone is quantized and --measure-tokens calibration \
            tokens are run through the model from its layer on; the error is the mean KL divergence \
            of the next-token distributions from the original's (what llama-perplexity \
            --kl-divergence scores), so the routers' use of each expert is in it. --measure output: \
            the tensor's own output error under the imatrix (diagonal XᵀX, an expert's over its \
            routed tokens), divided by the residual stream's mean square; no forward pass per \
            candidate, for models too large to run L/2 layers per tensor and type
              --dry-run           write that plan (tensor → type, bytes, predicted error) as JSON to -o
              --plan FILE         apply a plan written by --dry-run (checked against the model)

            --method rtn (default) rounds to each block's grid with the imatrix weights, as \
            llama-quantize does. --method gptq runs GPTQ (Frantar et al. 2022, arXiv 2210.17323) on \
            the same grids: each layer is run on the calibration streams to sum its matrices' input \
            Hessians (an expert's over its routed tokens), each block's scales are chosen as the \
            updates reach it, the dampening grows when the Hessian is singular, and the streams then \
            pass through the quantized layer, so the next layer is fitted to the inputs it will see. An expert with \
            fewer than max(64, row length / 4) routed tokens is rounded with importance weights \
            instead, and listed.

            --prune-to P first prunes every layer to P experts by --prune-method (see `prune`), on \
            the statistics of --stats (or measured on --data), and quantizes the pruned model \
            without writing it. --merge-to K then (or instead) merges every layer to K experts with \
            `merge`'s default recipe (M-SMoE's: router-logit similarity, dominant clustering, \
            aligned fusing; see `merge`), on --merge-sample-tokens calibration tokens; for another \
            recipe, write the merge with `merge` and quantize its output.

            --eval FILE prints held-out perplexity of the input and of the written GGUF, read back \
            by moe-compress's own forward pass.

            Example:
              moe-compress quantize Fixtures/default-model -o /tmp/default-4.5.gguf --bits 4.5 \\
                --data Fixtures/text/calibration.txt --eval Fixtures/text/heldout.txt
            """)

        @Argument(help: "Checkpoint directory or GGUF file.")
        var model: String

        @Option(name: .shortAndLong, help: ArgumentHelp("Output GGUF file.", valueName: "file"))
        var output: String

        @Option(help: ArgumentHelp("Without --bits: the ggml type of every weight matrix. With --bits: the candidate types (comma-separated; default IQ2_XXS,IQ2_XS,Q2_K,Q3_K,Q4_K,Q5_K,Q6_K,Q8_0).", valueName: "types"))
        var types: String?

        @Option(parsing: .unconditional, help: ArgumentHelp("Average bits per weight of the whole file, as llama.cpp counts them (e.g. 4.5, 3.5, 2.75).", valueName: "B"))
        var bits: Double?

        @Option(help: ArgumentHelp("rtn: round to each block's grid with imatrix weights; gptq: GPTQ with each layer's input Hessians (needs --data or --stats).", valueName: "method"))
        var method: QuantizeMethod = .rtn

        @Option(help: ArgumentHelp("With --bits: kl measures each candidate by the KL divergence of the next-token distributions on a calibration sample; output by the imatrix-weighted error of the tensor's own output (no forward pass per candidate, for the largest models).", valueName: "measure"))
        var measure: ErrorMeasureOption = .kl

        @Option(parsing: .unconditional, help: ArgumentHelp("With --measure kl: calibration tokens in the sample (evenly spaced windows).", valueName: "N"))
        var measureTokens = 2048

        @Option(help: ArgumentHelp("Read each tensor's type from this plan (written by --dry-run).", valueName: "file"))
        var plan: String?

        @Flag(help: "Write the plan (tensor → type, bytes, predicted error) as JSON to --output instead of quantizing.")
        var dryRun = false

        @Option(parsing: .unconditional, help: ArgumentHelp("Prune every MoE layer to this many experts first (--prune-method), then quantize the result.", valueName: "P"))
        var pruneTo: Int?

        @Option(help: ArgumentHelp("With --prune-to: the pruning method (\(PruneMethod.allCases.map(\.rawValue).joined(separator: ", "))).", valueName: "method"))
        var pruneMethod: PruneMethod = .reap

        @Option(parsing: .unconditional, help: ArgumentHelp("Merge every MoE layer to this many experts (merge's default recipe) after any --prune-to, then quantize the result.", valueName: "K"))
        var mergeTo: Int?

        @Option(parsing: .unconditional, help: ArgumentHelp("With --merge-to: calibration tokens sampled per layer for the similarity and the router rows.", valueName: "N"))
        var mergeSampleTokens = 2048

        @Option(help: ArgumentHelp("Statistics file from `moe-compress calibrate`: its calibration windows are drawn again for the importance pass.", valueName: "file"))
        var stats: String?

        @OptionGroup var calibration: CalibrationOptions

        @OptionGroup var evaluation: EvalOptions

        @Flag(help: "Replace an existing output file.")
        var force = false

        @OptionGroup var computeOptions: ComputeOptions

        static let defaultCandidates: [GGMLType] = [.iq2_xxs, .iq2_xs, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_0]

        /// `--bits 16` and `--bits 32` without --types are plain conversions (every matrix F16 or F32).
        var conversion: GGMLType? {
            guard types == nil, let bits else { return nil }
            return bits == 16 ? .f16 : bits == 32 ? .f32 : nil
        }

        func validate() throws {
            if stats != nil && !calibration.sources.isEmpty { throw ValidationError("pass at most one of --stats FILE and --data FILE[:N]") }
            if let types, candidateTypes(types) == nil { throw ValidationError("--types \(types): unknown ggml type (F32, F16, BF16, Q8_0, Q6_K, Q5_K, Q4_K, Q3_K, Q2_K, IQ2_XS, IQ2_XXS, Q5_1, Q5_0, Q4_1, Q4_0)") }
            if bits != nil && plan != nil { throw ValidationError("pass at most one of --bits and --plan") }
            if let bits, !(bits.isFinite && bits > 0) { throw ValidationError("--bits \(bits): must be a positive number of bits per weight") }
            if bits == nil && plan == nil {
                guard let types, candidateTypes(types)?.count == 1 else {
                    throw ValidationError("pass --types TYPE (one ggml type), --bits B or --plan FILE")
                }
            }
            if bits != nil && conversion == nil && stats == nil && calibration.sources.isEmpty {
                throw ValidationError("--bits measures each type's error on calibration text: pass --data FILE[:N] or --stats FILE")
            }
            if method == .gptq && stats == nil && calibration.sources.isEmpty {
                throw ValidationError("--method gptq measures each layer's input Hessians on calibration text: pass --data FILE[:N] or --stats FILE")
            }
            if let pruneTo {
                guard pruneTo > 0 else { throw ValidationError("--prune-to \(pruneTo): must be positive") }
                guard stats != nil || !calibration.sources.isEmpty else {
                    throw ValidationError("--prune-to ranks experts by router statistics: pass --stats FILE or --data FILE[:N]")
                }
            }
            if let mergeTo {
                guard mergeTo > 0 else { throw ValidationError("--merge-to \(mergeTo): must be positive") }
                guard stats != nil || !calibration.sources.isEmpty else {
                    throw ValidationError("--merge-to measures expert similarity on calibration text: pass --stats FILE or --data FILE[:N]")
                }
            }
            if mergeSampleTokens <= 0 { throw ValidationError("--merge-sample-tokens \(mergeSampleTokens): must be positive") }
            if measureTokens <= 0 { throw ValidationError("--measure-tokens \(measureTokens): must be positive") }
            if dryRun && plan != nil { throw ValidationError("--dry-run writes a plan; --plan reads one") }
        }

        func candidateTypes(_ list: String) -> [GGMLType]? {
            let types = list.split(separator: ",").map { GGMLType(name: $0.trimmingCharacters(in: .whitespaces)) }
            return types.contains(nil) || types.isEmpty ? nil : types.compactMap { $0 }
        }

        func run() throws {
            try computeOptions.apply()
            let input = try Model.open(path: model)
            let heldOut = try evaluation.ids(for: input)
            let destination = URL(fileURLWithPath: output)
            if !force && FileManager.default.fileExists(atPath: destination.path) {
                throw ValidationError("\(output): already exists (use --force to replace it)")
            }
            let (data, fileStatistics) = try calibrationData(input)
            var working = input
            if let pruneTo {
                let statistics = try fileStatistics ?? calibration.measure(input, name: model, precision: computeOptions.compute, data: data)
                let stage = try PruneStage(method: pruneMethod, keep: pruneTo, statistics: statistics, model: input)
                working = try stage.run(input)
                print("pruned to \(pruneTo) experts per MoE layer (\(pruneMethod.rawValue)) before quantizing")
            }
            if let mergeTo, let data {
                let bar = ProgressBar(label: "sample")
                let sample = try LayerInputSample.collect(from: working, data: data, tokenBudget: mergeSampleTokens, precision: computeOptions.compute,
                                                          batchTokens: calibration.batchTokens) { bar.update(done: $0, total: $1) }
                var recipe = MergeRecipe(experts: mergeTo)
                recipe.seed = calibration.seed
                let stage = try MergePlanner.stage(recipe, model: working, usage: sample.counts, sample: sample, precision: computeOptions.compute)
                working = try stage.apply(working).model
                print("merged to \(mergeTo) experts per MoE layer (merge's defaults) before quantizing")
            }
            let (_, tensors) = try GGUFExport.layout(working)
            let candidates = types.flatMap(candidateTypes) ?? Self.defaultCandidates
            if let bits, conversion == nil, plan == nil {
                do { _ = try QuantPlanner.feasibleBudget(tensors: tensors, candidates: candidates, bits: bits) } catch let infeasible as QuantPlanner.Infeasible {
                    throw ValidationError(infeasible.description)
                }
            }
            // The imatrix pass: rounding weights for rtn, and the measured errors --bits allocates by.
            let importance = try data.flatMap { data in
                try (method == .rtn || (bits != nil && conversion == nil)) ? measureImportance(working, data: data) : nil
            }

            let quantPlan: QuantPlan
            if let plan {
                let read = try QuantPlan.read(URL(fileURLWithPath: plan))
                _ = try read.types(for: tensors, file: plan)
                quantPlan = read
            } else if let conversion {
                quantPlan = QuantPlanner.uniform(conversion, tensors: tensors, model: model, targetBitsPerWeight: bits)
            } else if let bits {
                guard let importance, let data else { throw ValidationError("--bits needs --data or --stats") }
                let bar = ProgressBar(label: "measure")
                let errorMeasure: ErrorTable.Measure = switch measure {
                case .output: .outputError
                case .kl: .klDivergence(sample: LogitDivergence.sample(data.windows, tokens: measureTokens), precision: computeOptions.compute)
                }
                do {
                    quantPlan = try QuantPlanner.allocate(working, tensors: tensors, candidates: candidates, importance: importance,
                                                          measure: errorMeasure, bits: bits, model: model) { bar.update(done: $0, total: $1) }
                } catch let infeasible as QuantPlanner.Infeasible {
                    throw ValidationError(infeasible.description)
                }
            } else {
                guard let type = types.flatMap(candidateTypes)?.first else {
                    throw ValidationError("pass --types TYPE (one ggml type), --bits B or --plan FILE")
                }
                quantPlan = QuantPlanner.uniform(type, tensors: tensors, model: model)
            }

            if dryRun {
                try writeAtomically(try quantPlan.json(), to: destination)
                print(String(format: "wrote plan %@: %.4f bits/weight, %ld bytes, %ld tensors%@", output, quantPlan.bitsPerWeight,
                             quantPlan.bytes, quantPlan.tensors.count,
                             quantPlan.predictedError.map { String(format: ", predicted error %.6g", $0) } ?? ""))
                return
            }
            let assignment = try quantPlan.types(for: tensors, file: plan ?? output)
            let quantizer: TensorQuantizer
            switch method {
            case .rtn: quantizer = WeightedRounding(importance: importance)
            case .gptq:
                guard let data else { throw ValidationError("--method gptq needs --data or --stats") }
                quantizer = try LayerwiseGPTQ(model: working, data: data, precision: computeOptions.compute, batchTokens: calibration.batchTokens)
            }
            let bar = ProgressBar(label: method == .gptq ? "gptq" : "quantize")
            let summary = try GGUFExport.write(working, to: destination, types: assignment,
                                               quantizer: quantizer, overwrite: force) { bar.update(done: $0, total: $1) }
            var counts: [GGMLType: Int] = [:]
            for type in summary.types.values { counts[type, default: 0] += 1 }
            let typeList = counts.sorted { $0.value > $1.value }.map { "\($0.key.name) ×\($0.value)" }.joined(separator: ", ")
            print(String(format: "wrote %@: %ld bytes (%.2f MiB), %.4f bits/weight over %ld weights; tensors: %@",
                         output, summary.bytes, Double(summary.bytes) / 1_048_576, summary.bitsPerWeight, summary.weights, typeList))
            for (tensor, note) in summary.fallbacks.sorted(by: { $0.key < $1.key }) {
                print("\(tensor): \(note)")
            }
            if let heldOut {
                let before = try evaluation.measure(input, ids: heldOut, label: "eval before", precision: computeOptions.compute)
                let written = try Model.open(path: output)
                let after = try evaluation.measure(written, ids: heldOut, label: "eval after", precision: computeOptions.compute)
                print(String(format: "perplexity before %.4f, after %.4f (%@, seq-len %ld, %ld tokens)",
                             before.perplexity, after.perplexity, evaluation.evalText ?? "", evaluation.evalSeqLen, heldOut.count))
            }
        }

        /// The windows of --data, or of --stats drawn again (checked to be this model's), with the
        /// statistics file itself when one was given.
        private func calibrationData(_ input: Model) throws -> (CalibrationData?, RouterStatistics?) {
            if let stats {
                let statistics = try StatisticsFile.read(URL(fileURLWithPath: stats))
                try statistics.check(against: input, file: stats)
                return (try CalibrationData(replaying: statistics.provenance, tokenizer: input.tokenizer()), statistics)
            }
            return (calibration.sources.isEmpty ? nil : try calibration.data(for: input), nil)
        }

        /// The imatrix pass over the calibration windows.
        private func measureImportance(_ input: Model, data: CalibrationData) throws -> InputImportance {
            let bar = ProgressBar(label: "importance")
            return try InputImportance.collect(from: input, data: data, precision: computeOptions.compute,
                                               batchTokens: calibration.batchTokens) { bar.update(done: $0, total: $1) }
        }

        private func writeAtomically(_ data: Data, to url: URL) throws {
            do { try data.write(to: url, options: .atomic) } catch {
                throw ValidationError("\(url.path): cannot write: \(error.localizedDescription)")
            }
        }
    }
}
