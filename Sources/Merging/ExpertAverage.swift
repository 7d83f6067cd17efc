import Checkpoint
import Models
import Synchronization

/// Merged experts' weights as the usage-weighted average of their members' (HC-SMoE's and
/// M-SMoE's `frequency`-weighted merge): W = Σ f_j W_j / Σ f_j, accumulated in Double in member
/// order with one division at the end (the reference's order, so float32 results agree to the
/// bit), read member by member, so memory holds one projection of one expert at a time. A member
/// may carry a neuron order (aligned fusing): its rows (gate, up) or columns (down) are taken
/// in that order.
final class ExpertAverage: TensorProducer, @unchecked Sendable {
    struct Member {
        let tensor: String
        let weight: Double
        /// New neuron a is stored neuron `neuronOrder[a]`; nil keeps the stored order.
        var neuronOrder: [Int]? = nil
        /// Whether neurons are the matrix's columns (down) rather than its rows (gate, up).
        var neuronsAreColumns = false
    }
    private let source: TensorSource
    private let recipes: Mutex<[String: [Member]]>

    init(source: TensorSource) {
        self.source = source
        recipes = Mutex([:])
    }

    /// `name` will be the average of `members` (equal shapes, checked when read).
    func define(_ name: String, members: [Member]) { recipes.withLock { $0[name] = members } }

    func produce(_ name: String, into destination: UnsafeMutablePointer<Float>) throws {
        guard let defined = recipes.withLock({ $0[name] }), let first = defined.first,
              let shape = source.descriptor(first.tensor)?.shape, shape.count == 2 else {
            throw CheckpointError(file: name, "not a merged tensor")
        }
        let (rows, columns) = (shape[0], shape[1]), count = rows * columns
        var sums = [Double](repeating: 0, count: count)
        var total: Double = 0
        // A cluster no calibration token reached is merged with equal weights.
        let members = defined.allSatisfy({ $0.weight == 0 }) ? defined.map { Member(tensor: $0.tensor, weight: 1, neuronOrder: $0.neuronOrder, neuronsAreColumns: $0.neuronsAreColumns) } : defined
        for member in members {
            guard source.descriptor(member.tensor)?.shape == shape else {
                throw CheckpointError(file: member.tensor, "has another shape than \(first.tensor), which it is merged with")
            }
            let values = try source.float32(member.tensor).scalars
            if let order = member.neuronOrder {
                guard order.count == (member.neuronsAreColumns ? columns : rows) else {
                    throw CheckpointError(file: member.tensor, "neuron order of \(order.count) for a \(rows) x \(columns) matrix")
                }
                for r in 0..<rows {
                    for c in 0..<columns {
                        let stored = member.neuronsAreColumns ? r * columns + order[c] : order[r] * columns + c
                        sums[r * columns + c] += member.weight * Double(values[stored])
                    }
                }
            } else {
                for index in 0..<count { sums[index] += member.weight * Double(values[index]) }
            }
            total += member.weight
        }
        for index in 0..<count { destination[index] = Float(sums[index] / total) }
    }
}
