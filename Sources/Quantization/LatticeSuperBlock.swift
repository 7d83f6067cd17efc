/// The encoder shared by ggml's 2-bit lattice formats (IQ2_XXS, IQ2_XS): a super-block of 256
/// weights has one half-precision scale d; each sub-block of `subBlockSize` weights a 4-bit code
/// l, giving the scale D = d·(0.5 + l)/4; each group of eight weights a grid point (magnitudes m)
/// and seven sign bits, the eighth sign making the count of minus signs even. Weight i decodes
/// as ±D·m_i.
///
/// ggml's encoder (quantize_row_iq2_*_impl) searches its scales with the grid taken as the
/// uniform 2·(0, 1, 2) + 1 and under weights imatrix·√(σ² + x²), and never revisits a sub-block
/// after its 4-bit scale is rounded. This one minimises the error the tests and the imatrix
/// define, Σ importance·(x − x̂)², against the decoded magnitudes themselves, and picks every
/// sub-block's points again at each of the three 4-bit scales nearest its ideal one.
struct LatticeSuperBlock {
    /// Grid point and stored sign bits (seven) of each of the 32 groups.
    var points = [UInt16](repeating: 0, count: 32)
    var signs = [UInt8](repeating: 0, count: 32)
    /// 4-bit scale code of each sub-block.
    var scaleCodes: [UInt8]
    /// The super-block scale as stored (a half, widened); 0 for a block that decodes to zeros.
    var d: Float = 0

    /// Relative scale trials around max|x| / 43 (the largest magnitude): a coarse pass over ±30%,
    /// then the finer steps around the best of it, before refinement.
    private static let coarseTrials: [Float] = (-4...4).map { 1 + 0.075 * Float($0) }
    private static let fineSteps: [Float] = [-0.05, -0.025, 0.025, 0.05]
    /// Below this a sub-block's largest magnitude counts as zero (ggml's GROUP_MAX_EPS).
    private static let negligible: Float = 1e-15

    init(_ x: UnsafePointer<Float>, importance: UnsafePointer<Float>?, subBlockSize: Int, codebook: LatticeCodebook) {
        let subBlocks = 256 / subBlockSize, groupsPerSubBlock = subBlockSize / 8
        scaleCodes = [UInt8](repeating: 0, count: subBlocks)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * 256 + subBlocks) { buffer in
            let value = buffer.baseAddress!, weight = value + 256, ideal = value + 512
            for i in 0..<256 { weight[i] = importance?[i] ?? 1 }
            for s in 0..<subBlocks where (0..<subBlockSize).allSatisfy({ weight[s * subBlockSize + $0] == 0 }) {
                // No importance anywhere in the sub-block: any rounding costs nothing, so keep the weights' shape.
                for i in 0..<subBlockSize { weight[s * subBlockSize + i] = 1 }
            }
            for group in 0..<32 { signs[group] = Self.foldSigns(x + 8 * group, weight + 8 * group, into: value + 8 * group) }
            for s in 0..<subBlocks {
                ideal[s] = searchScale(value + s * subBlockSize, weight + s * subBlockSize,
                                       groups: groupsPerSubBlock, firstGroup: s * groupsPerSubBlock, codebook: codebook)
            }
            let largest = (0..<subBlocks).map { ideal[$0] }.max() ?? 0
            d = floatFromHalf(halfBits(largest * 4 / 15.5))
            guard largest > 0, d > 0, d.isFinite else {
                d = 0
                points = points.map { _ in 0 }
                signs = signs.map { _ in 0 }
                return
            }
            for s in 0..<subBlocks {
                chooseScaleCode(s, value + s * subBlockSize, weight + s * subBlockSize, ideal: ideal[s],
                                groups: groupsPerSubBlock, codebook: codebook)
            }
        }
    }

    /// The magnitudes to approximate, x·sign, and the group's seven stored sign bits. An odd
    /// count of negative weights cannot be stored: the one whose wrong sign costs least
    /// (smallest weight·x²) keeps the wrong sign, and so its value to approximate is −|x|.
    static func foldSigns(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, into value: UnsafeMutablePointer<Float>) -> UInt8 {
        var mask: UInt8 = 0
        for i in 0..<8 {
            value[i] = abs(x[i])
            if x[i] < 0 { mask |= 1 << i }
        }
        if mask.nonzeroBitCount % 2 == 1 {
            var cheapest = 0
            for i in 1..<8 where w[i] * x[i] * x[i] < w[cheapest] * x[cheapest] * x[cheapest] { cheapest = i }
            value[cheapest] = -value[cheapest]
            mask ^= 1 << cheapest
        }
        return mask & 127
    }

    /// The least-squares scale of a sub-block: trial scales around max / 43 (coarse, then fine
    /// around the best), each with every group's nearest point and then the scale refitted to
    /// those points; the best is refined twice more (points again, scale again). Leaves the points chosen in `points`.
    private mutating func searchScale(_ value: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, groups: Int,
                                      firstGroup: Int, codebook: LatticeCodebook) -> Float {
        var largest: Float = 0
        for i in 0..<(8 * groups) { largest = max(largest, value[i]) }
        guard largest >= Self.negligible, largest.isFinite else { return 0 }
        // At most four groups share a scale (IQ2_XXS), so the choices fit a SIMD4 without allocating.
        var chosen = SIMD4<UInt16>(), best = SIMD4<UInt16>()
        var bestScore: Float = -1, bestScale: Float = 0
        func fit(_ scale: Float) -> (scale: Float, score: Float) {
            var productSums = SIMD8<Float>(), squareSums = SIMD8<Float>()
            for g in 0..<groups {
                let values = Self.group(value, g), weights = Self.group(weight, g)
                let point = codebook.nearest(values, weights, scale: scale, wide: false).point
                chosen[g] = UInt16(point)
                let m = codebook.points[point], wm = weights * m
                productSums += wm * values
                squareSums += wm * m
            }
            let sumXM = productSums.sum(), sumMM = squareSums.sum()
            guard sumMM > 0, sumXM > 0 else { return (0, 0) }
            return (sumXM / sumMM, sumXM * sumXM / sumMM)
        }
        var bestTrial: Float = 1
        for trial in Self.coarseTrials {
            let (scale, score) = fit(largest / 43 * trial)
            if score > bestScore { bestScore = score; bestScale = scale; best = chosen; bestTrial = trial }
        }
        let centre = bestTrial
        for step in Self.fineSteps {
            let (scale, score) = fit(largest / 43 * (centre + step))
            if score > bestScore { bestScore = score; bestScale = scale; best = chosen }
        }
        for _ in 0..<2 where bestScale > 0 {
            let (scale, score) = fit(bestScale)
            guard score > bestScore else { break }
            bestScore = score; bestScale = scale; best = chosen
        }
        for g in 0..<groups { points[firstGroup + g] = best[g] }
        return bestScale
    }

    /// Rounds a sub-block's scale to its 4-bit code: the codes next to the ideal scale are each
    /// tried with the points chosen again at the scale the decoder will use.
    private mutating func chooseScaleCode(_ s: Int, _ value: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, ideal: Float,
                                          groups: Int, codebook: LatticeCodebook) {
        let centre = Int(min(max((4 * ideal / d - 0.5).rounded(), 0), 15))
        var bestError = Float.infinity
        for code in max(centre - 1, 0)...min(centre + 1, 15) {
            let scale = d * (0.5 + Float(code)) * 0.25
            var error: Float = 0
            var chosen = SIMD4<UInt16>()
            for g in 0..<groups {
                let (point, groupError) = codebook.nearest(Self.group(value, g), Self.group(weight, g), scale: scale)
                chosen[g] = UInt16(point)
                error += groupError
            }
            if error < bestError {
                bestError = error
                scaleCodes[s] = UInt8(code)
                for g in 0..<groups { points[s * groups + g] = chosen[g] }
            }
        }
    }

    /// Rounds one group of eight weights alone at a scale its block already fixed (GPTQ picks the
    /// groups one at a time as its updates proceed): the stored sign bits and grid point of the
    /// nearest point under `weights`, with what they decode to in `decoded`. A zero scale (a
    /// block that decodes to zeros) gives point 0 and zeros.
    static func roundGroup(_ x: UnsafePointer<Float>, weights: UnsafePointer<Float>, scale: Float, codebook: LatticeCodebook,
                           decoded: UnsafeMutablePointer<Float>) -> (point: Int, storedSigns: UInt8) {
        guard scale > 0, scale.isFinite else {
            decoded.update(repeating: 0, count: 8)
            return (0, 0)
        }
        let point: Int, signs: UInt8
        (point, signs) = withUnsafeTemporaryAllocation(of: Float.self, capacity: 8) { value in
            let signs = foldSigns(x, weights, into: value.baseAddress!)
            return (codebook.nearest(group(value.baseAddress!, 0), group(weights, 0), scale: scale).point, signs)
        }
        decodeGroup(point: point, storedSigns: signs, scale: scale, codebook: codebook, into: decoded)
        return (point, signs)
    }

    /// The eighth sign bit ggml's ksigns_iq2xs table adds: set when the seven stored bits hold an
    /// odd count, so that every group has an even count of minus signs.
    @inline(__always) static func fullSigns(_ stored: UInt8) -> UInt8 {
        stored | (stored.nonzeroBitCount % 2 == 1 ? 0x80 : 0)
    }

    /// Decodes one group: y_i = D·m_i, negated where the sign bit is set, as ggml computes it.
    @inline(__always) static func decodeGroup(point: Int, storedSigns: UInt8, scale: Float, codebook: LatticeCodebook,
                                              into y: UnsafeMutablePointer<Float>) {
        let signs = fullSigns(storedSigns), m = codebook.points[point]
        for i in 0..<8 {
            let v = scale * m[i]
            y[i] = signs & (1 << i) != 0 ? -v : v
        }
    }

    /// Group g (eight floats from 8g) of a buffer, as one vector.
    @inline(__always) static func group(_ buffer: UnsafePointer<Float>, _ g: Int) -> SIMD8<Float> {
        UnsafeRawPointer(buffer + 8 * g).loadUnaligned(as: SIMD8<Float>.self)
    }
}
