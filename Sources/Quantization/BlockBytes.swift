/// Little-endian fields of ggml's block structs. Blocks are packed (a Q3_K block is 110 bytes),
/// so nothing inside a row is aligned and every access is an unaligned one.
extension UnsafeMutableRawPointer {
    @inline(__always) func storeHalf(_ value: Float, at offset: Int) {
        storeBytes(of: halfBits(value).littleEndian, toByteOffset: offset, as: UInt16.self)
    }

    @inline(__always) func storeUInt32(_ value: UInt32, at offset: Int) {
        storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt32.self)
    }
}

extension UnsafeRawPointer {
    @inline(__always) func loadHalf(at offset: Int) -> Float {
        floatFromHalf(UInt16(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
    }

    @inline(__always) func loadUInt32(at offset: Int) -> UInt32 {
        UInt32(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inline(__always) func byte(_ offset: Int) -> UInt8 { load(fromByteOffset: offset, as: UInt8.self) }
}

/// IEEE half bits of `value`, rounded to nearest even as GGML_FP32_TO_FP16 rounds (values from
/// 65520 on become infinity, tiny ones half subnormals). Block scales are one or two per block, so
/// Swift's portable conversion costs nothing next to the scale search.
@inline(__always) func halfBits(_ value: Float) -> UInt16 { Float16(value).bitPattern }

@inline(__always) func floatFromHalf(_ bits: UInt16) -> Float { Float(Float16(bitPattern: bits)) }
