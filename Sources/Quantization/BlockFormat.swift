/// One of ggml's block formats: how a row of floats becomes blocks and back. Rows are whole
/// blocks (the caller checks the length), and a row's blocks are consecutive, as in ggml.
protocol BlockFormat: Sendable {
    /// Encodes `count` floats into count / blockSize blocks. `importance` holds `count` imatrix
    /// weights for the row's columns, or is nil for ggml's path without an imatrix.
    static func encode(_ x: UnsafePointer<Float>, count: Int, importance: UnsafePointer<Float>?,
                       into blocks: UnsafeMutableRawPointer, scratch: BlockScratch)
    static func decode(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>)
}

/// A format whose weights come eight at a time from a codebook (the IQ2 lattices) rather than
/// one integer level each: GPTQ rounds such a block group by group, at the scales its encoding
/// chose.
protocol LatticeBlockFormat: BlockFormat {
    /// Replaces group `group` (weights 8·group…8·group+7 of the 256) of an encoded block with the
    /// point nearest `x` under `weights` at the block's scale for it; writes the decoded group.
    static func roundGroup(_ block: UnsafeMutableRawPointer, group: Int, _ x: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                           decoded: UnsafeMutablePointer<Float>)
}

extension GGMLType {
    /// The quantized formats' codecs; the float types go through the Tensors conversions.
    var blockFormat: (any BlockFormat.Type)? {
        switch self {
        case .f32, .f16, .bf16: nil
        case .q4_0: Q4_0.self
        case .q4_1: Q4_1.self
        case .q5_0: Q5_0.self
        case .q5_1: Q5_1.self
        case .q8_0: Q8_0.self
        case .q2_K: Q2_K.self
        case .q3_K: Q3_K.self
        case .q4_K: Q4_K.self
        case .q5_K: Q5_K.self
        case .q6_K: Q6_K.self
        case .iq2_xxs: IQ2_XXS.self
        case .iq2_xs: IQ2_XS.self
        }
    }
}

/// Working memory for one block's search (ggml keeps these arrays on its stack), allocated once
/// per worker so that encoding a block allocates nothing.
struct BlockScratch {
    /// Unsigned levels of one super-block (QK_K = 256).
    let levels: UnsafeMutablePointer<UInt8>
    /// Signed levels of one super-block, for the formats ggml keeps in int8_t.
    let signedLevels: UnsafeMutablePointer<Int8>
    /// The levels of the scales being tried (ggml's Laux, eight trials at once), up to 32.
    let trial: UnsafeMutablePointer<Lanes>
    /// Per-weight error weights of one sub-block (up to 32).
    let weights: UnsafeMutablePointer<Float>
    /// Per-sub-block scales, mins and weight sums (up to 16 sub-blocks).
    let scales: UnsafeMutablePointer<Float>
    let mins: UnsafeMutablePointer<Float>
    let weightSums: UnsafeMutablePointer<Float>
    /// The sub-block scales and mins quantized against the super-block's scale.
    let scaleLevels: UnsafeMutablePointer<UInt8>
    let minLevels: UnsafeMutablePointer<UInt8>
    let signedScaleLevels: UnsafeMutablePointer<Int8>
    /// Per-weight error weights of a whole super-block (256), for the searches that take its
    /// sub-blocks eight at a time (asymmetricScales), with those sub-blocks' values and weights
    /// transposed into lanes (up to 32 rows).
    let blockWeights: UnsafeMutablePointer<Float>
    let laneValues: UnsafeMutablePointer<Lanes>
    let laneWeights: UnsafeMutablePointer<Lanes>

    private let storage: UnsafeMutableRawPointer

    init() {
        let floats = 32 + 3 * 16, bytes = 256 + 256 + 3 * 16
        storage = .allocate(byteCount: floats * 4 + bytes, alignment: 16)
        let f = storage.bindMemory(to: Float.self, capacity: floats)
        weights = f
        scales = f + 32
        mins = f + 48
        weightSums = f + 64
        let b = storage + floats * 4
        levels = b.bindMemory(to: UInt8.self, capacity: 256)
        signedLevels = (b + 256).bindMemory(to: Int8.self, capacity: 256)
        scaleLevels = (b + 512).bindMemory(to: UInt8.self, capacity: 16)
        minLevels = (b + 528).bindMemory(to: UInt8.self, capacity: 16)
        signedScaleLevels = (b + 544).bindMemory(to: Int8.self, capacity: 16)
        trial = .allocate(capacity: 32)
        blockWeights = .allocate(capacity: 256)
        laneValues = .allocate(capacity: 32)
        laneWeights = .allocate(capacity: 32)
    }

    func deallocate() {
        storage.deallocate()
        trial.deallocate()
        blockWeights.deallocate()
        laneValues.deallocate()
        laneWeights.deallocate()
    }
}

/// The low byte of C's float-to-integer conversion as x86-64 performs it (cvttss2si: truncate,
/// and 0x80000000 for NaN, infinities and values out of int32 range), which is what ggml's
/// `(int8_t)` and `(uint8_t)` casts of a float compile to. Out-of-range values arise only when a
/// block's scale underflows (subnormal inputs), where ggml's formulas divide by nearly zero.
@inline(__always) func truncatedByte(_ value: Float) -> UInt8 {
    guard value > -2_147_483_648, value < 2_147_483_648 else { return 0 }
    return UInt8(truncatingIfNeeded: Int32(value))
}
