/// A 2-bit lattice format's codebook (IQ2_XXS, IQ2_XS) prepared for encoding: every point's eight
/// magnitudes, and for every point of {0,1,2}⁸ (a group of eight weights each rounded to its
/// nearest magnitude) the grid points worth trying. A rounded point on the grid is the weighted
/// optimum at that scale by itself (each coordinate is already at its nearest magnitude); for one
/// off the grid, the candidates are the grid points in its `shells` nearest shells (the smallest
/// distinct squared code distances, as ggml's neighbour lists with two), among which the
/// weighted error decides.
final class LatticeCodebook: Sendable {
    /// Magnitudes of point p: magnitudes[8p..<8p+8].
    let magnitudes: [Float]
    /// Candidates of the rounded point with base-3 key k: candidates[start[k]..<start[k+1]].
    private let start: [Int32]
    private let candidates: [UInt16]

    static let iq2xxs = LatticeCodebook(grid: LatticeGrids.iq2xxs)
    static let iq2xs = LatticeCodebook(grid: LatticeGrids.iq2xs)

    /// Distance shells of candidates for a point off the grid (ggml's neighbour lists keep two).
    static let shells = 2

    /// Rounding boundaries between the magnitudes 8 | 25 | 43, in units of the scale.
    private static let lowerBoundary: Float = 16.5, upperBoundary: Float = 34

    init(grid: [UInt16]) {
        let codes = grid.map { entry in (0..<8).map { Int((entry >> (2 * $0)) & 3) } }
        magnitudes = codes.flatMap { $0.map { LatticeGrids.magnitudes[$0] } }
        var onGrid = [Int: Int]()
        for (index, point) in codes.enumerated() { onGrid[Self.key(point)] = index }
        var start: [Int32] = [0], candidates: [UInt16] = []
        var point = [Int](repeating: 0, count: 8)
        for key in 0..<6561 {
            var rest = key
            for i in 0..<8 { point[i] = rest % 3; rest /= 3 }
            if let index = onGrid[key] {
                candidates.append(UInt16(index))
            } else {
                let distances = codes.map { zip($0, point).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } }
                let shells = Set(distances).sorted().prefix(Self.shells)
                for (index, distance) in distances.enumerated() where distance <= shells.last! { candidates.append(UInt16(index)) }
            }
            start.append(Int32(candidates.count))
        }
        self.start = start
        self.candidates = candidates
    }

    private static func key(_ point: [Int]) -> Int { point.reversed().reduce(0) { 3 * $0 + $1 } }

    /// The grid point minimising Σ w_i (x_i − scale·m_i)² over the candidates of x's rounded
    /// point, with that error. `scale` > 0.
    @inline(__always)
    func nearest(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, scale: Float) -> (point: Int, error: Float) {
        let inverse = 1 / scale
        var key = 0, place = 1
        for i in 0..<8 {
            let v = x[i] * inverse
            key += (v < Self.lowerBoundary ? 0 : v < Self.upperBoundary ? 1 : 2) * place
            place *= 3
        }
        var best = 0, bestError = Float.infinity
        magnitudes.withUnsafeBufferPointer { m in
            candidates.withUnsafeBufferPointer { c in
                for slot in Int(start[key])..<Int(start[key + 1]) {
                    let point = Int(c[slot]), p = m.baseAddress! + 8 * point
                    var error: Float = 0
                    for i in 0..<8 {
                        let d = x[i] - scale * p[i]
                        error += w[i] * d * d
                    }
                    if error < bestError { bestError = error; best = point }
                }
            }
        }
        return (best, bestError)
    }
}
