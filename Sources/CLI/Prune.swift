import ArgumentParser
import Calibration
import Foundation
import Inference
import Models
import Pruning

/// Where the kept experts may lie: the same count in every layer, or anywhere under a total.
enum Budget: String, ExpressibleByArgument, CaseIterable {
    case uniform, global
}

/// A ranking by score, or NAEE's search for the best subset.
enum PruneChoice: ExpressibleByArgument, Equatable {
    case score(PruneMethod)
    case enumerate

    init?(argument: String) {
        if argument == "enumerate" { self = .enumerate } else if let method = PruneMethod(rawValue: argument) { self = .score(method) } else { return nil }
    }

    static var allValueStrings: [String] { PruneMethod.allCases.map(\.rawValue) + ["enumerate"] }
    var name: String { if case .score(let method) = self { return method.rawValue } else { return "enumerate" } }
}

extension MoECompress {
    struct Prune: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Drop experts ranked by router statistics; write a smaller checkpoint of the same architecture.",
            discussion: """
            Keeps --keep experts in every MoE layer (or drops the fraction --ratio), ranked by \
            --method on the statistics of `moe-compress calibrate` (--stats) or of calibration run \
            here (--data). Kept experts are renumbered in their original order; router rows (and \
            router biases) are sliced to them; num_experts_per_tok and every other tensor are \
            copied as stored, byte for byte. A token's top-k is then taken over the remaining \
            experts, as in a checkpoint pruned with transformers, which loads the output as it \
            loads the original.

            Methods (highest score kept):
              frequency  top-k selection counts
              soft       sum of the applied routing weights over routed tokens
              ean        mean expert output norm over routed tokens (EAN)
              reap       mean of routing weight × output norm over routed tokens
                         (REAP, Lasby et al. 2025, arXiv 2510.13999)
              easy-ep    sum of weight × output norm × token contribution 1 − cos(h, h + r)
                         (EASY-EP, Dong et al. 2025, arXiv 2504.06792)
              tcess      mean raw router logit where the expert is a token's top-1
                         (PreMoe's TCESS, Pei et al. 2025, arXiv 2505.17639; the data is the task)
              enumerate  the subset whose routed output on calibration tokens is closest to the
                         original's (NAEE, Lu et al. 2024, arXiv 2402.14800): every subset when
                         C(experts, keep) <= 5000, else greedy elimination; runs every expert on
                         the first --enumerate-tokens tokens of each layer (with --stats, the
                         file's windows are drawn again from its sources)

            --recombine (DERN, Zhou et al. 2025, arXiv 2509.10377) then splits every dropped \
            expert into neuron segments (a row of gate and up, a column of down), gives each to the \
            kept neuron it is most similar to (cosine of the gate and up rows, at least \
            --recombine-threshold) and folds it in by a usage-weighted average, so kept experts \
            keep their width and the checkpoint its shape.

            Budgets: uniform (default) keeps the same count in every layer, which every engine \
            loads. global ranks experts across layers under the same total (--keep × layers, or \
            the --ratio of all experts), every layer keeping at least its top-k, so layers keep \
            different counts. No stock loader builds per-layer counts (transformers, vLLM, \
            llama.cpp and mlx-lm all read one scalar), so the output's config.json lists them \
            as <expert-count key>_per_layer beside the scalar (which holds the largest), and \
            modeling_moe_compress.py with an auto_map lets transformers load it with \
            trust_remote_code=True; moe-compress itself reads the list everywhere.

            prune-report.json beside the weights lists per layer the kept original expert ids and \
            every expert's score, and the --eval perplexities.

            Example:
              moe-compress prune Fixtures/default-model -o /tmp/pruned --ratio 0.25 --method reap \\
                --data Fixtures/text/calibration.txt --seq-len 128 --samples 64 \\
                --eval Fixtures/text/heldout.txt --eval-seq-len 128 --eval-max-tokens 4096
            """)

        @Argument(help: "Checkpoint directory.")
        var model: String

        @Option(name: [.customShort("o"), .long], help: ArgumentHelp("Output checkpoint directory.", valueName: "dir"))
        var output: String

        @Option(parsing: .unconditional, help: "Experts to keep in every MoE layer.")
        var keep: Int?

        @Option(parsing: .unconditional, help: "Fraction of each layer's experts to drop (0 < r < 1; floor(experts × r) are dropped).")
        var ratio: Double?

        @Option(help: ArgumentHelp("Ranking: \(PruneChoice.allValueStrings.joined(separator: ", ")).", valueName: "method"))
        var method: PruneChoice = .score(.reap)

        @Option(help: ArgumentHelp("uniform (the same count in every layer) or global (ranked across layers; per-layer counts).", valueName: "budget"))
        var budget: Budget = .uniform

        @Flag(help: "Always keep super experts (extreme activation outliers, arXiv 2507.23279), found as REAP does.")
        var protectSuperExperts = false

        @Flag(help: "Fold the dropped experts' neurons into the kept experts (DERN), keeping every kept expert's width.")
        var recombine = false

        @Option(parsing: .unconditional, help: "With --recombine: a dropped neuron is folded only if its cosine similarity to the best kept neuron is at least this.")
        var recombineThreshold = 0.4

        @Option(parsing: .unconditional, help: "Calibration tokens per layer that --method enumerate scores subsets on.")
        var enumerateTokens = 2048

        @OptionGroup var inputs: StageInputOptions

        func validate() throws {
            guard (keep == nil) != (ratio == nil) else { throw ValidationError("pass exactly one of --keep and --ratio") }
            if let ratio, !(ratio > 0 && ratio < 1) { throw ValidationError("--ratio \(ratio): must be between 0 and 1") }
            if let keep, keep < 1 { throw ValidationError("--keep \(keep): must be positive") }
            if protectSuperExperts && method == .enumerate {
                throw ValidationError("--protect-super-experts applies to score methods; --method enumerate searches subsets")
            }
            if budget == .global && method == .enumerate {
                throw ValidationError("--budget global ranks scores across layers; --method enumerate searches each layer alone")
            }
            guard (-1...1).contains(recombineThreshold) else { throw ValidationError("--recombine-threshold \(recombineThreshold): must be a cosine between -1 and 1") }
            guard enumerateTokens > 0 else { throw ValidationError("--enumerate-tokens \(enumerateTokens): must be positive") }
        }

        func run() throws {
            try inputs.computeOptions.apply()
            let input = try Model.open(path: model)
            let heldOut = try inputs.evaluation.ids(for: input)
            let statistics: RouterStatistics
            // Windows drawn here are tokenized once, for the statistics and for enumeration.
            let drawn = try inputs.stats == nil ? inputs.calibration.data(for: input) : nil
            if let stats = inputs.stats {
                statistics = try StatisticsFile.read(URL(fileURLWithPath: stats))
                try statistics.check(against: input, file: stats)
            } else {
                statistics = try inputs.calibration.measure(input, name: model, precision: inputs.computeOptions.compute, data: drawn)
            }
            let protected = protectSuperExperts ? SuperExperts.find(in: statistics.layers) : [:]
            let stage: PruneStage
            switch method {
            case .score(let method) where budget == .global:
                stage = try PruneStage(method: method, totalKeep: try totalKeep(input), statistics: statistics, model: input, protecting: protected)
            case .score(let method):
                stage = try PruneStage(method: method, keep: try expertCount(input, given: keep, orRemoving: ratio), statistics: statistics, model: input, protecting: protected)
            case .enumerate:
                let data = try drawn ?? CalibrationData(replaying: statistics.provenance, tokenizer: input.tokenizer())
                stage = try PruneStage(enumerating: input, keep: try expertCount(input, given: keep, orRemoving: ratio), data: data, tokenBudget: enumerateTokens,
                                       precision: inputs.computeOptions.compute)
            }
            var configured = stage
            if recombine {
                configured.recombination = PruneStage.Recombination(
                    threshold: recombineThreshold,
                    usage: Dictionary(uniqueKeysWithValues: statistics.layers.map { ($0.layer, $0[.counts]) }))
            }
            let (pruned, recombined) = try configured.apply(input)

            var comparison: PerplexityComparison?
            if let heldOut {
                let before = try inputs.evaluation.measure(input, ids: heldOut, label: "eval before", precision: inputs.computeOptions.compute)
                let after = try inputs.evaluation.measure(pruned, ids: heldOut, label: "eval after", precision: inputs.computeOptions.compute)
                comparison = PerplexityComparison(text: inputs.evaluation.evalText ?? "", seqLen: inputs.evaluation.evalSeqLen, tokens: heldOut.count,
                                                  before: before.perplexity, after: after.perplexity)
            }
            let report = PruneReport(model: model, method: method.name, budget: budget.rawValue, plan: stage.plan,
                                     superExperts: protectSuperExperts ? protected.mapValues { $0.sorted() }.reduce(into: [:]) { $0[String($1.key)] = $1.value } : nil,
                                     recombined: recombine ? Dictionary(uniqueKeysWithValues: recombined.map { (String($0.key), $0.value) }) : nil,
                                     statistics: statistics.provenance, perplexity: comparison)
            let bar = ProgressBar(label: "write")
            try ModelWriter.write(pruned, to: URL(fileURLWithPath: output), overwrite: inputs.force,
                                  additionalFiles: { ["prune-report.json": try report.json()] }) { bar.update(done: $0, total: $1) }
            let kept = stage.plan.layers.map { String($0.kept.count) }
            print("wrote \(output): \(Set(kept).count == 1 ? kept[0] : kept.joined(separator: ", ")) experts per MoE layer (method \(method.name), \(budget.rawValue) budget)")
            if let comparison {
                print(String(format: "perplexity before %.4f, after %.4f (%@, seq-len %ld, %ld tokens)",
                             comparison.before, comparison.after, comparison.text, comparison.seqLen, comparison.tokens))
            }
        }

        /// The global budget: --keep per layer on average, or all experts less floor(all × ratio).
        private func totalKeep(_ model: Model) throws -> Int {
            let experts = model.description.feedForward.compactMap { kind -> Int? in
                if case .sparse(let shape) = kind { return shape.expertCount } else { return nil }
            }
            if let keep { return keep * experts.count }
            let all = experts.reduce(0, +)
            return all - Int((Double(all) * (ratio ?? 0)).rounded(.down))
        }

    }
}

/// prune-report.json.
struct PruneReport: Encodable {
    let model: String
    let method: String
    let budget: String
    let plan: PrunePlan
    /// Per layer, with --protect-super-experts: the experts protected.
    let superExperts: [String: [Int]]?
    /// Per layer, with --recombine: neurons folded and discarded.
    let recombined: [String: NeuronRecombination.LayerSummary]?
    let statistics: RouterStatistics.Provenance
    let perplexity: PerplexityComparison?

    enum CodingKeys: String, CodingKey {
        case model, method, budget, plan, recombined, statistics, perplexity
        case superExperts = "super_experts"
    }

    func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}

/// Experts per MoE layer after a stage: `count`, or the first sparse layer's experts less
/// floor(experts × ratio) (REAP's rule), the count `prune --ratio` keeps and `merge --ratio` merges to.
func expertCount(_ model: Model, given count: Int?, orRemoving ratio: Double?) throws -> Int {
    if let count { return count }
    guard let layer = model.description.sparseLayers.first, case .sparse(let shape) = model.description.feedForward[layer] else {
        throw ValidationError("\(model.origin.path): the model has no MoE layer")
    }
    return shape.expertCount - Int((Double(shape.expertCount) * (ratio ?? 0)).rounded(.down))
}
