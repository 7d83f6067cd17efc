/// Q4_K (block_q4_K, 144 bytes per 256 weights): d, dmin (halves), 12 bytes of packed 6-bit
/// scales and mins, then 128 bytes of 4-bit levels: within each 64 weights, byte l holds
/// weight l in its low nibble and weight l+32 in its high nibble. x = d·sc·q − dmin·m.
enum Q4_K: BlockFormat {
    static func encode(_ x: UnsafePointer<Float>, count: Int, importance: UnsafePointer<Float>?,
                       into blocks: UnsafeMutableRawPointer, scratch: BlockScratch) {
        let levels = scratch.levels
        for block in 0..<count / 256 {
            let out = blocks + 144 * block
            ScaleMinSuperBlock.encode(x + 256 * block, nmax: 15, importance: importance.map { $0 + 256 * block },
                                      reference: .init(rmin: -1, rdelta: 0.1, steps: 20), capsImportanceLevels: false,
                                      into: out, scratch: scratch)
            for half in stride(from: 0, to: 256, by: 64) {
                for l in 0..<32 {
                    out.storeBytes(of: levels[half + l] | (levels[half + l + 32] << 4), toByteOffset: 16 + half / 2 + l, as: UInt8.self)
                }
            }
        }
    }

    static func decode(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        for block in 0..<count / 256 {
            let b = blocks + 144 * block
            ScaleMinSuperBlock.decode(b, into: y + 256 * block) { i in
                let q = b.byte(16 + i / 64 * 32 + i % 32)
                return Int(i % 64 < 32 ? q & 0x0F : q >> 4)
            }
        }
    }
}
