import FixtureSupport
@testable import Quantization
import Testing

/// The lattice codebooks against the obvious search: every grid point tried.
struct LatticeCodebookTests {
    static func bruteForce(_ codebook: LatticeCodebook, _ x: SIMD8<Float>, _ w: SIMD8<Float>, scale: Float) -> Float {
        codebook.points.map { m in
            let d = x - scale * m
            return (w * d * d).sum()
        }.min()!
    }

    /// Grid points come back exactly, at any scale.
    @Test(arguments: [LatticeCodebook.iq2xxs, .iq2xs])
    func gridPointsAreTheirOwnNearest(codebook: LatticeCodebook) {
        for (index, m) in codebook.points.enumerated() {
            for scale in [Float(0.01), 1, 37] {
                let (point, error) = codebook.nearest(scale * m, SIMD8(repeating: 1), scale: scale)
                #expect(codebook.points[point] == m && error == 0, "point \(index) at scale \(scale)")
            }
        }
    }

    /// Off the grid, the three shells of candidates hold the best point under uniform weights, and
    /// under random weights a point within 1% of the best over the whole grid.
    @Test(arguments: [LatticeCodebook.iq2xxs, .iq2xs])
    func candidatesHoldTheNearestPoint(codebook: LatticeCodebook) {
        var g = SeededGenerator(state: 11)
        var worse = 0
        let samples = 4000
        for sample in 0..<samples {
            let x = SIMD8<Float>((0..<8).map { _ in abs(g.normal()) * 20 })
            let uniform = sample % 2 == 0
            let w = uniform ? SIMD8<Float>(repeating: 1) : SIMD8<Float>((0..<8).map { _ in Float.random(in: 0...1, using: &g) })
            let found = codebook.nearest(x, w, scale: 1).error
            let best = Self.bruteForce(codebook, x, w, scale: 1)
            if uniform {
                #expect(found == best, "sample \(sample): \(found) against \(best)")
            } else if found > best * 1.01 {
                worse += 1
            }
        }
        print("\(samples / 2) weighted samples: \(worse) more than 1% above the whole grid's best")
        #expect(worse < samples / 100)
    }
}
