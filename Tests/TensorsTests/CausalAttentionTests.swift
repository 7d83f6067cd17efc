import FixtureSupport
import Foundation
import Tensors
import Testing

/// The blocked attention kernel against torch's scaled_dot_product_attention (float64) recorded
/// in Fixtures/records/attention.json: causal and sliding-window masks, grouped-query heads,
/// packed sequences whose lengths are not multiples of the blocks.
struct CausalAttentionTests {
    let cases: [[String: Any]]

    init() throws { cases = try Fixtures.record("attention.json").objects("cases") }

    /// (query block, key block, threads): the defaults, blocks that do not divide the lengths
    /// (a key block smaller than a query block leaves rows of a block with nothing visible
    /// under a window), and one-position blocks.
    static let blockings = [(64, 256, 1), (64, 256, 2), (5, 7, 2), (16, 3, 1), (1, 1, 2), (128, 2, 2)]

    @Test(arguments: 0..<3, 0..<blockings.count)
    func matchesTorchSDPA(caseIndex: Int, blocking: Int) throws {
        let c = cases[caseIndex]
        let (queryBlock, keyBlock, threads) = Self.blockings[blocking]
        let window = c["window"] as? Int
        let kernel = CausalAttention(heads: c.int("heads"), keyValueHeads: c.int("kv_heads"), headDim: c.int("head_dim"),
                                     window: window, queryBlock: queryBlock, keyBlock: keyBlock)
        var start = 0
        let sequences = c.ints("lengths").map { length in
            defer { start += length }
            return start..<(start + length)
        }
        let q = c.floats("q"), k = c.floats("k"), v = c.floats("v"), expected = c.floats("output")
        var output = [Float](repeating: .nan, count: expected.count)
        try output.withUnsafeMutableBufferPointer { out in
            try kernel.apply(q: q, k: k, v: v, sequences: sequences, into: out.baseAddress!, threads: threads)
        }
        let worst = zip(output, expected).map { abs($0 - $1) }.max() ?? .nan
        #expect(worst <= 2e-5, "case \(caseIndex), blocks \(queryBlock)x\(keyBlock), \(threads) thread(s): worst |error| \(worst)")
    }

    /// FLOPs count only visible pairs: L(L+1)/2 causally, fewer under a window.
    @Test func flopsCountVisiblePairs() {
        let causal = CausalAttention(heads: 2, keyValueHeads: 1, headDim: 4)
        #expect(causal.flops(sequences: [0..<10]) == 4 * 55 * 8)
        let windowed = CausalAttention(heads: 2, keyValueHeads: 1, headDim: 4, window: 3)
        #expect(windowed.flops(sequences: [0..<10, 10..<12]) == 4 * Double(1 + 2 + 3 * 8 + 1 + 2) * 8)
    }
}
