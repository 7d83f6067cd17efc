/// Q5_1 (block_q5_1, 24 bytes per 32 weights): d (half), m (half), qh (uint32, 5th bits as in
/// Q5_0), then 16 bytes of low nibbles; x = d·q + m.
enum Q5_1: BlockFormat {
    static func encode(_ x: UnsafePointer<Float>, count: Int, importance: UnsafePointer<Float>?,
                       into blocks: UnsafeMutableRawPointer, scratch: BlockScratch) {
        let levels = scratch.levels
        guard let importance else {
            // quantize_row_q5_1_ref: the block's range split into 31 steps.
            for block in 0..<count / 32 {
                let (d, m) = rangeLevels(x + 32 * block, nmax: 31, levels: levels)
                store(d: d, m: m, levels: levels, into: blocks + 24 * block)
            }
            return
        }
        // quantize_row_q5_1_impl: σ² over the whole row, then make_qkx3_quants per block.
        let sigma2 = sumOfSquares(x, count: count) / Float(count)
        for block in 0..<count / 32 {
            let xb = x + 32 * block
            importanceWeights(xb, importance + 32 * block, count: 32, sigma2: sigma2, into: scratch.weights)
            let (d, min) = asymmetricScale(count: 32, nmax: 31, xb, weights: scratch.weights, levels: levels,
                                           trial: scratch.trial, rmin: -0.9, rdelta: 0.05, steps: 36, absoluteError: false)
            store(d: d, m: -min, levels: levels, into: blocks + 24 * block)
        }
    }

    private static func store(d: Float, m: Float, levels: UnsafePointer<UInt8>, into out: UnsafeMutableRawPointer) {
        out.storeHalf(d, at: 0)
        out.storeHalf(m, at: 2)
        var qh: UInt32 = 0
        for j in 0..<16 {
            let q0 = levels[j], q1 = levels[j + 16]
            out.storeBytes(of: (q0 & 0x0F) | ((q1 & 0x0F) << 4), toByteOffset: 8 + j, as: UInt8.self)
            qh |= UInt32((q0 & 0x10) >> 4) << j
            qh |= UInt32((q1 & 0x10) >> 4) << (j + 16)
        }
        out.storeUInt32(qh, at: 4)
    }

    static func decode(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        for block in 0..<count / 32 {
            let b = blocks + 24 * block, yb = y + 32 * block
            let d = b.loadHalf(at: 0), m = b.loadHalf(at: 2)
            let qh = b.loadUInt32(at: 4)
            for j in 0..<16 {
                let q = b.byte(8 + j)
                let high0 = Int((qh >> j) << 4) & 0x10, high1 = Int(qh >> (j + 12)) & 0x10
                yb[j] = Float(Int(q & 0x0F) | high0) * d + m
                yb[j + 16] = Float(Int(q >> 4) | high1) * d + m
            }
        }
    }
}
