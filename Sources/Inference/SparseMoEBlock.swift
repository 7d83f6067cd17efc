import Architectures
import Checkpoint
import Tensors

/// A sparse MoE block: router, routed experts (loaded one at a time, just before use, so memory
/// holds one expert rather than the layer) and the optional shared expert.
struct SparseMoEBlock {
    let layer: Int
    let model: ModelDescription
    let shape: MoEShape
    let router: LinearWeights
    let sharedExpert: GatedMLP?
    let sharedExpertRouter: LinearWeights?

    init(layer: Int, shape: MoEShape, model: ModelDescription, source: TensorSource) throws {
        let names = model.spec.tensors
        self.layer = layer
        self.model = model
        self.shape = shape
        router = try LinearWeights(names.router.filled(layer: layer), from: source)
        if shape.sharedExpertWidth != nil, let gate = names.sharedExpertGate, let up = names.sharedExpertUp, let down = names.sharedExpertDown {
            sharedExpert = try GatedMLP(gate: gate.filled(layer: layer), up: up.filled(layer: layer), down: down.filled(layer: layer), from: source)
            sharedExpertRouter = try names.sharedExpertRouter.map { try LinearWeights($0.filled(layer: layer), from: source) }
        } else {
            sharedExpert = nil
            sharedExpertRouter = nil
        }
    }

    /// Adds the block's output for `normed` (post-attention-normalised states) to `residual`.
    func apply(normed: FloatBuffer, tokens: Int, residual: FloatBuffer, source: TensorSource,
               observer: ForwardObserver?, timings: ForwardTimings) throws {
        let hidden = model.hiddenSize
        let experts = shape.expertCount, k = shape.expertsPerToken
        let logits = FloatBuffer(count: tokens * experts)
        router.apply(normed.pointer, tokens: tokens, into: logits.pointer)

        let probabilities = FloatBuffer(count: tokens * experts)
        var selected = [Int](repeating: 0, count: tokens * k)
        var weights = [Float](repeating: 0, count: tokens * k)
        var routedTokens = [[Int]](repeating: [], count: experts)
        var routedWeights = [[Float]](repeating: [], count: experts)
        for token in 0..<tokens {
            let route = routeSoftmaxTopK(logits: logits.pointer + token * experts, expertCount: experts, k: k,
                                         normalize: model.normalizeTopK, probabilities: probabilities.pointer + token * experts)
            for slot in 0..<k {
                selected[token * k + slot] = route.experts[slot]
                weights[token * k + slot] = route.weights[slot]
                routedTokens[route.experts[slot]].append(token)
                routedWeights[route.experts[slot]].append(route.weights[slot])
            }
        }
        observer?.observe(routing: RoutingTrace(layer: layer, tokenCount: tokens, expertCount: experts, expertsPerToken: k,
                                                routerLogits: logits.array, probabilities: probabilities.array,
                                                selectedExperts: selected, selectedWeights: weights))

        let names = model.spec.tensors
        let combined = FloatBuffer(count: tokens * hidden)
        let expertStorage = (0..<3).map { _ in FloatBuffer(uninitializedCount: shape.expertWidth * hidden) }
        let used = (0..<experts).filter { !routedTokens[$0].isEmpty }
        func expertTensors(_ expert: Int) -> [String] {
            [names.expertGate, names.expertUp, names.expertDown].map { $0.filled(layer: layer, expert: expert) }
        }
        if let first = used.first { source.prefetch(expertTensors(first)) }
        for (position, expert) in used.enumerated() {
            let members = routedTokens[expert]
            // Start reading the next expert from disk while this one computes.
            if position + 1 < used.count { source.prefetch(expertTensors(used[position + 1])) }
            let inputs = FloatBuffer(uninitializedCount: members.count * hidden)
            for (row, token) in members.enumerated() {
                (inputs.pointer + row * hidden).update(from: normed.pointer + token * hidden, count: hidden)
            }
            let mlp = try timings.measureWeights {
                let tensors = expertTensors(expert)
                return try GatedMLP(gate: tensors[0], up: tensors[1], down: tensors[2], from: source, storage: expertStorage)
            }
            let outputs = FloatBuffer(uninitializedCount: members.count * hidden)
            timings.measureExpertMatmul(flops: 6 * Double(members.count * hidden * shape.expertWidth)) {
                mlp.apply(inputs.pointer, tokens: members.count, into: outputs.pointer)
            }
            if let observer, observer.wantsExpertActivations {
                observer.observe(expert: ExpertActivations(
                    layer: layer, expert: expert, tokens: members, routingWeights: routedWeights[expert],
                    inputs: UnsafeBufferPointer(start: inputs.pointer, count: inputs.count),
                    outputs: UnsafeBufferPointer(start: outputs.pointer, count: outputs.count)))
            }
            for (row, token) in members.enumerated() {
                let weight = routedWeights[expert][row]
                let target = combined.pointer + token * hidden, source = outputs.pointer + row * hidden
                for index in 0..<hidden { target[index] += weight * source[index] }
            }
        }

        if let sharedExpert {
            let shared = FloatBuffer(count: tokens * hidden)
            sharedExpert.apply(normed.pointer, tokens: tokens, into: shared.pointer)
            let gates = FloatBuffer(count: tokens)
            sharedExpertRouter?.apply(normed.pointer, tokens: tokens, into: gates.pointer)
            for token in 0..<tokens {
                let scale = sharedExpertRouter == nil ? 1 : sigmoid(gates[token])
                let target = combined.pointer + token * hidden, source = shared.pointer + token * hidden
                for index in 0..<hidden { target[index] += scale * source[index] }
            }
        }
        for index in 0..<residual.count { residual[index] += combined[index] }
    }
}
