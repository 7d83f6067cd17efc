/// Q8_0 (block_q8_0, 34 bytes per 32 weights): d (half), then 32 int8 levels q; x = d·q with
/// d = max|x| / 127. ggml's quantize_q8_0 takes no imatrix, so importance is ignored here too.
enum Q8_0: BlockFormat {
    static func encode(_ x: UnsafePointer<Float>, count: Int, importance _: UnsafePointer<Float>?,
                       into blocks: UnsafeMutableRawPointer, scratch _: BlockScratch) {
        for block in 0..<count / 32 {
            let xb = x + 32 * block, out = blocks + 34 * block
            var largest = Self.lanes(xb, 0).magnitude
            for k in 1..<4 {
                let m = Self.lanes(xb, k).magnitude
                largest.replace(with: m, where: m .> largest)
            }
            let amax = largestLane(largest)
            let d = amax / 127
            let id: Float = d != 0 ? 1 / d : 0
            out.storeHalf(d, at: 0)
            guard id.isFinite else {
                // A subnormal d: its reciprocal overflows, and x·id leaves int32's range.
                for j in 0..<32 { out.storeBytes(of: roundedAwayByte(xb[j] * id), toByteOffset: 2 + j, as: UInt8.self) }
                continue
            }
            for k in 0..<4 {
                (out + 2 + 8 * k).storeBytes(of: roundedAway(Self.lanes(xb, k) * id), as: SIMD8<Int8>.self)
            }
        }
    }

    @inline(__always) private static func lanes(_ x: UnsafePointer<Float>, _ k: Int) -> SIMD8<Float> {
        UnsafeRawPointer(x + 8 * k).loadUnaligned(as: SIMD8<Float>.self)
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

/// roundf in every lane, for |v| ≤ 2²² (here |v| ≤ 127 and a rounding): adding 1.5·2²³ rounds
/// the magnitude half to even and leaves it in the low mantissa bits; an exact half that went
/// down is moved up (away from zero), and the sign put back.
@inline(__always) private func roundedAway(_ v: SIMD8<Float>) -> SIMD8<Int8> {
    let magnitude = v.magnitude
    let shifted = magnitude + SIMD8<Float>(repeating: 12_582_912)
    let even = shifted - SIMD8<Float>(repeating: 12_582_912)
    var level = unsafeBitCast(shifted, to: SIMD8<Int32>.self) & 0x003F_FFFF
    level.replace(with: level &+ 1, where: magnitude - even .== SIMD8<Float>(repeating: 0.5))
    level.replace(with: 0 &- level, where: v .< SIMD8<Float>())
    return SIMD8<Int8>(truncatingIfNeeded: level)
}

/// The largest lane, by blends (the standard reduction goes lane by lane).
@inline(__always) private func largestLane(_ v: SIMD8<Float>) -> Float {
    var four = v.lowHalf
    four.replace(with: v.highHalf, where: v.highHalf .> four)
    var two = four.lowHalf
    two.replace(with: four.highHalf, where: four.highHalf .> two)
    return Swift.max(two[0], two[1])
}
