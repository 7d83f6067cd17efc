/// Q8_0 (block_q8_0, 34 bytes per 32 weights): d (half), then 32 int8 levels q; x = d·q with
/// d = max|x| / 127. ggml's quantize_q8_0 takes no imatrix, so importance is ignored here too.
enum Q8_0: BlockFormat {
    static func encode(_ x: UnsafePointer<Float>, count: Int, importance _: UnsafePointer<Float>?,
                       into blocks: UnsafeMutableRawPointer, scratch _: BlockScratch) {
        for block in 0..<count / 32 {
            let xb = x + 32 * block, out = blocks + 34 * block
            var amax: Float = 0
            for j in 0..<32 { amax = Swift.max(amax, abs(xb[j])) }
            let d = amax / 127
            let id: Float = d != 0 ? 1 / d : 0
            out.storeHalf(d, at: 0)
            for j in 0..<32 { out.storeBytes(of: roundedAwayByte(xb[j] * id), toByteOffset: 2 + j, as: UInt8.self) }
        }
    }

    static func decode(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        for block in 0..<count / 32 {
            let b = blocks + 34 * block, yb = y + 32 * block
            let d = b.loadHalf(at: 0)
            for j in 0..<32 { yb[j] = Float(Int8(bitPattern: b.byte(2 + j))) * d }
        }
    }
}

/// The low byte of ggml's `(int8_t)roundf(v)`: half away from zero, computed without the libm
/// call as trunc(v ± pred(0.5)), which equals roundf(v) for every float (the sum cannot round
/// across an integer unless v's fraction is at least one half). Past int32, truncatedByte's value.
@inline(__always) private func roundedAwayByte(_ v: Float) -> UInt8 {
    let nudged = v + Float(signOf: v, magnitudeOf: Float(0.5).nextDown)
    return truncatedByte(nudged)
}
