import FixtureSupport
import Foundation
@testable import Quantizing
import Testing

/// The knapsack against exhaustive search: on sizes that are whole quanta the dynamic program is
/// exact, so its error equals the brute-force optimum; on arbitrary sizes it never exceeds the
/// budget and is within the documented slack of the optimum's budget use.
struct BitAllocationTests {
    func bruteForce(_ candidates: [[(bytes: Int, error: Double)]], budget: Int) -> Double {
        var best = Double.infinity
        func visit(_ index: Int, _ bytes: Int, _ error: Double) {
            if bytes > budget { return }
            if index == candidates.count { best = min(best, error); return }
            for option in candidates[index] { visit(index + 1, bytes + option.bytes, error + option.error) }
        }
        visit(0, 0, 0)
        return best
    }

    func randomCandidates(_ generator: inout SeededGenerator, tensors: Int, unit: Int) -> [[(bytes: Int, error: Double)]] {
        (0..<tensors).map { _ in
            let count = Int.random(in: 1...4, using: &generator)
            // Bigger choices have smaller errors, as quantization types do.
            var bytes = Int.random(in: 1...5, using: &generator) * unit, error = Double.random(in: 10...20, using: &generator)
            return (0..<count).map { _ in
                defer { bytes += Int.random(in: 1...6, using: &generator) * unit; error *= Double.random(in: 0.2...0.9, using: &generator) }
                return (bytes, error)
            }
        }
    }

    @Test func exactOnWholeQuanta() throws {
        var generator = SeededGenerator(state: 7)
        for _ in 0..<200 {
            let candidates = randomCandidates(&generator, tensors: Int.random(in: 1...7, using: &generator), unit: 1)
            let smallest = candidates.reduce(0) { $0 + $1.map(\.bytes).min()! }, largest = candidates.reduce(0) { $0 + $1.map(\.bytes).max()! }
            let budget = Int.random(in: smallest...largest, using: &generator)
            let allocation = try BitAllocation.solve(candidates, budget: budget, bins: 1 << 20)
            #expect(allocation.quantum == 1 && allocation.bytes <= budget)
            let optimum = bruteForce(candidates, budget: budget)
            #expect(abs(allocation.error - optimum) <= 1e-9 * optimum, "\(allocation.error) vs \(optimum)")
        }
    }

    @Test func coarseBinsStayWithinBudget() throws {
        var generator = SeededGenerator(state: 11)
        for _ in 0..<100 {
            let candidates = randomCandidates(&generator, tensors: 6, unit: 997)
            let smallest = candidates.reduce(0) { $0 + $1.map(\.bytes).min()! }, largest = candidates.reduce(0) { $0 + $1.map(\.bytes).max()! }
            let budget = Int.random(in: smallest...largest, using: &generator)
            let allocation = try BitAllocation.solve(candidates, budget: budget, bins: 50)
            #expect(allocation.bytes <= budget)
            // Never worse than the optimum of the budget less the discretisation slack.
            let tighter = bruteForce(candidates, budget: budget - allocation.slackBound)
            #expect(allocation.error <= tighter + 1e-9 * tighter || tighter == .infinity)
        }
    }

    @Test func budgetsOutsideTheCandidatesAreRefused() {
        let candidates: [[(bytes: Int, error: Double)]] = [[(10, 3), (20, 1)], [(5, 0)]]
        #expect(throws: BitAllocation.Failure.belowSmallest(smallest: 15)) { try BitAllocation.solve(candidates, budget: 14) }
        #expect(throws: BitAllocation.Failure.aboveLargest(largest: 25)) { try BitAllocation.solve(candidates, budget: 26) }
        #expect((try? BitAllocation.solve(candidates, budget: 25))?.choice == [1, 0])
        #expect((try? BitAllocation.solve(candidates, budget: 24))?.choice == [0, 0])
    }
}
