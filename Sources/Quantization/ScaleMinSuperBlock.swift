/// What Q4_K and Q5_K share: a super-block of 256 weights in eight sub-blocks of 32, each
/// x ≈ d·sc_j·q − dmin·m_j with 6-bit sc_j, m_j (PackedScales) and half d, dmin at bytes 0 and 2.
/// Chooses every sub-block's scale and min, quantizes them against d and dmin, and leaves the
/// final levels (recomputed against the stored scales, as ggml does) in `scratch.levels`.
enum ScaleMinSuperBlock {
    /// quantize_row_q{4,5}_K_ref's sub-block search: weights √(mean x²) + |x| over the sub-block,
    /// then make_qkx2_quants with the format's trial range.
    struct ReferenceSearch {
        let rmin: Float, rdelta: Float, steps: Int
    }

    static func encode(_ x: UnsafePointer<Float>, nmax: Int, importance: UnsafePointer<Float>?, reference: ReferenceSearch,
                       capsImportanceLevels: Bool, into out: UnsafeMutableRawPointer, scratch s: BlockScratch) {
        if let importance {
            chooseWithImportance(x, nmax: nmax, importance: importance, capsLevels: capsImportanceLevels, into: out, scratch: s)
        } else {
            chooseReference(x, nmax: nmax, search: reference, into: out, scratch: s)
        }
        // Requantize every sub-block against the scales as stored.
        let d = UnsafeRawPointer(out).loadHalf(at: 0), dmin = UnsafeRawPointer(out).loadHalf(at: 2)
        for j in 0..<8 {
            let (sc, m) = PackedScales.load(j, from: out + 4)
            let dj = d * Float(sc)
            if dj == 0 { continue }
            let mj = dmin * Float(m)
            for i in 32 * j..<32 * j + 32 {
                s.levels[i] = UInt8(truncatingIfNeeded: clamp(nearestInt((x[i] + mj) / dj), 0, nmax))
            }
        }
    }

    private static func chooseReference(_ x: UnsafePointer<Float>, nmax: Int, search: ReferenceSearch,
                                        into out: UnsafeMutableRawPointer, scratch s: BlockScratch) {
        for j in 0..<8 {
            let xs = x + 32 * j
            let mean = (sumOfSquares(xs, count: 32) / 32).squareRoot()
            for i in 0..<32 { s.blockWeights[32 * j + i] = mean + abs(xs[i]) }
        }
        let (scales, mins) = asymmetricScales(count: 32, nmax: nmax, x, weights: s.blockWeights, levels: s.levels, scratch: s,
                                              rmin: search.rmin, rdelta: search.rdelta, steps: search.steps, absoluteError: false)
        var maxScale: Float = 0, maxMin: Float = 0
        for j in 0..<8 {
            (s.scales[j], s.mins[j]) = (scales[j], mins[j])
            if s.scales[j] > maxScale { maxScale = s.scales[j] }
            if s.mins[j] > maxMin { maxMin = s.mins[j] }
        }
        let inverseScale: Float = maxScale > 0 ? 63 / maxScale : 0
        let inverseMin: Float = maxMin > 0 ? 63 / maxMin : 0
        for j in 0..<8 {
            let scale = Swift.min(63, UInt8(truncatingIfNeeded: nearestInt(inverseScale * s.scales[j])))
            let min = Swift.min(63, UInt8(truncatingIfNeeded: nearestInt(inverseMin * s.mins[j])))
            PackedScales.store(j, scale: scale, min: min, into: out + 4)
        }
        out.storeHalf(maxScale / 63, at: 0)
        out.storeHalf(maxMin / 63, at: 2)
    }

    /// quantize_row_q{4,5}_K_impl: weights imatrix·√(σ² + x²) with σ² = 2·mean x² over the
    /// super-block, make_qkx3_quants per sub-block, and the eight scales and eight mins each
    /// quantized to 6 bits by make_qp_quants weighted by the sub-blocks' weight sums.
    private static func chooseWithImportance(_ x: UnsafePointer<Float>, nmax: Int, importance: UnsafePointer<Float>, capsLevels: Bool,
                                             into out: UnsafeMutableRawPointer, scratch s: BlockScratch) {
        let sigma2 = 2 * sumOfSquares(x, count: 256) / 256
        for j in 0..<8 {
            importanceWeights(x + 32 * j, importance + 32 * j, count: 32, sigma2: sigma2, into: s.blockWeights + 32 * j)
            s.weightSums[j] = sum(s.blockWeights + 32 * j, count: 32)
        }
        let (scales, mins) = asymmetricScales(count: 32, nmax: nmax, x, weights: s.blockWeights, levels: s.levels, scratch: s,
                                              rmin: -0.9, rdelta: 0.05, steps: 36, absoluteError: false)
        for j in 0..<8 { (s.scales[j], s.mins[j]) = (scales[j], mins[j]) }
        let d = positiveScale(count: 8, nmax: 63, s.scales, weights: s.weightSums, levels: s.scaleLevels)
        let dmin = positiveScale(count: 8, nmax: 63, s.mins, weights: s.weightSums, levels: s.minLevels)
        for j in 0..<8 {
            // Q5_K caps the levels at 63, Q4_K stores them as they are (ggml's own difference).
            let scale = capsLevels ? Swift.min(63, s.scaleLevels[j]) : s.scaleLevels[j]
            let min = capsLevels ? Swift.min(63, s.minLevels[j]) : s.minLevels[j]
            PackedScales.store(j, scale: scale, min: min, into: out + 4)
        }
        out.storeHalf(d, at: 0)
        out.storeHalf(dmin, at: 2)
    }

    /// dequantize_row_q{4,5}_K for one super-block, given each weight's level.
    @inline(__always) static func decode(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>, level: (Int) -> Int) {
        let d = block.loadHalf(at: 0), dmin = block.loadHalf(at: 2)
        for j in 0..<8 {
            let (sc, m) = PackedScales.load(j, from: block + 4)
            let dj = d * Float(sc), mj = dmin * Float(m)
            for i in 32 * j..<32 * j + 32 { y[i] = dj * Float(level(i)) - mj }
        }
    }
}
