/// Q4_1 (block_q4_1, 20 bytes per 32 weights): d (half), m (half), then 16 bytes of 4-bit levels
/// laid out as in Q4_0; x = d·q + m.
enum Q4_1: BlockFormat {
    static func encode(_ x: UnsafePointer<Float>, count: Int, importance: UnsafePointer<Float>?,
                       into blocks: UnsafeMutableRawPointer, scratch: BlockScratch) {
        let levels = scratch.levels
        guard let importance else {
            // quantize_row_q4_1_ref: the block's range split into 15 steps.
            for block in 0..<count / 32 {
                let (d, m) = rangeLevels(x + 32 * block, nmax: 15, levels: levels)
                store(d: d, m: m, levels: levels, into: blocks + 20 * block)
            }
            return
        }
        // quantize_row_q4_1_impl: σ² over the whole row, then make_qkx3_quants per block.
        let sigma2 = sumOfSquares(x, count: count) / Float(count)
        for block in 0..<count / 32 {
            let xb = x + 32 * block
            importanceWeights(xb, importance + 32 * block, count: 32, sigma2: sigma2, into: scratch.weights)
            let (d, min) = asymmetricScale(count: 32, nmax: 15, xb, weights: scratch.weights, levels: levels,
                                           trial: scratch.trial, rmin: -0.9, rdelta: 0.05, steps: 36, absoluteError: false)
            store(d: d, m: -min, levels: levels, into: blocks + 20 * block)
        }
    }

    private static func store(d: Float, m: Float, levels: UnsafePointer<UInt8>, into out: UnsafeMutableRawPointer) {
        out.storeHalf(d, at: 0)
        out.storeHalf(m, at: 2)
        for j in 0..<16 { out.storeBytes(of: levels[j] | (levels[j + 16] << 4), toByteOffset: 4 + j, as: UInt8.self) }
    }

    static func decode(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        for block in 0..<count / 32 {
            let b = blocks + 20 * block, yb = y + 32 * block
            let d = b.loadHalf(at: 0), m = b.loadHalf(at: 2)
            for j in 0..<16 {
                let q = b.byte(4 + j)
                yb[j] = Float(q & 0x0F) * d + m
                yb[j + 16] = Float(q >> 4) * d + m
            }
        }
    }
}

/// quantize_row_q4_1_ref / q5_1_ref: d = (max − min)/nmax, m = min, levels (x − min)/d rounded
/// half up (a truncating cast of +0.5). Q4_1 caps the levels at 15; Q5_1's cast cannot exceed 31.
/// Returns d and m unrounded; the caller stores them as halves.
func rangeLevels(_ x: UnsafePointer<Float>, nmax: Int, levels: UnsafeMutablePointer<UInt8>) -> (d: Float, m: Float) {
    var min = Float.greatestFiniteMagnitude, max = -Float.greatestFiniteMagnitude
    for j in 0..<32 {
        if x[j] < min { min = x[j] }
        if x[j] > max { max = x[j] }
    }
    let d = (max - min) / Float(nmax)
    let id: Float = d != 0 ? 1 / d : 0
    for j in 0..<32 {
        let q = truncatedByte((x[j] - min) * id + 0.5)
        levels[j] = nmax == 15 ? UInt8(bitPattern: Swift.min(15, Int8(bitPattern: q))) : q
    }
    return (d, min)
}
