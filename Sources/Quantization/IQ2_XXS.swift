/// IQ2_XXS (block_iq2_xxs, 66 bytes per 256 weights, 2.0625 bits per weight): d (half), then for
/// each sub-block of 32 weights two little-endian UInt32: the first holds its four groups' grid
/// indices (a byte each, into the 256-point iq2xxs grid), the second the four groups' seven sign
/// bits (bits 7k…7k+6) and the sub-block's 4-bit scale code l (bits 28…31). Weight i decodes as
/// ±d·(0.5 + l)/4·m_i. Encoding: LatticeSuperBlock.
enum IQ2_XXS: LatticeBlockFormat {
    static func encode(_ x: UnsafePointer<Float>, count: Int, importance: UnsafePointer<Float>?,
                       into blocks: UnsafeMutableRawPointer, scratch _: BlockScratch) {
        for block in 0..<count / 256 {
            let encoded = LatticeSuperBlock(x + 256 * block, importance: importance.map { $0 + 256 * block },
                                            subBlockSize: 32, codebook: .iq2xxs)
            let out = blocks + 66 * block
            out.storeHalf(encoded.d, at: 0)
            for sub in 0..<8 {
                var indices: UInt32 = 0, signs = UInt32(encoded.scaleCodes[sub]) << 28
                for k in 0..<4 {
                    indices |= UInt32(encoded.points[4 * sub + k]) << (8 * k)
                    signs |= UInt32(encoded.signs[4 * sub + k]) << (7 * k)
                }
                out.storeUInt32(indices, at: 2 + 8 * sub)
                out.storeUInt32(signs, at: 6 + 8 * sub)
            }
        }
    }

    static func decode(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        for block in 0..<count / 256 {
            let b = blocks + 66 * block, yb = y + 256 * block
            let d = b.loadHalf(at: 0)
            for sub in 0..<8 {
                let indices = b.loadUInt32(at: 2 + 8 * sub), signs = b.loadUInt32(at: 6 + 8 * sub)
                let scale = d * (0.5 + Float(signs >> 28)) * 0.25
                for k in 0..<4 {
                    LatticeSuperBlock.decodeGroup(point: Int((indices >> (8 * k)) & 0xFF), storedSigns: UInt8((signs >> (7 * k)) & 0x7F),
                                                  scale: scale, codebook: .iq2xxs, into: yb + 32 * sub + 8 * k)
                }
            }
        }
    }

    static func roundGroup(_ block: UnsafeMutableRawPointer, group: Int, _ x: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                           decoded: UnsafeMutablePointer<Float>) {
        let sub = group / 4, k = group % 4
        let signsOffset = 6 + 8 * sub
        let word = UnsafeRawPointer(block).loadUInt32(at: signsOffset)
        let scale = UnsafeRawPointer(block).loadHalf(at: 0) * (0.5 + Float(word >> 28)) * 0.25
        let (point, signs) = LatticeSuperBlock.roundGroup(x, weights: weights, scale: scale, codebook: .iq2xxs, decoded: decoded)
        block.storeBytes(of: UInt8(point), toByteOffset: 2 + 8 * sub + k, as: UInt8.self)
        block.storeUInt32(word & ~(0x7F << (7 * k)) | UInt32(signs) << (7 * k), at: signsOffset)
    }
}
