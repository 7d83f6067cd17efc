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
    let precision: ComputePrecision
    /// Experts whose logits are set to −∞ before routing.
    let maskedExperts: Set<Int>

    /// The routers stay Float32 whatever `precision` the experts compute in: expert choice is
    /// discrete, and a router is a tiny share of the work.
    init(layer: Int, shape: MoEShape, model: ModelDescription, source: TensorSource, precision: ComputePrecision,
         maskedExperts: Set<Int> = []) throws {
        self.maskedExperts = maskedExperts
        let names = model.spec.tensors
        self.layer = layer
        self.model = model
        self.shape = shape
        self.precision = precision
        router = try LinearWeights(names.router.filled(layer: layer), from: source)
        if shape.sharedExpertWidth != nil, let gate = names.sharedExpertGate, let up = names.sharedExpertUp, let down = names.sharedExpertDown {
            sharedExpert = try GatedMLP(gate: gate.filled(layer: layer), up: up.filled(layer: layer), down: down.filled(layer: layer),
                                       from: source, precision: precision)
            sharedExpertRouter = try names.sharedExpertRouter.map { try LinearWeights($0.filled(layer: layer), from: source) }
        } else {
            sharedExpert = nil
            sharedExpertRouter = nil
        }
    }

    /// Adds the block's output for `normed` (post-attention-normalised states) to `residual`.
    func apply(normed: FloatBuffer, tokens: Int, residual: FloatBuffer, source: TensorSource,
               observer: ForwardObserver?, timings: ForwardTimings) throws {
        let routing = try route(normed, tokens: tokens)
        observer?.observe(routing: routing.trace)
        let combined = FloatBuffer(count: tokens * model.hiddenSize)
        try addRoutedExperts(routing, normed: normed, into: combined, source: source, observer: observer, timings: timings)
        if let observer, observer.wantsExpertActivations || observer.wantsBlockActivations {
            observer.observe(block: MoEBlockActivations(
                layer: layer, input: UnsafeBufferPointer(start: normed.pointer, count: normed.count), residual: UnsafeBufferPointer(start: residual.pointer, count: residual.count),
                routedOutput: UnsafeBufferPointer(start: combined.pointer, count: combined.count)))
        }
        try addSharedExpert(normed: normed, tokens: tokens, into: combined, observer: observer)
        for index in 0..<residual.count { residual[index] += combined[index] }
    }

    /// Every token's experts and weights, and each expert's tokens.
    private struct Routing {
        let trace: RoutingTrace
        var tokensOfExpert: [[Int]]
        var weightsOfExpert: [[Float]]
    }

    private func route(_ normed: FloatBuffer, tokens: Int) throws -> Routing {
        let experts = shape.expertCount, k = shape.expertsPerToken
        let logits = FloatBuffer(count: tokens * experts)
        try router.apply(normed.pointer, tokens: tokens, into: logits.pointer)
        for token in 0..<tokens {
            for expert in maskedExperts where expert < experts { logits[token * experts + expert] = -.infinity }
        }
        let probabilities = FloatBuffer(count: tokens * experts)
        var selected = [Int](repeating: 0, count: tokens * k)
        var weights = [Float](repeating: 0, count: tokens * k)
        var tokensOfExpert = [[Int]](repeating: [], count: experts)
        var weightsOfExpert = [[Float]](repeating: [], count: experts)
        for token in 0..<tokens {
            let route = routeSoftmaxTopK(logits: logits.pointer + token * experts, expertCount: experts, k: k,
                                         normalize: model.normalizeTopK, probabilities: probabilities.pointer + token * experts)
            for slot in 0..<k {
                selected[token * k + slot] = route.experts[slot]
                weights[token * k + slot] = route.weights[slot]
                tokensOfExpert[route.experts[slot]].append(token)
                weightsOfExpert[route.experts[slot]].append(route.weights[slot])
            }
        }
        let trace = RoutingTrace(layer: layer, tokenCount: tokens, expertCount: experts, expertsPerToken: k,
                                 routerLogits: logits.array, probabilities: probabilities.array,
                                 selectedExperts: selected, selectedWeights: weights)
        return Routing(trace: trace, tokensOfExpert: tokensOfExpert, weightsOfExpert: weightsOfExpert)
    }

    /// Runs each chosen expert on its tokens (gathered into one matrix, so one sgemm per
    /// projection) and adds the weighted outputs into `combined`. The two weight buffers are
    /// shared by all experts of the layer, and the next expert's bytes are prefetched.
    private func addRoutedExperts(_ routing: Routing, normed: FloatBuffer, into combined: FloatBuffer, source: TensorSource,
                                  observer: ForwardObserver?, timings: ForwardTimings) throws {
        let hidden = model.hiddenSize
        let names = model.spec.tensors
        let buffers = [WeightBuffer(), WeightBuffer()]
        let used = routing.tokensOfExpert.indices.filter { !routing.tokensOfExpert[$0].isEmpty }
        func tensorNames(_ expert: Int) -> [String] {
            [names.expertGate, names.expertUp, names.expertDown].map { $0.filled(layer: layer, expert: expert) }
        }
        if let first = used.first { source.prefetch(tensorNames(first)) }
        for (position, expert) in used.enumerated() {
            if position + 1 < used.count { source.prefetch(tensorNames(used[position + 1])) }
            let members = routing.tokensOfExpert[expert], weights = routing.weightsOfExpert[expert]
            let inputs = FloatBuffer(uninitializedCount: members.count * hidden)
            for (row, token) in members.enumerated() {
                (inputs.pointer + row * hidden).update(from: normed.pointer + token * hidden, count: hidden)
            }
            let mlp = try timings.measureWeights {
                let tensors = tensorNames(expert)
                return try GatedMLP(gate: tensors[0], up: tensors[1], down: tensors[2], from: source, precision: precision,
                                    buffers: buffers, inPlace: true)
            }
            let outputs = FloatBuffer(uninitializedCount: members.count * hidden)
            try timings.measureExpertMatmul(flops: 6 * Double(members.count * hidden * shape.expertWidth)) {
                try mlp.apply(inputs.pointer, tokens: members.count, into: outputs.pointer, observer: observer)
            }
            source.release(tensorNames(expert))  // the weights may have been used in place
            if let observer, observer.wantsExpertActivations {
                observer.observe(expert: ExpertActivations(
                    layer: layer, expert: expert, tokens: members, routingWeights: weights,
                    inputs: UnsafeBufferPointer(start: inputs.pointer, count: inputs.count),
                    outputs: UnsafeBufferPointer(start: outputs.pointer, count: outputs.count)))
            }
            for (row, token) in members.enumerated() {
                addScaled(outputs.pointer + row * hidden, weights[row], into: combined.pointer + token * hidden, count: hidden)
            }
        }
    }

    /// The always-on shared expert, scaled per token by its sigmoid gate where the family has one.
    private func addSharedExpert(normed: FloatBuffer, tokens: Int, into combined: FloatBuffer, observer: ForwardObserver?) throws {
        guard let sharedExpert else { return }
        let hidden = model.hiddenSize
        let shared = FloatBuffer(uninitializedCount: tokens * hidden)
        try sharedExpert.apply(normed.pointer, tokens: tokens, into: shared.pointer, observer: observer)
        let gates = FloatBuffer(count: tokens)
        try sharedExpertRouter?.apply(normed.pointer, tokens: tokens, into: gates.pointer)
        for token in 0..<tokens {
            let scale = sharedExpertRouter == nil ? 1 : sigmoid(gates[token])
            addScaled(shared.pointer + token * hidden, scale, into: combined.pointer + token * hidden, count: hidden)
        }
    }
}

/// `target += scale * values`.
private func addScaled(_ values: UnsafePointer<Float>, _ scale: Float, into target: UnsafeMutablePointer<Float>, count: Int) {
    for index in 0..<count { target[index] += scale * values[index] }
}
