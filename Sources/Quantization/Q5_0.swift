/// Q5_0 (block_q5_0, 22 bytes per 32 weights): d (half), qh (uint32: bit j is the 5th bit of
/// element j), then 16 bytes of low nibbles laid out as in Q4_0; x = d·(q − 16).
enum Q5_0: BlockFormat {
    static func encode(_ x: UnsafePointer<Float>, count: Int, importance: UnsafePointer<Float>?,
                       into blocks: UnsafeMutableRawPointer, scratch: BlockScratch) {
        guard let importance else { return encodeReference(x, count: count, into: blocks, levels: scratch.levels) }
        // quantize_row_q5_0_impl: σ² over the whole row, then make_qx_quants per block.
        let sigma2 = sumOfSquares(x, count: count) / Float(count)
        for block in 0..<count / 32 {
            let xb = x + 32 * block
            importanceWeights(xb, importance + 32 * block, count: 32, sigma2: sigma2, into: scratch.weights)
            let d = symmetricScale(count: 32, nmax: 16, xb, weights: scratch.weights, levels: scratch.signedLevels)
            for j in 0..<32 { scratch.levels[j] = UInt8(bitPattern: scratch.signedLevels[j]) }
            store(d: d, levels: scratch.levels, into: blocks + 22 * block)
        }
    }

    /// quantize_row_q5_0_ref: d = −max/16 for the value of largest magnitude.
    private static func encodeReference(_ x: UnsafePointer<Float>, count: Int, into blocks: UnsafeMutableRawPointer,
                                        levels: UnsafeMutablePointer<UInt8>) {
        for block in 0..<count / 32 {
            let xb = x + 32 * block
            var amax: Float = 0, max: Float = 0
            for j in 0..<32 where amax < abs(xb[j]) {
                amax = abs(xb[j])
                max = xb[j]
            }
            let d = max / -16
            let id: Float = d != 0 ? 1 / d : 0
            for j in 0..<32 {
                levels[j] = UInt8(bitPattern: Swift.min(31, Int8(bitPattern: truncatedByte(xb[j] * id + 16.5))))
            }
            store(d: d, levels: levels, into: blocks + 22 * block)
        }
    }

    private static func store(d: Float, levels: UnsafePointer<UInt8>, into out: UnsafeMutableRawPointer) {
        out.storeHalf(d, at: 0)
        var qh: UInt32 = 0
        for j in 0..<16 {
            let q0 = levels[j], q1 = levels[j + 16]
            out.storeBytes(of: (q0 & 0x0F) | ((q1 & 0x0F) << 4), toByteOffset: 6 + j, as: UInt8.self)
            qh |= UInt32((q0 & 0x10) >> 4) << j
            qh |= UInt32((q1 & 0x10) >> 4) << (j + 16)
        }
        out.storeUInt32(qh, at: 2)
    }

    static func decode(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        for block in 0..<count / 32 {
            let b = blocks + 22 * block, yb = y + 32 * block
            let d = b.loadHalf(at: 0)
            let qh = b.loadUInt32(at: 2)
            for j in 0..<16 {
                let q = b.byte(6 + j)
                let high0 = Int((qh >> j) << 4) & 0x10, high1 = Int(qh >> (j + 12)) & 0x10
                yb[j] = Float((Int(q & 0x0F) | high0) - 16) * d
                yb[j + 16] = Float((Int(q >> 4) | high1) - 16) * d
            }
        }
    }
}
