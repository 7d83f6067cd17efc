import Tensors
import Testing

/// `parallelSum` against the serial sum of the same terms. The terms are multiples of 1/4 below
/// 2^20, so every partial sum is exact in Double and any split must give the serial result.
struct ParallelSumTests {
    @Test(arguments: [0, 1, 2, 3, 7, 1000])
    func everyThreadCountGivesTheSerialSum(count: Int) {
        let term: @Sendable (Int) -> Double = { Double(($0 * 37) % 101) / 4 }
        let serial = (0..<count).reduce(0.0) { $0 + term($1) }
        for threads in [1, 2, 3, 4, 16] {
            #expect(parallelSum(count: count, threads: threads, term) == serial, "count \(count), \(threads) threads")
        }
    }
}
