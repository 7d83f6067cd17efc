/// The 12-byte scales field of Q4_K and Q5_K: eight 6-bit sub-block scales and eight 6-bit mins.
/// Bytes 0–3 hold scales 0–3 and bytes 4–7 mins 0–3 in their low 6 bits; scales and mins 4–7
/// keep their low nibbles in bytes 8–11 (scale low, min high) and their top two bits in the top
/// bits of bytes 0–3 (scales) and 4–7 (mins).
enum PackedScales {
    /// Writes sub-block `j`'s levels the way ggml does, in the order j = 0…7: bytes 0–7 are
    /// assigned for j < 4 and only OR-ed afterwards, so a level above 63 spills as in ggml.
    @inline(__always) static func store(_ j: Int, scale: UInt8, min: UInt8, into s: UnsafeMutableRawPointer) {
        if j < 4 {
            s.storeBytes(of: scale, toByteOffset: j, as: UInt8.self)
            s.storeBytes(of: min, toByteOffset: j + 4, as: UInt8.self)
        } else {
            s.storeBytes(of: (scale & 0x0F) | ((min & 0x0F) << 4), toByteOffset: j + 4, as: UInt8.self)
            s.storeBytes(of: s.load(fromByteOffset: j - 4, as: UInt8.self) | ((scale >> 4) << 6), toByteOffset: j - 4, as: UInt8.self)
            s.storeBytes(of: s.load(fromByteOffset: j, as: UInt8.self) | ((min >> 4) << 6), toByteOffset: j, as: UInt8.self)
        }
    }

    /// get_scale_min_k4.
    @inline(__always) static func load(_ j: Int, from s: UnsafeRawPointer) -> (scale: UInt8, min: UInt8) {
        if j < 4 {
            return (s.byte(j) & 63, s.byte(j + 4) & 63)
        }
        return ((s.byte(j + 4) & 0x0F) | ((s.byte(j - 4) >> 6) << 4), (s.byte(j + 4) >> 4) | ((s.byte(j) >> 6) << 4))
    }
}
