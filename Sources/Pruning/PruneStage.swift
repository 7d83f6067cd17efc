import Architectures
import Calibration
import Checkpoint
import Inference
import Models

/// Drops experts: the output keeps, in every sparse layer, the plan's experts (renumbered in
/// their original order), the router rows of those experts, and every other tensor as stored.
/// The result is the same architecture with a smaller expert count, which stock loaders run: a
/// token's top-k is now taken over the remaining experts' logits, exactly as in a checkpoint
/// pruned by transformers (pruning is not the same as zeroing a gate).
public struct PruneStage: Stage {
    /// DERN's recombination of the dropped experts' neurons into the kept ones (NeuronRecombination).
    public struct Recombination: Sendable {
        /// Segments whose best cosine similarity is lower are dropped with their expert.
        public var threshold: Double
        /// Each sparse layer's routing counts (statistics `counts`), the merge weights.
        public var usage: [Int: [Double]]

        public init(threshold: Double, usage: [Int: [Double]]) {
            self.threshold = threshold
            self.usage = usage
        }
    }

    public let name = "prune"
    public let plan: PrunePlan
    public var recombination: Recombination?

    public init(plan: PrunePlan, recombination: Recombination? = nil) {
        self.plan = plan
        self.recombination = recombination
    }

    /// A uniform plan: `keep` experts in every sparse layer, ranked by `method` on `statistics`.
    /// `protecting` experts (by layer) always score highest, so they are kept (super experts).
    public init(method: PruneMethod, keep: Int, statistics: RouterStatistics, model: Model,
                protecting protected: [Int: Set<Int>] = [:]) throws {
        let description = model.description
        var layers: [PrunePlan.Layer] = []
        for layer in description.sparseLayers {
            guard case .sparse(let shape) = description.feedForward[layer], let measured = statistics.layer(layer) else {
                throw CalibrationError("the statistics have no layer \(layer)")
            }
            try Self.checkKeep(keep, shape: shape, model: description)
            let scores = method.scores(measured)
            let kept = PruneMethod.best(keep, of: Self.protect(scores, protected[layer] ?? []))
            layers.append(PrunePlan.Layer(layer: layer, kept: kept, scores: scores))
        }
        plan = PrunePlan(method: method.rawValue, layers: layers)
    }

    /// A global plan: `total` experts over all sparse layers, ranked by `method` across layers,
    /// so layers keep different counts. Every layer first keeps its `num_experts_per_tok` best
    /// (a layer with fewer could not route a token); the remaining places go to the best of the
    /// rest wherever they are. Scores are compared as they are, so a method whose scale differs
    /// between layers (output norms grow with depth) favours some layers: the report shows it.
    public init(method: PruneMethod, totalKeep total: Int, statistics: RouterStatistics, model: Model,
                protecting protected: [Int: Set<Int>] = [:]) throws {
        let description = model.description
        var candidates: [(layer: Int, expert: Int, score: Double)] = []
        var kept: [Int: [Int]] = [:], scores: [Int: [Double]] = [:]
        var available = 0, minimum = 0
        for layer in description.sparseLayers {
            guard case .sparse(let shape) = description.feedForward[layer], let measured = statistics.layer(layer) else {
                throw CalibrationError("the statistics have no layer \(layer)")
            }
            scores[layer] = method.scores(measured)
            let layerScores = Self.protect(method.scores(measured), protected[layer] ?? [])
            let mandatory = PruneMethod.best(shape.expertsPerToken, of: layerScores)
            kept[layer] = mandatory
            candidates += layerScores.indices.filter { !mandatory.contains($0) }.map { (layer, $0, layerScores[$0]) }
            available += shape.expertCount
            minimum += shape.expertsPerToken
        }
        guard total >= minimum && total < available else {
            throw InputError("a global budget of \(total) experts: must be between \(minimum) (every layer's top-k) and \(available - 1)")
        }
        candidates.sort { $0.score != $1.score ? $0.score > $1.score : ($0.layer, $0.expert) < ($1.layer, $1.expert) }
        for candidate in candidates.prefix(total - minimum) { kept[candidate.layer, default: []].append(candidate.expert) }
        plan = PrunePlan(method: method.rawValue, layers: description.sparseLayers.map {
            PrunePlan.Layer(layer: $0, kept: (kept[$0] ?? []).sorted(), scores: scores[$0] ?? [])
        })
    }

    /// NAEE's enumeration (Lu et al. 2024, arXiv 2402.14800): per layer, the subset of `keep`
    /// experts whose routed output on the first `tokenBudget` calibration tokens is closest to the
    /// original's (ExpertSubsetSearch: exhaustive when small, greedy otherwise). Layer-wise: every
    /// layer's inputs come from the unpruned model.
    public init(enumerating model: Model, keep: Int, data: CalibrationData, tokenBudget: Int = 2048,
                precision: ComputePrecision = .float32) throws {
        let description = model.description
        for layer in description.sparseLayers {
            if case .sparse(let shape) = description.feedForward[layer] { try Self.checkKeep(keep, shape: shape, model: description) }
        }
        // Evenly spaced windows, enough for the budget, as one batch.
        let needed = min(data.windows.count, max(1, (tokenBudget + data.sequenceLength - 1) / data.sequenceLength))
        let windows = (0..<needed).map { data.windows[$0 * data.windows.count / needed] }
        let collector = SubsetSearchCollector(model: model, keep: keep, tokenBudget: tokenBudget,
                                              sequenceLength: data.sequenceLength, precision: precision)
        let forward = ForwardPass(model: description, source: model.source, precision: precision)
        _ = try forward.hiddenStates(TokenBatch(sequences: windows), observer: collector)
        if let failure = collector.failure { throw failure }
        let layers = try description.sparseLayers.map { layer -> PrunePlan.Layer in
            guard let result = collector.results[layer] else { throw CalibrationError("the subset search saw no tokens in layer \(layer)") }
            return PrunePlan.Layer(layer: layer, kept: result.kept, search: result)
        }
        plan = PrunePlan(method: "enumerate", layers: layers)
    }

    /// Protected experts score +∞, as REAP's `perserve_super_experts` sets them.
    static func protect(_ scores: [Double], _ protected: Set<Int>) -> [Double] {
        scores.indices.map { protected.contains($0) ? .infinity : scores[$0] }
    }

    /// `allowingAll`: a layer of a global plan may keep every expert.
    static func checkKeep(_ keep: Int, shape: MoEShape, model: ModelDescription, allowingAll: Bool = false) throws {
        guard keep < shape.expertCount || (allowingAll && keep == shape.expertCount) else {
            throw InputError("--keep \(keep): the model has \(shape.expertCount) experts per layer; keep fewer")
        }
        guard keep >= shape.expertsPerToken else {
            throw InputError("--keep \(keep): fewer than the \(shape.expertsPerToken) experts each token is routed to (\(model.spec.keys.expertsPerToken[0]))")
        }
    }

    public func run(_ model: Model) throws -> Model { try apply(model).model }

    /// The output and, with recombination, what was folded where in each layer.
    public func apply(_ model: Model) throws -> (model: Model, recombined: [Int: NeuronRecombination.LayerSummary]) {
        let description = model.description
        let names = description.spec.tensors
        var replaced: Set<String> = []
        var derived: [String: TensorRecipe] = [:]
        for layer in description.sparseLayers {
            guard case .sparse(let shape) = description.feedForward[layer] else { continue }
            guard let kept = plan.kept(inLayer: layer) else { throw InputError("the prune plan has no layer \(layer)") }
            guard !kept.isEmpty, kept == kept.sorted(), Set(kept).count == kept.count, kept.allSatisfy({ (0..<shape.expertCount).contains($0) }) else {
                throw InputError("the prune plan's layer \(layer) lists \(kept), not distinct ascending ids below \(shape.expertCount)")
            }
            try Self.checkKeep(kept.count, shape: shape, model: description, allowingAll: true)
            for expert in 0..<shape.expertCount {
                for template in [names.expertGate, names.expertUp, names.expertDown] {
                    let weight = template.filled(layer: layer, expert: expert)
                    replaced.formUnion([weight, weight.biasName])
                }
            }
            for (newIndex, original) in kept.enumerated() {
                for template in [names.expertGate, names.expertUp, names.expertDown] {
                    for suffix in [false, true] {
                        let from = template.filled(layer: layer, expert: original), to = template.filled(layer: layer, expert: newIndex)
                        let (source, target) = suffix ? (from.biasName, to.biasName) : (from, to)
                        if model.source.contains(source) { derived[target] = .copy(of: source) }
                    }
                }
            }
            let router = names.router.filled(layer: layer)
            let correction = names.routerCorrectionBias.map { [$0.filled(layer: layer)] } ?? []
            for tensor in [router, router.biasName] + correction where model.source.contains(tensor) {
                replaced.insert(tensor)
                derived[tensor] = .rows(of: tensor, kept)
            }
        }
        let unchanged = description.sparseLayers.allSatisfy { layer in
            guard case .sparse(let shape) = description.feedForward[layer] else { return true }
            return plan.kept(inLayer: layer)?.count == shape.expertCount
        }
        guard !unchanged else { throw InputError("the prune plan keeps every expert of every layer") }
        let recombiner = try recombination.map { try NeuronRecombination(model: model, plan: plan, usage: $0.usage, threshold: $0.threshold) }
        if let recombiner {
            for layer in plan.layers {
                let receiving = recombiner.receivingExperts(inLayer: layer.layer)
                for (newIndex, original) in layer.kept.enumerated() where receiving.contains(original) {
                    for (projection, template) in [names.expertGate, names.expertUp, names.expertDown].enumerated() {
                        let target = template.filled(layer: layer.layer, expert: newIndex)
                        guard let stored = model.source.descriptor(template.filled(layer: layer.layer, expert: original)) else { continue }
                        recombiner.register(target, layer: layer.layer, expert: original, projection: projection)
                        derived[target] = .produced(by: recombiner, dtype: stored.dtype, shape: stored.shape)
                    }
                }
            }
        }
        // Tensors keep the base's order, with each layer's experts in their new numbering.
        var recipes: [(name: String, recipe: TensorRecipe)] = []
        for name in model.source.tensorNames where !replaced.contains(name) { recipes.append((name, .copy(of: name))) }
        for (name, recipe) in derived { recipes.append((name, recipe)) }
        recipes.sort { Checkpoint.naturalOrder($0.name, $1.name) }
        let source = try DerivedTensorSource(base: model.source, recipes: recipes)
        let counts = description.feedForward.indices.map { layer -> Int in
            guard case .sparse = description.feedForward[layer] else { return 0 }
            return plan.kept(inLayer: layer)?.count ?? 0
        }
        let (config, files) = try PerLayerExperts.describe(counts: counts, in: model.config, description: description)
        let output = try Model(config: config, source: source, origin: model.origin, files: model.files.merging(files) { $1 },
                               tokenizerJSON: model.tokenizerJSON)
        return (output, recombiner?.summaries ?? [:])
    }
}
