import Architectures
import Checkpoint
import Models

/// Reduces every sparse layer to the plan's clusters, one merged expert each: a truly smaller
/// checkpoint of the same architecture (the reference implementations keep N router rows and
/// tie copies of the merged weights instead, so their output is no smaller). A singleton
/// cluster's expert is copied as stored; a larger one is fused by `fusing`, and its router row
/// (with the router bias and selection-only correction bias, where the family has them) made by
/// `router`: the most used member's, the usage-weighted mean, or `fitted` (RouterFit, computed on
/// calibration inputs before the stage is built; a correction bias is averaged then).
public struct MergeStage: Stage {
    public let name = "merge"
    public let plan: MergePlan
    public let fusing: FuseMethod
    public let router: RouterMethod
    /// With `router == .fit`: each sparse layer's fitted rows.
    public let fitted: [Int: RouterFit]

    public init(plan: MergePlan, fusing: FuseMethod = .average, router: RouterMethod = .dominant, fitted: [Int: RouterFit] = [:]) {
        self.plan = plan
        self.fusing = fusing
        self.router = router
        self.fitted = fitted
    }

    /// The merged model and, for subspace fusing, what each merge kept (filled in as tensors are read).
    public struct Outcome {
        public let model: Model
        fileprivate let subspace: SubspaceFusion?
        fileprivate let subspaceTensors: [String: (layer: Int, cluster: Int, projection: String)]

        /// Per layer and merged expert, per projection (gate, up, down), the rank and energy kept
        /// by the merges computed so far (all of them once the model has been written).
        public var subspaceSummaries: [Int: [Int: [String: SubspaceSummary]]] {
            var out: [Int: [Int: [String: SubspaceSummary]]] = [:]
            for (tensor, summary) in subspace?.summaries ?? [:] {
                guard let place = subspaceTensors[tensor] else { continue }
                out[place.layer, default: [:]][place.cluster, default: [:]][place.projection] = summary
            }
            return out
        }
    }

    public func run(_ model: Model) throws -> Model { try apply(model).model }

    public func apply(_ model: Model) throws -> Outcome {
        let description = model.description, names = description.spec.tensors
        let average = ExpertAverage(source: model.source)
        let subspace: SubspaceFusion? = if case .subspace(let choice) = fusing { SubspaceFusion(source: model.source, keeping: choice) } else { nil }
        let routers = PrecomputedTensors()
        var subspaceTensors: [String: (layer: Int, cluster: Int, projection: String)] = [:]
        var replaced: Set<String> = []
        var derived: [String: TensorRecipe] = [:]
        var counts: Set<Int> = []
        let projections = [("gate", names.expertGate), ("up", names.expertUp), ("down", names.expertDown)]
        for layer in description.sparseLayers {
            guard case .sparse(let shape) = description.feedForward[layer] else { continue }
            guard let planned = plan.layer(layer) else { throw MergingError("the merge plan has no layer \(layer)") }
            try Self.check(planned, shape: shape)
            counts.insert(planned.clusters.count)
            for expert in 0..<shape.expertCount {
                for (_, template) in projections {
                    let weight = template.filled(layer: layer, expert: expert)
                    guard !model.source.contains(weight.biasName) else {
                        throw MergingError("'\(weight.biasName)': merging experts with biases is not supported")
                    }
                    replaced.insert(weight)
                }
            }
            for (index, members) in planned.clusters.enumerated() {
                let orders = fusing == .aligned && members.count > 1
                    ? try alignmentOrders(members: members, reference: planned.dominant[index], layer: layer, model: model) : [:]
                let weights = planned.weights(of: index)
                for (projection, template) in projections {
                    let target = template.filled(layer: layer, expert: index)
                    let first = template.filled(layer: layer, expert: members[0])
                    guard let stored = model.source.descriptor(first) else { throw MergingError("tensor '\(first)' not found") }
                    let produced = TensorRecipe.produced(by: subspace ?? average, dtype: stored.dtype, shape: stored.shape)
                    if members.count == 1 {
                        derived[target] = .copy(of: first)
                    } else if let subspace {
                        subspace.define(target, members: members.map { template.filled(layer: layer, expert: $0) }, weights: weights)
                        subspaceTensors[target] = (layer, index, projection)
                        derived[target] = produced
                    } else {
                        average.define(target, members: members.map { expert in
                            ExpertAverage.Member(tensor: template.filled(layer: layer, expert: expert), weight: max(planned.usage[expert], 0),
                                                 neuronOrder: orders[expert], neuronsAreColumns: projection == "down")
                        })
                        derived[target] = produced
                    }
                }
            }
            let routerName = names.router.filled(layer: layer)
            let correction = names.routerCorrectionBias.map { [$0.filled(layer: layer)] } ?? []
            for tensor in [routerName, routerName.biasName] + correction where model.source.contains(tensor) {
                guard let stored = model.source.descriptor(tensor) else { continue }
                replaced.insert(tensor)
                let isCorrection = correction.contains(tensor)
                switch router {
                case .dominant:
                    derived[tensor] = .rows(of: tensor, planned.dominant)
                case .average, .fit:
                    var values = try averagedRows(of: tensor, plan: planned, source: model.source)
                    if router == .fit, !isCorrection {
                        guard let fit = fitted[layer] else { throw MergingError("router fit: no fitted rows for layer \(layer)") }
                        if tensor == routerName {
                            values = fit.rows.map(Float.init)
                        } else if let bias = fit.bias {
                            values = bias.map(Float.init)
                        }
                    }
                    var shape = stored.shape
                    shape[0] = planned.clusters.count
                    guard values.count == shape.reduce(1, *) else { throw MergingError("router rows for '\(tensor)' have \(values.count) values, not \(shape)") }
                    routers.define(tensor, values: values)
                    derived[tensor] = .produced(by: routers, dtype: stored.dtype, shape: shape)
                }
            }
        }
        guard counts.count == 1, let experts = counts.first else {
            throw MergingError("the merge plan gives different expert counts per layer (\(counts.sorted())); every layer must merge to the same count")
        }
        var recipes: [(name: String, recipe: TensorRecipe)] = model.source.tensorNames.filter { !replaced.contains($0) }.map { ($0, .copy(of: $0)) }
        recipes += derived.map { ($0.key, $0.value) }
        recipes.sort { Checkpoint.naturalOrder($0.name, $1.name) }
        var config = model.config
        let keys = description.spec.keys.expertCount.filter { model.config.json[$0] != nil }
        for key in keys.isEmpty ? [description.spec.keys.expertCount[0]] : keys { config = config.setting(key, to: .int(experts)) }
        let output = try Model(config: config, source: DerivedTensorSource(base: model.source, recipes: recipes), origin: model.origin,
                               files: model.files, tokenizerJSON: model.tokenizerJSON)
        return Outcome(model: output, subspace: subspace, subspaceTensors: subspaceTensors)
    }

    /// Per non-reference member, the order that aligns its neurons to the reference member's.
    private func alignmentOrders(members: [Int], reference: Int, layer: Int, model: Model) throws -> [Int: [Int]] {
        let matrices = try expertMatrices(layer: layer, expert: reference, model: model)
        var orders: [Int: [Int]] = [:]
        for member in members where member != reference {
            orders[member] = try neuronAlignment(reference: matrices, member: expertMatrices(layer: layer, expert: member, model: model))
        }
        return orders
    }

    /// Clusters must partition the layer's experts, each non-empty and ascending, at least top-k of them.
    static func check(_ layer: MergePlan.Layer, shape: MoEShape) throws {
        let all = layer.clusters.flatMap { $0 }
        guard layer.usage.count == shape.expertCount, layer.usage.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
            throw MergingError("layer \(layer.layer): usage must give a non-negative count for each of the \(shape.expertCount) experts")
        }
        guard layer.clusters.allSatisfy({ !$0.isEmpty && $0 == $0.sorted() }), all.sorted() == Array(0..<shape.expertCount) else {
            throw MergingError("layer \(layer.layer): the clusters \(layer.clusters) do not partition experts 0..<\(shape.expertCount)")
        }
        guard layer.clusters.count >= shape.expertsPerToken, layer.clusters.count < shape.expertCount else {
            throw MergingError("layer \(layer.layer): \(layer.clusters.count) merged experts; need at least the \(shape.expertsPerToken) each token is routed to and fewer than \(shape.expertCount)")
        }
    }
}

/// One expert's gate, up and down in float32.
func expertMatrices(layer: Int, expert: Int, model: Model) throws -> ExpertMatrices {
    let names = model.description.spec.tensors
    let gate = try model.source.float32(names.expertGate.filled(layer: layer, expert: expert))
    let up = try model.source.float32(names.expertUp.filled(layer: layer, expert: expert))
    let down = try model.source.float32(names.expertDown.filled(layer: layer, expert: expert))
    return try ExpertMatrices(width: gate.shape[0], hidden: gate.columns, gate: gate.scalars, up: up.scalars, down: down.scalars)
}

/// The usage-weighted mean of each cluster's rows of `tensor` (a router weight or bias), as the
/// merged tensor's rows in cluster order.
func averagedRows(of tensor: String, plan: MergePlan.Layer, source: TensorSource) throws -> [Float] {
    let values = try source.float32(tensor).scalars
    let width = values.count / max(plan.usage.count, 1)
    guard width * plan.usage.count == values.count else { throw MergingError("'\(tensor)' does not have one row per expert") }
    var out: [Float] = []
    for (index, members) in plan.clusters.enumerated() {
        let weights = plan.weights(of: index)
        for column in 0..<width {
            var sum = 0.0
            for (member, weight) in zip(members, weights) { sum += weight * Double(values[member * width + column]) }
            out.append(Float(sum))
        }
    }
    return out
}
