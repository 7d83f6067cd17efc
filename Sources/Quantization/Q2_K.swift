/// Q2_K (block_q2_K, 84 bytes per 256 weights): 16 scale bytes (sub-block j of 16 weights:
/// scale in the low nibble, min in the high nibble), 64 bytes of 2-bit levels (TwoBitPacking),
/// then d and dmin (halves). x = d·sc·q − dmin·m.
enum Q2_K: BlockFormat {
    static func encode(_ x: UnsafePointer<Float>, count: Int, importance: UnsafePointer<Float>?,
                       into blocks: UnsafeMutableRawPointer, scratch s: BlockScratch) {
        for block in 0..<count / 256 {
            let xb = x + 256 * block, out = blocks + 84 * block
            if let importance {
                chooseWithImportance(xb, importance: importance + 256 * block, into: out, scratch: s)
            } else {
                chooseReference(xb, into: out, scratch: s)
            }
            // Requantize every sub-block against the scales as stored.
            let d = UnsafeRawPointer(out).loadHalf(at: 80), dmin = UnsafeRawPointer(out).loadHalf(at: 82)
            for j in 0..<16 {
                let packed = out.load(fromByteOffset: j, as: UInt8.self)
                let dj = d * Float(packed & 0x0F)
                if dj == 0 { continue }
                let mj = dmin * Float(packed >> 4)
                for i in 16 * j..<16 * j + 16 {
                    s.levels[i] = UInt8(truncatingIfNeeded: clamp(nearestInt((xb[i] + mj) / dj), 0, 3))
                }
            }
            TwoBitPacking.store(s.levels, into: out + 16)
        }
    }

    /// quantize_row_q2_K_ref: per sub-block make_qkx2_quants with weights |x| and absolute error,
    /// then scales and mins as 4-bit fractions of the largest ones.
    private static func chooseReference(_ x: UnsafePointer<Float>, into out: UnsafeMutableRawPointer, scratch s: BlockScratch) {
        for i in 0..<256 { s.blockWeights[i] = abs(x[i]) }
        for half in 0..<2 {
            let (scales, mins) = asymmetricScales(count: 16, nmax: 3, x + 128 * half, weights: s.blockWeights + 128 * half,
                                                  levels: s.levels + 128 * half, scratch: s, rmin: -0.5, rdelta: 0.1, steps: 15,
                                                  absoluteError: true)
            for j in 0..<8 { (s.scales[8 * half + j], s.mins[8 * half + j]) = (scales[j], mins[j]) }
        }
        var maxScale: Float = 0, maxMin: Float = 0
        for j in 0..<16 {
            if s.scales[j] > maxScale { maxScale = s.scales[j] }
            if s.mins[j] > maxMin { maxMin = s.mins[j] }
        }
        if maxScale > 0 {
            let iscale = 15 / maxScale
            for j in 0..<16 {
                out.storeBytes(of: UInt8(truncatingIfNeeded: nearestInt(iscale * s.scales[j])), toByteOffset: j, as: UInt8.self)
            }
            out.storeHalf(maxScale / 15, at: 80)
        } else {
            out.initializeMemory(as: UInt8.self, repeating: 0, count: 16)
            out.storeHalf(0, at: 80)
        }
        if maxMin > 0 {
            let iscale = 15 / maxMin
            for j in 0..<16 {
                let min = UInt8(truncatingIfNeeded: nearestInt(iscale * s.mins[j]) << 4)
                out.storeBytes(of: out.load(fromByteOffset: j, as: UInt8.self) | min, toByteOffset: j, as: UInt8.self)
            }
            out.storeHalf(maxMin / 15, at: 82)
        } else {
            out.storeHalf(0, at: 82)
        }
    }

    /// quantize_row_q2_K_impl: weights imatrix·√(σ² + x²) with σ² = mean x² over the
    /// super-block, make_qkx3_quants per sub-block, scales and mins to 4 bits by make_qp_quants.
    private static func chooseWithImportance(_ x: UnsafePointer<Float>, importance: UnsafePointer<Float>,
                                             into out: UnsafeMutableRawPointer, scratch s: BlockScratch) {
        let sigma2 = sumOfSquares(x, count: 256) / 256
        for j in 0..<16 {
            importanceWeights(x + 16 * j, importance + 16 * j, count: 16, sigma2: sigma2, into: s.blockWeights + 16 * j)
            s.weightSums[j] = sum(s.blockWeights + 16 * j, count: 16)
        }
        for half in 0..<2 {
            let (scales, mins) = asymmetricScales(count: 16, nmax: 3, x + 128 * half, weights: s.blockWeights + 128 * half,
                                                  levels: s.levels + 128 * half, scratch: s, rmin: -0.9, rdelta: 0.05, steps: 36,
                                                  absoluteError: false)
            for j in 0..<8 { (s.scales[8 * half + j], s.mins[8 * half + j]) = (scales[j], mins[j]) }
        }
        let d = positiveScale(count: 16, nmax: 15, s.scales, weights: s.weightSums, levels: s.scaleLevels)
        let dmin = positiveScale(count: 16, nmax: 15, s.mins, weights: s.weightSums, levels: s.minLevels)
        out.storeHalf(d, at: 80)
        out.storeHalf(dmin, at: 82)
        for j in 0..<16 {
            out.storeBytes(of: s.scaleLevels[j] | (s.minLevels[j] << 4), toByteOffset: j, as: UInt8.self)
        }
    }

    static func decode(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        for block in 0..<count / 256 {
            let b = blocks + 84 * block, yb = y + 256 * block
            let d = b.loadHalf(at: 80), dmin = b.loadHalf(at: 82)
            for j in 0..<16 {
                let packed = b.byte(j)
                let dj = d * Float(packed & 0x0F), mj = dmin * Float(packed >> 4)
                for i in 16 * j..<16 * j + 16 { yb[i] = dj * Float(TwoBitPacking.level(i, in: b + 16)) - mj }
            }
        }
    }
}
