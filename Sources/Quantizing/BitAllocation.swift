/// Chooses one candidate per tensor so the total error is smallest with the total size within a
/// budget: the multiple-choice knapsack, solved exactly by dynamic programming over sizes
/// discretised to `quantum` bytes. Each candidate's size is rounded up to whole quanta, so the
/// chosen mix never exceeds the budget; against the undiscretised optimum it can only leave
/// unspent less than one quantum per tensor (`slackBound`).
public struct BitAllocation: Sendable {
    public let choice: [Int]
    public let bytes: Int
    public let error: Double
    public let quantum: Int
    /// At most this many budget bytes can be left unspent by the discretisation.
    public let slackBound: Int

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case belowSmallest(smallest: Int)
        case aboveLargest(largest: Int)

        public var description: String {
            switch self {
            case .belowSmallest(let smallest): "the budget is below the smallest mix (\(smallest) bytes)"
            case .aboveLargest(let largest): "the budget is above the largest mix (\(largest) bytes)"
            }
        }
    }

    /// - Parameters:
    ///   - candidates: per tensor, (bytes, error) of each choice.
    ///   - budget: bytes the chosen sizes may total.
    ///   - bins: the discretisation: about this many quanta in the budget.
    public static func solve(_ candidates: [[(bytes: Int, error: Double)]], budget: Int, bins: Int = 20_000) throws -> BitAllocation {
        let smallest = candidates.reduce(0) { $0 + ($1.map(\.bytes).min() ?? 0) }
        let largest = candidates.reduce(0) { $0 + ($1.map(\.bytes).max() ?? 0) }
        guard budget >= smallest else { throw Failure.belowSmallest(smallest: smallest) }
        guard budget <= largest else { throw Failure.aboveLargest(largest: largest) }

        // Tensors with one choice are fixed; the rest share what the fixed ones leave.
        let fixedBytes = candidates.filter { $0.count == 1 }.reduce(0) { $0 + $1[0].bytes }
        let free = candidates.indices.filter { candidates[$0].count > 1 }
        let minimumFree = free.reduce(0) { $0 + (candidates[$1].map(\.bytes).min() ?? 0) }
        let spendable = budget - fixedBytes - minimumFree  // above each tensor's smallest choice
        let quantum = max(1, spendable / max(bins, 1))
        let capacity = spendable / quantum

        // Sizes measured above each tensor's smallest choice, in quanta, rounded up.
        var best = [Double](repeating: 0, count: capacity + 1)
        var picks = [[UInt8]]()
        picks.reserveCapacity(free.count)
        for tensor in free {
            let options = candidates[tensor]
            let base = options.map(\.bytes).min() ?? 0
            let weights = options.map { ($0.bytes - base + quantum - 1) / quantum }
            var next = [Double](repeating: .infinity, count: capacity + 1)
            var pick = [UInt8](repeating: 0, count: capacity + 1)
            for c in 0...capacity {
                for (index, option) in options.enumerated() where weights[index] <= c {
                    let value = best[c - weights[index]] + option.error
                    if value < next[c] {
                        next[c] = value
                        pick[c] = UInt8(index)
                    }
                }
            }
            best = next
            picks.append(pick)
        }

        var choice = candidates.map { _ in 0 }
        var remaining = capacity
        for (position, tensor) in free.enumerated().reversed() {
            let index = Int(picks[position][remaining])
            choice[tensor] = index
            let options = candidates[tensor]
            let base = options.map(\.bytes).min() ?? 0
            remaining -= (options[index].bytes - base + quantum - 1) / quantum
        }
        let bytes = candidates.indices.reduce(0) { $0 + candidates[$1][choice[$1]].bytes }
        let error = candidates.indices.reduce(0.0) { $0 + candidates[$1][choice[$1]].error }
        return BitAllocation(choice: choice, bytes: bytes, error: error, quantum: quantum, slackBound: quantum * free.count)
    }
}
