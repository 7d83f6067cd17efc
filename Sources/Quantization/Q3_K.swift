/// Q3_K (block_q3_K, 110 bytes per 256 weights): hmask[32] (the level's 3rd bit: weight i is bit
/// i/32 of byte i%32), 64 bytes of low 2 bits (TwoBitPacking), 12 bytes of sixteen 6-bit scales
/// stored offset by 32 (low nibbles of scales j and j+8 in byte j < 8, top two bits of scale j in
/// bits 2·(j/4) of byte 8 + j%4), then d (half). x = d·(sc − 32)·(q − 4), q ∈ [0, 7].
enum Q3_K: BlockFormat {
    static func encode(_ x: UnsafePointer<Float>, count: Int, importance: UnsafePointer<Float>?,
                       into blocks: UnsafeMutableRawPointer, scratch s: BlockScratch) {
        let levels = s.signedLevels
        for block in 0..<count / 256 {
            let xb = x + 256 * block, out = blocks + 110 * block
            (out + 96).initializeMemory(as: UInt8.self, repeating: 0, count: 12)
            if let importance {
                chooseWithImportance(xb, importance: importance + 256 * block, into: out, scratch: s)
            } else {
                chooseReference(xb, into: out, scratch: s)
            }
            // Requantize every sub-block against the scales as stored.
            let d = UnsafeRawPointer(out).loadHalf(at: 108)
            for j in 0..<16 {
                let dj = d * Float(scale(j, in: out + 96) - 32)
                if dj == 0 { continue }
                for i in 16 * j..<16 * j + 16 { levels[i] = Int8(truncatingIfNeeded: clamp(nearestInt(xb[i] / dj), -4, 3) + 4) }
            }
            // Split each level into its 3rd bit (hmask) and its low two bits.
            for m in 0..<32 {
                var mask: UInt8 = 0
                for bit in 0..<8 {
                    let i = 32 * bit + m
                    let level = UInt8(bitPattern: levels[i])
                    mask |= (level > 3 ? 1 : 0) << bit
                    s.levels[i] = level > 3 ? level &- 4 : level
                }
                out.storeBytes(of: mask, toByteOffset: m, as: UInt8.self)
            }
            TwoBitPacking.store(s.levels, into: out + 32)
        }
    }

    /// Stores sub-block j's 6-bit level (scale + 32) into the zeroed 12-byte scales field.
    private static func storeScale(_ j: Int, _ level: Int, into scales: UnsafeMutableRawPointer) {
        let low = UInt8(truncatingIfNeeded: level & 0x0F), high = UInt8(truncatingIfNeeded: level >> 4)
        let lowByte = j < 8 ? j : j - 8
        let old = scales.load(fromByteOffset: lowByte, as: UInt8.self)
        scales.storeBytes(of: j < 8 ? low : old | (low << 4), toByteOffset: lowByte, as: UInt8.self)
        let highByte = 8 + j % 4
        scales.storeBytes(of: scales.load(fromByteOffset: highByte, as: UInt8.self) | (high << (2 * (j / 4))),
                          toByteOffset: highByte, as: UInt8.self)
    }

    /// Sub-block j's stored 6-bit level (scale + 32).
    @inline(__always) private static func scale(_ j: Int, in scales: UnsafeRawPointer) -> Int {
        let low = j < 8 ? scales.byte(j) & 0x0F : scales.byte(j - 8) >> 4
        return Int(low | (((scales.byte(8 + j % 4) >> (2 * (j / 4))) & 3) << 4))
    }

    /// quantize_row_q3_K_ref: make_q3_quants (weights x², level refinement) per sub-block, then
    /// the sixteen scales as signed 6-bit fractions of the one of largest magnitude.
    private static func chooseReference(_ x: UnsafePointer<Float>, into out: UnsafeMutableRawPointer, scratch s: BlockScratch) {
        var maxScale: Float = 0, amax: Float = 0
        for j in 0..<16 {
            s.scales[j] = symmetricScaleRefined(count: 16, nmax: 4, x + 16 * j, levels: s.signedLevels + 16 * j)
            if abs(s.scales[j]) > amax {
                amax = abs(s.scales[j])
                maxScale = s.scales[j]
            }
        }
        guard maxScale != 0 else { return out.storeHalf(0, at: 108) }
        let iscale = -32 / maxScale
        for j in 0..<16 {
            // ggml narrows the rounded value to int8_t before clamping.
            let l = Int(Int8(truncatingIfNeeded: nearestInt(iscale * s.scales[j])))
            storeScale(j, clamp(l, -32, 31) + 32, into: out + 96)
        }
        out.storeHalf(1 / iscale, at: 108)
    }

    /// quantize_row_q3_K_impl: weights imatrix·√(σ² + x²) with σ² = 2·mean x² over the
    /// super-block, make_qx_quants per sub-block, and the sixteen scales quantized by
    /// make_qx_quants (nmax 32) weighted by the sub-blocks' weight sums.
    private static func chooseWithImportance(_ x: UnsafePointer<Float>, importance: UnsafePointer<Float>,
                                             into out: UnsafeMutableRawPointer, scratch s: BlockScratch) {
        let sigma2 = 2 * sumOfSquares(x, count: 256) / 256
        for j in 0..<16 {
            importanceWeights(x + 16 * j, importance + 16 * j, count: 16, sigma2: sigma2, into: s.weights)
            s.weightSums[j] = sum(s.weights, count: 16)
            s.scales[j] = symmetricScale(count: 16, nmax: 4, x + 16 * j, weights: s.weights, levels: s.signedLevels + 16 * j)
        }
        let d = symmetricScale(count: 16, nmax: 32, s.scales, weights: s.weightSums, levels: s.signedScaleLevels)
        for j in 0..<16 { storeScale(j, Int(s.signedScaleLevels[j]), into: out + 96) }
        out.storeHalf(d, at: 108)
    }

    static func decode(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        for block in 0..<count / 256 {
            let b = blocks + 110 * block, yb = y + 256 * block
            let d = b.loadHalf(at: 108)
            for j in 0..<16 {
                let dj = d * Float(scale(j, in: b + 96) - 32)
                for i in 16 * j..<16 * j + 16 {
                    let high = (b.byte(i % 32) >> (i / 32)) & 1
                    yb[i] = dj * Float(Int(TwoBitPacking.level(i, in: b + 32)) - (high != 0 ? 0 : 4))
                }
            }
        }
    }
}
