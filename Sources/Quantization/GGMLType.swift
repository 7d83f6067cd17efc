/// ggml's tensor types a GGUF file can hold; raw values are ggml's enum ggml_type ids.
public enum GGMLType: UInt32, CaseIterable, Sendable {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, iq2_xxs = 16, iq2_xs = 17, bf16 = 30
}

extension GGMLType {
    /// llama.cpp's spelling, as gguf-py's GGMLQuantizationType and llama-quantize print it.
    public var name: String {
        switch self {
        case .f32: "F32"
        case .f16: "F16"
        case .bf16: "BF16"
        case .q4_0: "Q4_0"
        case .q4_1: "Q4_1"
        case .q5_0: "Q5_0"
        case .q5_1: "Q5_1"
        case .q8_0: "Q8_0"
        case .q2_K: "Q2_K"
        case .q3_K: "Q3_K"
        case .q4_K: "Q4_K"
        case .q5_K: "Q5_K"
        case .q6_K: "Q6_K"
        case .iq2_xxs: "IQ2_XXS"
        case .iq2_xs: "IQ2_XS"
        }
    }

    /// The type with this name, ignoring case ("q4_k" is Q4_K).
    public init?(name: String) {
        let wanted = name.uppercased()
        guard let match = GGMLType.allCases.first(where: { $0.name == wanted }) else { return nil }
        self = match
    }

    /// Weights per block: 1 for the float types, 32 for the legacy quants, 256 (QK_K) for k-quants.
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16: 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0: 32
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .iq2_xxs, .iq2_xs: 256
        }
    }

    /// sizeof(block_*) in ggml-common.h.
    public var bytesPerBlock: Int {
        switch self {
        case .f32: 4
        case .f16, .bf16: 2
        case .q4_0: 18
        case .q4_1: 20
        case .q5_0: 22
        case .q5_1: 24
        case .q8_0: 34
        case .q2_K: 84
        case .q3_K: 110
        case .q4_K: 144
        case .q5_K: 176
        case .q6_K: 210
        case .iq2_xxs: 66
        case .iq2_xs: 74
        }
    }

    public var bitsPerWeight: Double { 8 * Double(bytesPerBlock) / Double(blockSize) }

    /// Bytes of one row of `rowLength` weights (ggml_row_size); the caller checks that
    /// `rowLength` is a multiple of `blockSize`.
    public func rowBytes(_ rowLength: Int) -> Int { rowLength / blockSize * bytesPerBlock }

    public var isQuantized: Bool { blockSize > 1 }

    /// Whether each weight is an integer level on its block's affine grid (every quantized type
    /// but the lattice formats, whose weights come eight at a time from a codebook): what GPTQ's
    /// one-weight-at-a-time rounding needs.
    public var hasLevelGrid: Bool { isQuantized && !isLattice }

    /// The IQ2 formats: groups of eight weights coded as one point of an E8-derived lattice.
    public var isLattice: Bool { self == .iq2_xxs || self == .iq2_xs }
}
