/// Q4_0 (block_q4_0, 18 bytes per 32 weights): d (half), then 16 bytes of 4-bit levels q, element
/// j in the low nibble of byte j and element j+16 in its high nibble; x = d·(q − 8).
enum Q4_0: BlockFormat {
    static func encode(_ x: UnsafePointer<Float>, count: Int, importance: UnsafePointer<Float>?,
                       into blocks: UnsafeMutableRawPointer, scratch: BlockScratch) {
        guard let importance else { return encodeReference(x, count: count, into: blocks) }
        // quantize_row_q4_0_impl: σ² over the whole row, then make_qx_quants per block.
        let sigma2 = sumOfSquares(x, count: count) / Float(count)
        let levels = scratch.signedLevels
        for block in 0..<count / 32 {
            let xb = x + 32 * block, out = blocks + 18 * block
            importanceWeights(xb, importance + 32 * block, count: 32, sigma2: sigma2, into: scratch.weights)
            let d = symmetricScale(count: 32, nmax: 8, xb, weights: scratch.weights, levels: levels)
            out.storeHalf(d, at: 0)
            for j in 0..<16 {
                let q0 = UInt8(bitPattern: levels[j]), q1 = UInt8(bitPattern: levels[j + 16])
                out.storeBytes(of: q0 | (q1 << 4), toByteOffset: 2 + j, as: UInt8.self)
            }
        }
    }

    /// quantize_row_q4_0_ref: d = −max/8 for the value of largest magnitude, so that value maps
    /// to level 0 exactly and the rest round to nearest.
    private static func encodeReference(_ x: UnsafePointer<Float>, count: Int, into blocks: UnsafeMutableRawPointer) {
        for block in 0..<count / 32 {
            let xb = x + 32 * block, out = blocks + 18 * block
            var amax: Float = 0, max: Float = 0
            for j in 0..<32 where amax < abs(xb[j]) {
                amax = abs(xb[j])
                max = xb[j]
            }
            let d = max / -8
            let id: Float = d != 0 ? 1 / d : 0
            out.storeHalf(d, at: 0)
            for j in 0..<16 {
                let q0 = Swift.min(15, Int8(bitPattern: truncatedByte(xb[j] * id + 8.5)))
                let q1 = Swift.min(15, Int8(bitPattern: truncatedByte(xb[j + 16] * id + 8.5)))
                out.storeBytes(of: UInt8(bitPattern: q0) | (UInt8(bitPattern: q1) << 4), toByteOffset: 2 + j, as: UInt8.self)
            }
        }
    }

    static func decode(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        for block in 0..<count / 32 {
            let b = blocks + 18 * block, yb = y + 32 * block
            let d = b.loadHalf(at: 0)
            for j in 0..<16 {
                let q = b.byte(2 + j)
                yb[j] = Float(Int(q & 0x0F) - 8) * d
                yb[j + 16] = Float(Int(q >> 4) - 8) * d
            }
        }
    }
}
