/// IQ2_XS (block_iq2_xs, 74 bytes per 256 weights, 2.3125 bits per weight): d (half), 32
/// little-endian UInt16, one per group of eight weights (a 9-bit index into the 512-point iq2xs
/// grid, then the group's seven sign bits), and 8 bytes of 4-bit scale codes, one per 16
/// weights (low nibble first). Weight i decodes as ±d·(0.5 + l)/4·m_i. Encoding: LatticeSuperBlock.
enum IQ2_XS: LatticeBlockFormat {
    static func encode(_ x: UnsafePointer<Float>, count: Int, importance: UnsafePointer<Float>?,
                       into blocks: UnsafeMutableRawPointer, scratch _: BlockScratch) {
        for block in 0..<count / 256 {
            let encoded = LatticeSuperBlock(x + 256 * block, importance: importance.map { $0 + 256 * block },
                                            subBlockSize: 16, codebook: .iq2xs)
            let out = blocks + 74 * block
            out.storeHalf(encoded.d, at: 0)
            for group in 0..<32 {
                let entry = encoded.points[group] | UInt16(encoded.signs[group]) << 9
                out.storeBytes(of: entry.littleEndian, toByteOffset: 2 + 2 * group, as: UInt16.self)
            }
            for pair in 0..<8 {
                out.storeBytes(of: encoded.scaleCodes[2 * pair] | encoded.scaleCodes[2 * pair + 1] << 4, toByteOffset: 66 + pair, as: UInt8.self)
            }
        }
    }

    static func decode(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        for block in 0..<count / 256 {
            let b = blocks + 74 * block, yb = y + 256 * block
            let d = b.loadHalf(at: 0)
            for group in 0..<32 {
                let entry = UInt16(littleEndian: b.loadUnaligned(fromByteOffset: 2 + 2 * group, as: UInt16.self))
                let code = (b.byte(66 + group / 4) >> (group % 4 < 2 ? 0 : 4)) & 0x0F
                let scale = d * (0.5 + Float(code)) * 0.25
                LatticeSuperBlock.decodeGroup(point: Int(entry & 511), storedSigns: UInt8(entry >> 9), scale: scale,
                                              codebook: .iq2xs, into: yb + 8 * group)
            }
        }
    }

    static func roundGroup(_ block: UnsafeMutableRawPointer, group: Int, _ x: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                           decoded: UnsafeMutablePointer<Float>) {
        let b = UnsafeRawPointer(block)
        let code = (b.byte(66 + group / 4) >> (group % 4 < 2 ? 0 : 4)) & 0x0F
        let scale = b.loadHalf(at: 0) * (0.5 + Float(code)) * 0.25
        let (point, signs) = LatticeSuperBlock.roundGroup(x, weights: weights, scale: scale, codebook: .iq2xs, decoded: decoded)
        block.storeBytes(of: (UInt16(point) | UInt16(signs) << 9).littleEndian, toByteOffset: 2 + 2 * group, as: UInt16.self)
    }
}
