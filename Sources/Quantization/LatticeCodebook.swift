/// A 2-bit lattice format's codebook (IQ2_XXS, IQ2_XS) prepared for encoding: every point's eight
/// magnitudes, and for every point of {0,1,2}⁸ (a group of eight weights each rounded to its
/// nearest magnitude) the grid points worth trying. A rounded point on the grid is the weighted
/// optimum at that scale by itself (each coordinate is already at its nearest magnitude); for one
/// off the grid, the candidates are the grid points in its nearest shells (the smallest distinct
/// squared code distances), among which the weighted error decides: two shells (what ggml's
/// neighbour lists hold) for the scale search, which needs only a good score, three for the
/// points finally chosen, which with uniform weights always include the nearest point of the
/// whole grid (LatticeCodebookTests).
final class LatticeCodebook: Sendable {
    /// The eight magnitudes of each point.
    let points: [SIMD8<Float>]
    /// Candidates of the rounded point with base-3 key k, nearest shells first:
    /// candidates[start[k]..<narrowEnd[k]] in the first two shells, up to start[k+1] in three.
    private let start: [Int32]
    private let narrowEnd: [Int32]
    private let candidates: [UInt16]

    static let iq2xxs = LatticeCodebook(grid: LatticeGrids.iq2xxs)
    static let iq2xs = LatticeCodebook(grid: LatticeGrids.iq2xs)

    /// Rounding boundaries between the magnitudes 8 | 25 | 43, in units of the scale.
    private static let lowerBoundary: Float = 16.5, upperBoundary: Float = 34

    init(grid: [UInt16]) {
        let codes = grid.map { entry in (0..<8).map { Int((entry >> (2 * $0)) & 3) } }
        points = codes.map { code in SIMD8<Float>((0..<8).map { LatticeGrids.magnitudes[code[$0]] }) }
        var onGrid = [Int: Int]()
        for (index, point) in codes.enumerated() { onGrid[Self.key(point)] = index }
        var start: [Int32] = [0], narrowEnd: [Int32] = [], candidates: [UInt16] = []
        var point = [Int](repeating: 0, count: 8)
        for key in 0..<6561 {
            var rest = key
            for i in 0..<8 { point[i] = rest % 3; rest /= 3 }
            if let index = onGrid[key] {
                candidates.append(UInt16(index))
                narrowEnd.append(Int32(candidates.count))
            } else {
                let distances = codes.map { zip($0, point).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } }
                let shells = Array(Set(distances).sorted().prefix(3))
                for (index, distance) in distances.enumerated() where distance <= shells[min(1, shells.count - 1)] {
                    candidates.append(UInt16(index))
                }
                narrowEnd.append(Int32(candidates.count))
                for (index, distance) in distances.enumerated() where distance > shells[min(1, shells.count - 1)] && distance <= shells.last! {
                    candidates.append(UInt16(index))
                }
            }
            start.append(Int32(candidates.count))
        }
        self.start = start
        self.narrowEnd = narrowEnd
        self.candidates = candidates
    }

    private static func key(_ point: [Int]) -> Int { point.reversed().reduce(0) { 3 * $0 + $1 } }

    /// Powers of three, to read a rounded point's base-3 key off its codes.
    private static let placeValues = SIMD8<Int32>(1, 3, 9, 27, 81, 243, 729, 2187)

    /// The grid point minimising Σ w_i (x_i − scale·m_i)² over the candidates of x's rounded
    /// point (two shells, or three when `wide`), with that error. `scale` > 0 and x finite.
    @inline(__always)
    func nearest(_ x: SIMD8<Float>, _ w: SIMD8<Float>, scale: Float, wide: Bool = true) -> (point: Int, error: Float) {
        let v = x * (1 / scale)
        var codes = SIMD8<Int32>()
        codes.replace(with: 1, where: v .>= Self.lowerBoundary)
        codes.replace(with: 2, where: v .>= Self.upperBoundary)
        let key = Int((codes &* Self.placeValues).wrappedSum())
        var best = 0, bestError = Float.infinity
        points.withUnsafeBufferPointer { m in
            candidates.withUnsafeBufferPointer { c in
                for slot in Int(start[key])..<Int(wide ? start[key + 1] : narrowEnd[key]) {
                    let point = Int(c[slot])
                    let d = x - scale * m[point]
                    let error = (w * d * d).sum()
                    if error < bestError { bestError = error; best = point }
                }
            }
        }
        return (best, bestError)
    }
}
