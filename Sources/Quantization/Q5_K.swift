/// Q5_K (block_q5_K, 176 bytes per 256 weights): d, dmin (halves), 12 bytes of packed scales and
/// mins, qh[32], then 128 bytes of low nibbles laid out as in Q4_K. The 5th bit of weight
/// 64·k + l (l < 32) is bit 2k of qh[l], of weight 64·k + 32 + l bit 2k+1. x = d·sc·q − dmin·m.
enum Q5_K: BlockFormat {
    static func encode(_ x: UnsafePointer<Float>, count: Int, importance: UnsafePointer<Float>?,
                       into blocks: UnsafeMutableRawPointer, scratch: BlockScratch) {
        let levels = scratch.levels
        for block in 0..<count / 256 {
            let out = blocks + 176 * block
            ScaleMinSuperBlock.encode(x + 256 * block, nmax: 31, importance: importance.map { $0 + 256 * block },
                                      reference: .init(rmin: -0.5, rdelta: 0.1, steps: 15), capsImportanceLevels: true,
                                      into: out, scratch: scratch)
            for l in 0..<32 {
                var qh: UInt8 = 0
                for k in 0..<4 {
                    let q0 = levels[64 * k + l], q1 = levels[64 * k + l + 32]
                    qh |= (q0 >> 4) << (2 * k) | (q1 >> 4) << (2 * k + 1)
                    out.storeBytes(of: (q0 & 0x0F) | (q1 << 4), toByteOffset: 48 + 32 * k + l, as: UInt8.self)
                }
                out.storeBytes(of: qh, toByteOffset: 16 + l, as: UInt8.self)
            }
        }
    }

    static func decode(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        for block in 0..<count / 256 {
            let b = blocks + 176 * block
            ScaleMinSuperBlock.decode(b, into: y + 256 * block) { i in
                let l = i % 32, k = i / 64, upper = i % 64 >= 32
                let q = b.byte(48 + 32 * k + l)
                let low = upper ? q >> 4 : q & 0x0F
                let bit = (b.byte(16 + l) >> (2 * k + (upper ? 1 : 0))) & 1
                return Int(low) + 16 * Int(bit)
            }
        }
    }
}
