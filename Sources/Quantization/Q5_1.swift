/// Q5_1 (block_q5_1, 24 bytes per 32 weights): d (half), m (half), qh (uint32, 5th bits as in
/// Q5_0), then 16 bytes of low nibbles; x = d·q + m.
enum Q5_1: BlockFormat {
    static func encode(_ x: UnsafePointer<Float>, count: Int, importance: UnsafePointer<Float>?,
                       into blocks: UnsafeMutableRawPointer, scratch: BlockScratch) {
        encodeScaleMinBlocks(x, count: count, importance: importance, nmax: 31, blockBytes: 24, into: blocks,
                             scratch: scratch, store: store)
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
