import Architectures
import Checkpoint
import Foundation
import Inference
import Models
import Synchronization
import Tensors

/// DERN's recombination (Zhou et al., Findings of EMNLP 2025, arXiv 2509.10377): the experts a
/// prune drops are split into neuron segments (one intermediate neuron: a row of gate, a row of
/// up, a column of down), each segment is assigned to the kept neuron it is most similar to
/// (cosine of the concatenated gate and up rows, over every neuron of every kept expert of the
/// layer), and folded into it, so every kept expert keeps its width. A segment whose best
/// similarity is below `threshold` is dropped with its expert. A kept neuron and the segments
/// folded into it are averaged with the routing counts of their experts as weights, the
/// usage-weighted average HC-SMoE and M-SMoE apply to whole experts (the paper's exact merge
/// weights were not available; see docs/pruning.md).
public final class NeuronRecombination: TensorProducer, @unchecked Sendable {
    /// Where one dropped neuron goes.
    struct Segment {
        let expert: Int, neuron: Int
        let target: (expert: Int, neuron: Int)
    }

    public struct LayerSummary: Sendable, Codable, Equatable {
        /// Neurons of dropped experts folded into kept ones, and those below the threshold.
        public let folded: Int
        public let discarded: Int
        /// Folded segments per kept expert (original ids, in kept order).
        public let foldedPerKeptExpert: [Int]
        public let threshold: Double
    }

    let model: Model
    let threshold: Double
    let segments: [Int: [Segment]]
    private let usage: [Int: [Double]]
    /// Output tensor name → (layer, kept original expert, projection 0 gate / 1 up / 2 down).
    private var outputs: [String: (layer: Int, expert: Int, projection: Int)] = [:]
    private let cache = Mutex<(key: [Int], tensors: [[Float]])?>(nil)
    public private(set) var summaries: [Int: LayerSummary] = [:]

    /// Assigns every neuron of the plan's dropped experts, layer by layer (one layer's experts in
    /// memory at a time); `usage` holds each layer's routing counts.
    init(model: Model, plan: PrunePlan, usage: [Int: [Double]], threshold: Double) throws {
        self.model = model
        self.threshold = threshold
        self.usage = usage
        var segments: [Int: [Segment]] = [:]
        for layer in plan.layers {
            guard case .sparse(let shape) = model.description.feedForward[layer.layer] else { continue }
            let dropped = (0..<shape.expertCount).filter { !layer.kept.contains($0) }
            let assigned = try Self.assign(layer: layer.layer, kept: layer.kept, dropped: dropped, width: shape.expertWidth,
                                           model: model, threshold: threshold)
            segments[layer.layer] = assigned
            let counts = layer.kept.map { expert in assigned.filter { $0.target.expert == expert }.count }
            summaries[layer.layer] = LayerSummary(folded: assigned.count, discarded: dropped.count * shape.expertWidth - assigned.count,
                                                  foldedPerKeptExpert: counts, threshold: threshold)
        }
        self.segments = segments
    }

    /// The experts that receive segments, whose tensors this producer computes.
    func receivingExperts(inLayer layer: Int) -> Set<Int> { Set((segments[layer] ?? []).map(\.target.expert)) }

    /// Registers the output name of a kept expert's projection.
    func register(_ name: String, layer: Int, expert: Int, projection: Int) { outputs[name] = (layer, expert, projection) }

    public func produce(_ name: String, into destination: UnsafeMutablePointer<Float>) throws {
        guard let (layer, expert, projection) = outputs[name] else { throw CheckpointError(file: name, "not a recombined tensor") }
        let tensors = try cache.withLock { cached -> [[Float]] in
            if let cached, cached.key == [layer, expert] { return cached.tensors }
            let made = try merged(layer: layer, expert: expert)
            cached = ([layer, expert], made)
            return made
        }
        tensors[projection].withUnsafeBufferPointer { destination.update(from: $0.baseAddress!, count: $0.count) }
    }

    /// The kept expert's gate, up and down with its segments folded in.
    private func merged(layer: Int, expert: Int) throws -> [[Float]] {
        let names = model.description.spec.tensors, hidden = model.description.hiddenSize
        func weights(_ expert: Int) throws -> [[Float]] {
            try [names.expertGate, names.expertUp, names.expertDown].map { try model.source.float32($0.filled(layer: layer, expert: expert)).scalars }
        }
        var result = try weights(expert)
        let width = result[0].count / hidden
        let counts = usage[layer] ?? []
        let own = max(counts.indices.contains(expert) ? counts[expert] : 0, 1e-9)
        var totals = [Double](repeating: own, count: width)
        var sums = result.map { $0.map { Double($0) * own } }
        let incoming = (segments[layer] ?? []).filter { $0.target.expert == expert }
        for source in Set(incoming.map(\.expert)).sorted() {
            let theirs = try weights(source)
            let weight = max(counts.indices.contains(source) ? counts[source] : 0, 1e-9)
            for segment in incoming where segment.expert == source {
                let (from, to) = (segment.neuron, segment.target.neuron)
                totals[to] += weight
                for column in 0..<hidden {
                    sums[0][to * hidden + column] += weight * Double(theirs[0][from * hidden + column])
                    sums[1][to * hidden + column] += weight * Double(theirs[1][from * hidden + column])
                }
                for row in 0..<hidden { sums[2][row * width + to] += weight * Double(theirs[2][row * width + from]) }
            }
        }
        for neuron in 0..<width where totals[neuron] != own {
            for column in 0..<hidden {
                result[0][neuron * hidden + column] = Float(sums[0][neuron * hidden + column] / totals[neuron])
                result[1][neuron * hidden + column] = Float(sums[1][neuron * hidden + column] / totals[neuron])
            }
            for row in 0..<hidden { result[2][row * width + neuron] = Float(sums[2][row * width + neuron] / totals[neuron]) }
        }
        return result
    }

    /// Every dropped neuron's most similar kept neuron (cosine of [gate row, up row]), through one
    /// GEMM per dropped expert against all kept neurons of the layer.
    static func assign(layer: Int, kept: [Int], dropped: [Int], width: Int, model: Model, threshold: Double) throws -> [Segment] {
        guard !dropped.isEmpty else { return [] }
        let hidden = model.description.hiddenSize, names = model.description.spec.tensors
        func normalisedRows(_ expert: Int) throws -> [Float] {
            let gate = try model.source.float32(names.expertGate.filled(layer: layer, expert: expert)).scalars
            let up = try model.source.float32(names.expertUp.filled(layer: layer, expert: expert)).scalars
            var rows = [Float](repeating: 0, count: width * 2 * hidden)
            for neuron in 0..<width {
                var norm: Double = 0
                for column in 0..<hidden {
                    let g = gate[neuron * hidden + column], u = up[neuron * hidden + column]
                    rows[neuron * 2 * hidden + column] = g
                    rows[neuron * 2 * hidden + hidden + column] = u
                    norm += Double(g) * Double(g) + Double(u) * Double(u)
                }
                let scale = norm > 0 ? Float(1 / norm.squareRoot()) : 0
                for index in (neuron * 2 * hidden)..<((neuron + 1) * 2 * hidden) { rows[index] *= scale }
            }
            return rows
        }
        let keptRows = try kept.flatMap(normalisedRows)
        var segments: [Segment] = []
        var similarities = [Float](repeating: 0, count: width * kept.count * width)
        for expert in dropped {
            let rows = try normalisedRows(expert)
            try rows.withUnsafeBufferPointer { a in
                try keptRows.withUnsafeBufferPointer { b in
                    try similarities.withUnsafeMutableBufferPointer { c in
                        try gemm(m: width, n: kept.count * width, k: 2 * hidden, a: a.baseAddress!, lda: 2 * hidden,
                                 b: b.baseAddress!, ldb: 2 * hidden, transposeB: true, c: c.baseAddress!, ldc: kept.count * width)
                    }
                }
            }
            for neuron in 0..<width {
                let row = neuron * kept.count * width
                var best = 0
                for candidate in 1..<(kept.count * width) where similarities[row + candidate] > similarities[row + best] { best = candidate }
                guard Double(similarities[row + best]) >= threshold else { continue }
                segments.append(Segment(expert: expert, neuron: neuron, target: (kept[best / width], best % width)))
            }
        }
        return segments
    }
}
