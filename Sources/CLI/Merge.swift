import ArgumentParser
import Calibration
import Foundation
import Inference
import Merging
import Models
import Pruning

extension ExpertSimilarity: ExpressibleByArgument {}
extension RouterMethod: ExpressibleByArgument {}
extension Linkage: ExpressibleByArgument {}
extension PruneMethod: ExpressibleByArgument {}

/// The clustering choices as the command line names them (linkage is its own option).
enum ClusterChoice: String, ExpressibleByArgument, CaseIterable {
    case hierarchical, kmeans, dominant
}

/// The fusing choices as the command line names them (the rank is its own option).
enum FuseChoice: String, ExpressibleByArgument, CaseIterable {
    case average, aligned, subspace
}

extension MoECompress {
    struct Merge: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fuse similar experts: cluster each MoE layer's experts, merge each cluster into one; write a smaller checkpoint.",
            discussion: """
            Every MoE layer goes from N to --experts K experts (or drops the fraction --ratio). The \
            output is a standard checkpoint of the same architecture with K experts and K router \
            rows per layer, which stock transformers loads: truly smaller, where the reference \
            implementations keep N router rows and tie copies of the merged weights.

            1. Similarity (--similarity), measured on the first --sample-tokens calibration tokens \
            of each layer (--data, or the windows of --stats drawn again from its sources):
              output         mean expert output over the sampled tokens, every expert run on every
                             token (experts × tokens × 6 × hidden × width FLOPs per layer);
                             Euclidean distance (HC-SMoE, Chen et al. 2025, arXiv 2410.08589)
              router-logits  each expert's column of router logits; cosine (M-SMoE, Li et al.
                             2024, arXiv 2310.01334)
              weights        gate, up and down flattened; cosine; needs no calibration pass
            2. Clustering (--cluster):
              hierarchical   agglomerative, --linkage single | average | complete (HC-SMoE)
              kmeans         k-means++ seeded by --seed (Sub-MoE, Li et al. 2025, arXiv 2506.23266);
                             an empty cluster takes the expert farthest from its centre
              dominant       the K most used experts are centres, the rest join the nearest (M-SMoE)
            3. Fusing (--fuse), weighted by each expert's top-k count on the calibration data:
              average        usage-weighted average of gate, up and down (HC-SMoE, M-SMoE)
              aligned        each member's intermediate neurons first permuted to match the most used
                             member's (weight matching solved exactly by the Hungarian algorithm,
                             MC-SMoE), then averaged
              subspace       joint SVD (LAPACK dgesdd) of the members' matrices side by side, the
                             shared basis kept to --rank N directions or to --energy E of the squared
                             singular values, the expert-specific factors averaged by usage, rebuilt
                             at the original size (Sub-MoE)
            4. Router rows (--router): one row cannot reproduce log Σ exp of its members' logits, so:
              dominant       the most used member's row (M-SMoE)
              average        the usage-weighted mean of the members' rows
              fit            ridge least squares on the sampled inputs so the merged logit matches
                             log Σ exp of the members' logits (the merged probability is then their
                             sum), starting from the average

            Defaults (router-logits, dominant, aligned, router average: M-SMoE's recipe with \
            averaged router rows) are the best merge at 25% in docs/merging.md. On that model \
            pruning (REAP) still beats every merge; see docs/merging.md before choosing.

            --prune-to P first prunes every layer to P experts by --prune-method (see `prune`), \
            then merges the survivors to K, without writing the pruned model.

            merge-report.json beside the weights records per layer the clusters (original expert \
            ids), usage, distances, the router rows' fit, for subspace the rank and retained energy \
            of every merged matrix, and the --eval perplexities.

            Example:
              moe-compress merge Fixtures/default-model -o /tmp/merged --ratio 0.25 \\
                --data Fixtures/text/calibration.txt --seq-len 128 --samples 64 \\
                --eval Fixtures/text/heldout.txt --eval-seq-len 128 --eval-max-tokens 4096
            """)

        @Argument(help: "Checkpoint directory.")
        var model: String

        @Option(name: [.customShort("o"), .long], help: ArgumentHelp("Output checkpoint directory.", valueName: "dir"))
        var output: String

        @Option(parsing: .unconditional, help: "Merged experts per MoE layer.")
        var experts: Int?

        @Option(parsing: .unconditional, help: "Fraction of each layer's experts to remove (0 < r < 1; floor(experts × r) fewer).")
        var ratio: Double?

        @Option(help: ArgumentHelp("output, router-logits or weights.", valueName: "similarity"))
        var similarity: ExpertSimilarity = .routerLogits

        @Option(help: ArgumentHelp("hierarchical, kmeans or dominant.", valueName: "method"))
        var cluster: ClusterChoice = .dominant

        @Option(help: ArgumentHelp("With --cluster hierarchical: single, average or complete.", valueName: "linkage"))
        var linkage: Linkage = .average

        @Option(help: ArgumentHelp("average, aligned or subspace.", valueName: "method"))
        var fuse: FuseChoice = .aligned

        @Option(parsing: .unconditional, help: "With --fuse subspace: singular directions kept per merged matrix.")
        var rank: Int?

        @Option(parsing: .unconditional, help: "With --fuse subspace: keep the fewest directions holding this fraction of the energy (default 0.9).")
        var energy: Double?

        @Option(help: ArgumentHelp("dominant, average or fit.", valueName: "method"))
        var router: RouterMethod = .average

        @Option(parsing: .unconditional, help: "Calibration tokens per layer the similarity and the router fit are measured on.")
        var sampleTokens = 2048

        @Option(parsing: .unconditional, help: "Prune every layer to this many experts first, then merge those.")
        var pruneTo: Int?

        @Option(help: ArgumentHelp("With --prune-to: the pruning method (\(PruneMethod.allCases.map(\.rawValue).joined(separator: ", "))).", valueName: "method"))
        var pruneMethod: PruneMethod = .reap

        @OptionGroup var inputs: StageInputOptions

        func validate() throws {
            guard (experts == nil) != (ratio == nil) else { throw ValidationError("pass exactly one of --experts and --ratio") }
            if let ratio, !(ratio > 0 && ratio < 1) { throw ValidationError("--ratio \(ratio): must be between 0 and 1") }
            if let experts, experts < 1 { throw ValidationError("--experts \(experts): must be positive") }
            if rank != nil && energy != nil { throw ValidationError("pass at most one of --rank and --energy") }
            if (rank != nil || energy != nil) && fuse != .subspace { throw ValidationError("--rank and --energy apply to --fuse subspace") }
            if let rank, rank < 1 { throw ValidationError("--rank \(rank): must be positive") }
            if let energy, !(energy > 0 && energy <= 1) { throw ValidationError("--energy \(energy): must be in (0, 1]") }
            guard sampleTokens > 0 else { throw ValidationError("--sample-tokens \(sampleTokens): must be positive") }
            if let pruneTo, pruneTo < 1 { throw ValidationError("--prune-to \(pruneTo): must be positive") }
        }

        func run() throws {
            try inputs.computeOptions.apply()
            let precision = inputs.computeOptions.compute
            let input = try Model.open(path: model)
            let heldOut = try inputs.evaluation.ids(for: input)
            var statistics: RouterStatistics?
            if let stats = inputs.stats {
                let read = try StatisticsFile.read(URL(fileURLWithPath: stats))
                try read.check(against: input, file: stats)
                statistics = read
            }
            let drawn = inputs.stats == nil ? try inputs.calibration.data(for: input) : nil
            func data() throws -> CalibrationData {
                if let drawn { return drawn }
                return try CalibrationData(replaying: statistics!.provenance, tokenizer: input.tokenizer())
            }

            var working = input
            var pruned: PrunePlan?
            if let pruneTo {
                let measured = try statistics ?? inputs.calibration.measure(input, name: model, precision: precision, data: data())
                let stage = try PruneStage(method: pruneMethod, keep: pruneTo, statistics: measured, model: input)
                working = try stage.run(input)
                pruned = stage.plan
            }
            let k = try expertCount(working, given: experts, orRemoving: ratio)
            var recipe = MergeRecipe(experts: k)
            recipe.similarity = similarity
            recipe.clustering = switch cluster {
            case .hierarchical: .hierarchical(linkage)
            case .kmeans: .kmeans
            case .dominant: .dominant
            }
            recipe.fusing = switch fuse {
            case .average: .average
            case .aligned: .aligned
            case .subspace: .subspace(rank.map { .rank($0) } ?? .energy(energy ?? 0.9))
            }
            recipe.router = router
            recipe.seed = inputs.calibration.seed

            // Usage comes from the statistics file when it describes the model being merged and
            // nothing else needs a pass; otherwise one pass samples inputs and counts selections.
            let needsPass = similarity.needsSample || router == .fit || pruneTo != nil || statistics == nil
            var sample: LayerInputSample?
            if needsPass {
                let bar = ProgressBar(label: "sample")
                sample = try LayerInputSample.collect(from: working, data: data(), tokenBudget: sampleTokens, precision: precision,
                                                      batchTokens: inputs.calibration.batchTokens) { bar.update(done: $0, total: $1) }
            }
            let usage = sample?.counts ?? Dictionary(uniqueKeysWithValues: statistics!.layers.map { ($0.layer, $0[.counts]) })
            let planBar = ProgressBar(label: "plan")
            let stage = try MergePlanner.stage(recipe, model: working, usage: usage, sample: sample, precision: precision) {
                planBar.update(done: $0, total: $1)
            }
            let outcome = try stage.apply(working)

            var comparison: PerplexityComparison?
            if let heldOut {
                let before = try inputs.evaluation.measure(input, ids: heldOut, label: "eval before", precision: precision)
                let after = try inputs.evaluation.measure(outcome.model, ids: heldOut, label: "eval after", precision: precision)
                comparison = PerplexityComparison(text: inputs.evaluation.evalText ?? "", seqLen: inputs.evaluation.evalSeqLen, tokens: heldOut.count,
                                                  before: before.perplexity, after: after.perplexity)
            }
            let bar = ProgressBar(label: "write")
            try ModelWriter.write(outcome.model, to: URL(fileURLWithPath: output), overwrite: inputs.force, additionalFiles: {
                let report = MergeReport(model: model, recipe: recipe, sampleTokens: sample.map { s in stage.plan.layers.map { s.tokens(inLayer: $0.layer) }.max() ?? 0 },
                                         stage: stage, outcome: outcome, prunedFirst: pruned,
                                         calibration: statistics?.provenance.sources.map(\.path) ?? drawn?.sources.map(\.path) ?? [],
                                         perplexity: comparison)
                return ["merge-report.json": try report.json()]
            }) { bar.update(done: $0, total: $1) }
            let before = stage.plan.layers.first?.usage.count ?? 0
            print("wrote \(output): \(before) → \(k) experts per MoE layer (similarity \(similarity.rawValue), cluster \(recipe.clustering.name), fuse \(recipe.fusing.name), router \(router.rawValue))")
            if let comparison {
                print(String(format: "perplexity before %.4f, after %.4f (%@, seq-len %ld, %ld tokens)",
                             comparison.before, comparison.after, comparison.text, comparison.seqLen, comparison.tokens))
            }
        }

    }
}

/// merge-report.json.
struct MergeReport: Encodable {
    struct Layer: Encodable {
        let layer: Int
        let clusters: [[Int]]
        let dominant: [Int]
        let usage: [Double]
        let distances: [[Double]]?
        let routerFit: RouterFit.Summary?
        /// Per merged expert with two or more members: the rank and energy kept per projection.
        let subspace: [String: [String: SubspaceSummary]]?

        enum CodingKeys: String, CodingKey {
            case layer, clusters, dominant, usage, distances, subspace
            case routerFit = "router_fit"
        }
    }
    let model: String
    let experts: Int
    let similarity: String
    let cluster: String
    let fuse: String
    let rank: Int?
    let energy: Double?
    let router: String
    let seed: UInt64
    let sampleTokens: Int?
    let prunedFirst: PrunePlan?
    let calibration: [String]
    let layers: [Layer]
    let perplexity: PerplexityComparison?

    enum CodingKeys: String, CodingKey {
        case model, experts, similarity, cluster, fuse, rank, energy, router, seed, calibration, layers, perplexity
        case sampleTokens = "sample_tokens"
        case prunedFirst = "pruned_first"
    }

    init(model: String, recipe: MergeRecipe, sampleTokens: Int?, stage: MergeStage, outcome: MergeStage.Outcome, prunedFirst: PrunePlan?,
         calibration: [String], perplexity: PerplexityComparison?) {
        self.model = model
        experts = recipe.experts
        similarity = recipe.similarity.rawValue
        cluster = recipe.clustering.name
        fuse = recipe.fusing.name
        if case .subspace(let choice) = recipe.fusing {
            switch choice {
            case .rank(let value): (rank, energy) = (value, nil)
            case .energy(let value): (rank, energy) = (nil, value)
            }
        } else {
            (rank, energy) = (nil, nil)
        }
        router = recipe.router.rawValue
        seed = recipe.seed
        self.sampleTokens = sampleTokens
        self.prunedFirst = prunedFirst
        self.calibration = calibration
        let kept = outcome.subspaceSummaries
        layers = stage.plan.layers.map { layer in
            Layer(layer: layer.layer, clusters: layer.clusters, dominant: layer.dominant, usage: layer.usage, distances: layer.distances,
                  routerFit: stage.fitted[layer.layer]?.summary,
                  subspace: kept[layer.layer].map { Dictionary(uniqueKeysWithValues: $0.map { (String($0.key), $0.value) }) })
        }
        self.perplexity = perplexity
    }

    func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}
