/// The 2-bit level layout of Q2_K and Q3_K's low bits: within each 128 weights, byte l
/// (l < 32) of the 32-byte group holds weights l, l+32, l+64, l+96 in bits 0–1, 2–3, 4–5, 6–7.
enum TwoBitPacking {
    static func store(_ levels: UnsafePointer<UInt8>, into qs: UnsafeMutableRawPointer) {
        for group in stride(from: 0, to: 256, by: 128) {
            for l in 0..<32 {
                let i = group + l
                let byte = levels[i] | (levels[i + 32] << 2) | (levels[i + 64] << 4) | (levels[i + 96] << 6)
                qs.storeBytes(of: byte, toByteOffset: group / 4 + l, as: UInt8.self)
            }
        }
    }

    @inline(__always) static func level(_ i: Int, in qs: UnsafeRawPointer) -> UInt8 {
        (qs.byte(i / 128 * 32 + i % 32) >> (2 * (i % 128 / 32))) & 3
    }
}
