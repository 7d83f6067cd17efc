/// Q4_1 (block_q4_1, 20 bytes per 32 weights): d (half), m (half), then 16 bytes of 4-bit levels
/// laid out as in Q4_0; x = d·q + m.
enum Q4_1: BlockFormat {
    static func encode(_ x: UnsafePointer<Float>, count: Int, importance: UnsafePointer<Float>?,
                       into blocks: UnsafeMutableRawPointer, scratch: BlockScratch) {
        encodeScaleMinBlocks(x, count: count, importance: importance, nmax: 15, blockBytes: 20, into: blocks,
                             scratch: scratch, store: store)
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
