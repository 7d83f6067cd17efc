/// The integer codes ("levels") a quantized block stores for its weights, written over an
/// encoded block whose scales stay as they are. Every format decodes weight i as
/// zero_i + level_i · step_i, with zero and step fixed by the block's scales, so a block's grid
/// can be read off the decoder itself (`BlockGrid`), and an algorithm that picks levels one weight
/// at a time (GPTQ) can write them back here.
extension GGMLType {
    /// The codes a level may take (Q8_0's are signed; ggml never writes −128).
    public var levelRange: ClosedRange<Int32> {
        switch self {
        case .q8_0: -127...127
        case .q4_0, .q4_1, .q4_K: 0...15
        case .q5_0, .q5_1, .q5_K: 0...31
        case .q2_K: 0...3
        case .q3_K: 0...7
        case .q6_K: 0...63
        case .f32, .f16, .bf16, .iq2_xxs, .iq2_xs: 0...0  // no per-weight levels (`hasLevelGrid`)
        }
    }

    /// Writes `levels` (one per weight of the block, within `levelRange`) into the block.
    public func storeLevels(_ levels: UnsafePointer<Int32>, into block: UnsafeMutableRawPointer) {
        @inline(__always) func code(_ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: levels[i]) }
        switch self {
        case .q8_0:
            for j in 0..<32 { block.storeBytes(of: Int8(truncatingIfNeeded: levels[j]), toByteOffset: 2 + j, as: Int8.self) }
        case .q4_0, .q4_1:
            let start = self == .q4_0 ? 2 : 4
            for j in 0..<16 { block.storeBytes(of: (code(j) & 0x0F) | (code(j + 16) << 4), toByteOffset: start + j, as: UInt8.self) }
        case .q5_0, .q5_1:
            let high = self == .q5_0 ? 2 : 4
            var qh: UInt32 = 0
            for e in 0..<32 { qh |= UInt32((code(e) >> 4) & 1) << e }
            block.storeUInt32(qh, at: high)
            for j in 0..<16 { block.storeBytes(of: (code(j) & 0x0F) | ((code(j + 16) & 0x0F) << 4), toByteOffset: high + 4 + j, as: UInt8.self) }
        case .q2_K:
            storeTwoBit(code, into: block + 16)
        case .q3_K:
            for byte in 0..<32 {
                var mask: UInt8 = 0
                for bit in 0..<8 { mask |= ((code(32 * bit + byte) >> 2) & 1) << bit }
                block.storeBytes(of: mask, toByteOffset: byte, as: UInt8.self)
            }
            storeTwoBit({ code($0) & 3 }, into: block + 32)
        case .q4_K:
            for half in stride(from: 0, to: 256, by: 64) {
                for l in 0..<32 {
                    block.storeBytes(of: (code(half + l) & 0x0F) | (code(half + l + 32) << 4), toByteOffset: 16 + half / 2 + l, as: UInt8.self)
                }
            }
        case .q5_K:
            for l in 0..<32 {
                var bits: UInt8 = 0
                for k in 0..<4 {
                    bits |= ((code(64 * k + l) >> 4) & 1) << (2 * k)
                    bits |= ((code(64 * k + 32 + l) >> 4) & 1) << (2 * k + 1)
                    block.storeBytes(of: (code(64 * k + l) & 0x0F) | ((code(64 * k + 32 + l) & 0x0F) << 4), toByteOffset: 48 + 32 * k + l, as: UInt8.self)
                }
                block.storeBytes(of: bits, toByteOffset: 16 + l, as: UInt8.self)
            }
        case .q6_K:
            for group in 0..<2 {
                let base = 128 * group, ql = 64 * group, qh = 128 + 32 * group
                for l in 0..<32 {
                    let a = code(base + l), b = code(base + l + 32), c = code(base + l + 64), d = code(base + l + 96)
                    block.storeBytes(of: (a & 0x0F) | ((c & 0x0F) << 4), toByteOffset: ql + l, as: UInt8.self)
                    block.storeBytes(of: (b & 0x0F) | ((d & 0x0F) << 4), toByteOffset: ql + 32 + l, as: UInt8.self)
                    block.storeBytes(of: ((a >> 4) & 3) | (((b >> 4) & 3) << 2) | (((c >> 4) & 3) << 4) | (((d >> 4) & 3) << 6),
                                     toByteOffset: qh + l, as: UInt8.self)
                }
            }
        case .f32, .f16, .bf16, .iq2_xxs, .iq2_xs:
            break
        }
    }

    /// The 2-bit layout of TwoBitPacking, from a level function.
    private func storeTwoBit(_ code: (Int) -> UInt8, into qs: UnsafeMutableRawPointer) {
        for group in stride(from: 0, to: 256, by: 128) {
            for l in 0..<32 {
                let i = group + l
                let byte = (code(i) & 3) | ((code(i + 32) & 3) << 2) | ((code(i + 64) & 3) << 4) | ((code(i + 96) & 3) << 6)
                qs.storeBytes(of: byte, toByteOffset: group / 4 + l, as: UInt8.self)
            }
        }
    }
}

/// One encoded block's grid: weight i can take zero[i] + level · step[i] for the levels in
/// `levelRange`. Read by decoding the block twice, with every level 0 and with every level 1, so
/// it is exactly what the decoder (and llama.cpp) computes.
public struct BlockGrid {
    public let type: GGMLType
    public let zero: UnsafeMutablePointer<Float>
    public let step: UnsafeMutablePointer<Float>
    private let scratch: UnsafeMutableRawPointer
    private let codes: UnsafeMutablePointer<Int32>

    public init(type: GGMLType) {
        self.type = type
        zero = .allocate(capacity: type.blockSize)
        step = .allocate(capacity: type.blockSize)
        scratch = .allocate(byteCount: type.bytesPerBlock, alignment: 16)
        codes = .allocate(capacity: type.blockSize)
    }

    public func deallocate() {
        zero.deallocate()
        step.deallocate()
        scratch.deallocate()
        codes.deallocate()
    }

    /// Reads the grid of `block` (an encoded block of `type`).
    public func read(_ block: UnsafeRawPointer) {
        guard let format = type.blockFormat else { return }
        let size = type.blockSize
        scratch.copyMemory(from: block, byteCount: type.bytesPerBlock)
        codes.update(repeating: 0, count: size)
        type.storeLevels(codes, into: scratch)
        format.decode(UnsafeRawPointer(scratch), count: size, into: zero)
        codes.update(repeating: 1, count: size)
        type.storeLevels(codes, into: scratch)
        format.decode(UnsafeRawPointer(scratch), count: size, into: step)
        for i in 0..<size { step[i] -= zero[i] }
    }
}
