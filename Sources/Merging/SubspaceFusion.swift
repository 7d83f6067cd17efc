import Checkpoint
import Models
import Synchronization

/// Merged experts' weights by Sub-MoE's union decomposition (`subspaceMerge`), one projection of
/// one cluster at a time, computed when the tensor is read: memory holds that cluster's
/// projection in float64 and its SVD. What each merge kept (rank, retained energy) is recorded.
final class SubspaceFusion: TensorProducer, @unchecked Sendable {
    struct Recipe {
        let members: [String]
        let weights: [Double]
    }
    private let source: TensorSource
    private let choice: RankChoice
    private let recipes: Mutex<[String: Recipe]>
    private let kept: Mutex<[String: SubspaceSummary]>

    init(source: TensorSource, keeping choice: RankChoice) {
        self.source = source
        self.choice = choice
        recipes = Mutex([:])
        kept = Mutex([:])
    }

    func define(_ name: String, members: [String], weights: [Double]) { recipes.withLock { $0[name] = Recipe(members: members, weights: weights) } }

    /// By merged tensor name, what its merge kept (tensors not yet read are absent).
    var summaries: [String: SubspaceSummary] { kept.withLock { $0 } }

    func produce(_ name: String, into destination: UnsafeMutablePointer<Float>) throws {
        guard let recipe = recipes.withLock({ $0[name] }), let shape = source.descriptor(recipe.members[0])?.shape, shape.count == 2 else {
            throw CheckpointError(file: name, "not a merged tensor")
        }
        let matrices = try recipe.members.map { member -> [Double] in
            guard source.descriptor(member)?.shape == shape else {
                throw CheckpointError(file: member, "has another shape than \(recipe.members[0]), which it is merged with")
            }
            return try source.float32(member).scalars.map(Double.init)
        }
        let (merged, summary) = try subspaceMerge(matrices, weights: recipe.weights, rows: shape[0], columns: shape[1], keeping: choice)
        for index in merged.indices { destination[index] = Float(merged[index]) }
        kept.withLock { $0[name] = summary }
    }
}

/// Tensors whose values are computed before the stage runs (fitted or averaged router rows:
/// small, clusters x hidden).
final class PrecomputedTensors: TensorProducer, @unchecked Sendable {
    private let values: Mutex<[String: [Float]]>

    init() { values = Mutex([:]) }

    func define(_ name: String, values new: [Float]) { values.withLock { $0[name] = new } }

    func produce(_ name: String, into destination: UnsafeMutablePointer<Float>) throws {
        guard let stored = values.withLock({ $0[name] }) else { throw CheckpointError(file: name, "not a computed tensor") }
        stored.withUnsafeBufferPointer { destination.update(from: $0.baseAddress!, count: stored.count) }
    }
}
