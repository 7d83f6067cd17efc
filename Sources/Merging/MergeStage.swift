import Architectures
import Checkpoint
import Models

/// Reduces every sparse layer to the plan's clusters, one merged expert each: a truly smaller
/// checkpoint of the same architecture (the reference implementations keep N router rows and
/// tie copies of the merged weights instead, so their output is no smaller). Fusing is the
/// usage-weighted average; the merged expert's router row is its most used member's (M-SMoE's
/// `dominant` rule); a singleton cluster's expert is copied as stored.
public struct MergeStage: Stage {
    public let name = "merge"
    public let plan: MergePlan

    public init(plan: MergePlan) { self.plan = plan }

    public func run(_ model: Model) throws -> Model {
        let description = model.description, names = description.spec.tensors
        let average = ExpertAverage(source: model.source)
        var replaced: Set<String> = []
        var derived: [String: TensorRecipe] = [:]
        var counts: Set<Int> = []
        for layer in description.sparseLayers {
            guard case .sparse(let shape) = description.feedForward[layer] else { continue }
            guard let planned = plan.layer(layer) else { throw MergingError("the merge plan has no layer \(layer)") }
            try Self.check(planned, shape: shape)
            counts.insert(planned.clusters.count)
            for expert in 0..<shape.expertCount {
                for template in [names.expertGate, names.expertUp, names.expertDown] {
                    let weight = template.filled(layer: layer, expert: expert)
                    replaced.formUnion([weight, weight.biasName])
                }
            }
            for (index, members) in planned.clusters.enumerated() {
                for template in [names.expertGate, names.expertUp, names.expertDown] {
                    let target = template.filled(layer: layer, expert: index)
                    let first = template.filled(layer: layer, expert: members[0])
                    guard let stored = model.source.descriptor(first) else { throw MergingError("tensor '\(first)' not found") }
                    if members.count == 1 {
                        derived[target] = .copy(of: first)
                    } else {
                        average.define(target, members: members.map {
                            ExpertAverage.Member(tensor: template.filled(layer: layer, expert: $0), weight: max(planned.usage[$0], 0))
                        })
                        derived[target] = .produced(by: average, dtype: stored.dtype, shape: stored.shape)
                    }
                }
            }
            let router = names.router.filled(layer: layer)
            let correction = names.routerCorrectionBias.map { [$0.filled(layer: layer)] } ?? []
            for tensor in [router, router.biasName] + correction where model.source.contains(tensor) {
                replaced.insert(tensor)
                derived[tensor] = .rows(of: tensor, planned.dominant)
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
        return try Model(config: config, source: DerivedTensorSource(base: model.source, recipes: recipes), origin: model.origin)
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
