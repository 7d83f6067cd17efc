import Inference
import Models

/// Every choice a merge makes, with the defaults `moe-compress merge` uses.
public struct MergeRecipe: Sendable {
    /// Merged experts per sparse layer.
    public var experts: Int
    public var similarity: ExpertSimilarity = .routerLogits
    public var clustering: ClusterMethod = .dominant
    public var fusing: FuseMethod = .aligned
    public var router: RouterMethod = .average
    /// Seeds k-means++.
    public var seed: UInt64 = 42
    /// RouterFit's ridge, relative to the mean squared input.
    public var ridge: Double = 1e-3

    public init(experts: Int) { self.experts = experts }
}

/// Turns a recipe and what calibration measured into a merge stage, one layer at a time: the
/// layer's geometry under the similarity, its clusters, and (router `fit`) its fitted rows.
public enum MergePlanner {
    /// `usage`: per sparse layer, each expert's top-k count (the fusing weights and the dominant
    /// rule); `sample`: the calibration inputs, needed by `output` and `router-logits`
    /// similarity and by the router fit. `progress(done, total)` counts layers.
    public static func stage(_ recipe: MergeRecipe, model: Model, usage: [Int: [Double]], sample: LayerInputSample?,
                             precision: ComputePrecision = .float32, progress: ((Int, Int) -> Void)? = nil) throws -> MergeStage {
        let description = model.description
        let sparse = description.sparseLayers
        var layers: [MergePlan.Layer] = []
        var fitted: [Int: RouterFit] = [:]
        for (done, layer) in sparse.enumerated() {
            guard case .sparse(let shape) = description.feedForward[layer] else { continue }
            guard recipe.experts < shape.expertCount else {
                throw MergingError("--experts \(recipe.experts): layer \(layer) has \(shape.expertCount) experts; merging needs fewer")
            }
            guard recipe.experts >= shape.expertsPerToken else {
                throw MergingError("--experts \(recipe.experts): fewer than the \(shape.expertsPerToken) experts each token is routed to (\(description.spec.keys.expertsPerToken[0]))")
            }
            guard let layerUsage = usage[layer], layerUsage.count == shape.expertCount else {
                throw MergingError("layer \(layer): no usage counts for its \(shape.expertCount) experts")
            }
            let inputs = sample?.inputs[layer] ?? []
            if recipe.similarity.needsSample || recipe.router == .fit, inputs.isEmpty {
                throw MergingError("layer \(layer): no calibration inputs were sampled (needed by --similarity \(recipe.similarity.rawValue) and --router fit)")
            }
            let geometry = try recipe.similarity.geometry(layer: layer, model: model, inputs: inputs, precision: precision)
            let clusters = try clusterExperts(geometry, method: recipe.clustering, k: recipe.experts, usage: layerUsage, seed: recipe.seed &+ UInt64(layer))
            let distances = geometry.distances
            let planned = MergePlan.Layer(layer: layer, clusters: clusters, usage: layerUsage,
                                          distances: (0..<geometry.count).map { Array(distances[($0 * geometry.count)..<(($0 + 1) * geometry.count)]) })
            layers.append(planned)
            if recipe.router == .fit {
                fitted[layer] = try fitRouter(layer: layer, plan: planned, model: model, inputs: inputs, ridge: recipe.ridge)
            }
            progress?(done + 1, sparse.count)
        }
        return MergeStage(plan: MergePlan(layers: layers), fusing: recipe.fusing, router: recipe.router, fitted: fitted)
    }

    /// The layer's fitted router rows, starting from the usage-weighted mean rows.
    static func fitRouter(layer: Int, plan: MergePlan.Layer, model: Model, inputs: [Float], ridge: Double) throws -> RouterFit {
        let name = model.description.spec.tensors.router.filled(layer: layer)
        let hidden = model.description.hiddenSize
        let weights = try model.source.float32(name).scalars
        let hasBias = model.source.contains(name.biasName)
        let bias = hasBias ? try model.source.float32(name.biasName).scalars : nil
        let initialBias = hasBias ? try averagedRows(of: name.biasName, plan: plan, source: model.source).map(Double.init) : nil
        return try RouterFit(inputs: inputs, tokens: inputs.count / hidden, hidden: hidden, weights: weights, bias: bias, clusters: plan.clusters,
                             initial: try averagedRows(of: name, plan: plan, source: model.source).map(Double.init), initialBias: initialBias, ridge: ridge)
    }
}
