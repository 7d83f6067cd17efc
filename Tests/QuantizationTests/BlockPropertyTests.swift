import Foundation
@testable import Quantization
import Testing

/// Properties of the block formats that hold without ggml at hand: the type table, the error
/// each format's step size allows, zeros, the errors, and that parallel encoding is row-local.
/// `@testable` for the scalar helpers whose rounding the formats depend on.
struct BlockPropertyTests {
    static let quantized = GGMLType.allCases.filter(\.isQuantized)

    /// A seeded normal sample (Box–Muller over a 64-bit LCG), so failures reproduce.
    static func normals(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed
        func uniform() -> Double {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return (Double(state >> 11) + 0.5) / Double(1 << 53)
        }
        return (0..<count).map { _ in Float((-2 * log(uniform())).squareRoot() * cos(2 * Double.pi * uniform())) }
    }

    static func encode(_ type: GGMLType, _ x: [Float], rows: Int, importance: [Float]?) throws -> [UInt8] {
        let rowLength = x.count / rows
        var bytes = [UInt8](repeating: 0xAA, count: rows * type.rowBytes(rowLength))
        try x.withUnsafeBufferPointer { source in
            try bytes.withUnsafeMutableBytes { out in
                if let importance {
                    try importance.withUnsafeBufferPointer {
                        try quantizeRows(type, source.baseAddress!, rows: rows, rowLength: rowLength, importance: $0.baseAddress!,
                                         into: out.baseAddress!)
                    }
                } else {
                    try quantizeRows(type, source.baseAddress!, rows: rows, rowLength: rowLength, importance: nil, into: out.baseAddress!)
                }
            }
        }
        return bytes
    }

    static func decode(_ type: GGMLType, _ bytes: [UInt8], rows: Int, rowLength: Int) throws -> [Float] {
        var y = [Float](repeating: .nan, count: rows * rowLength)
        try bytes.withUnsafeBytes { source in
            try y.withUnsafeMutableBufferPointer {
                try dequantizeRows(type, source.baseAddress!, rows: rows, rowLength: rowLength, into: $0.baseAddress!)
            }
        }
        return y
    }

    @Test func typeTable() {
        #expect(GGMLType.allCases.map(\.rawValue) == [0, 1, 2, 3, 6, 7, 8, 10, 11, 12, 13, 14, 16, 17, 30])
        for type in GGMLType.allCases {
            #expect(GGMLType(name: type.name) == type)
            #expect(GGMLType(name: type.name.lowercased()) == type)
            #expect(type.rowBytes(512) == 512 / type.blockSize * type.bytesPerBlock)
        }
        #expect(GGMLType(name: "Q4_K_M") == nil)
        let bits: [GGMLType: Double] = [.f32: 32, .f16: 16, .bf16: 16, .q8_0: 8.5, .q4_0: 4.5, .q4_1: 5, .q5_0: 5.5, .q5_1: 6,
                                        .q2_K: 2.625, .q3_K: 3.4375, .q4_K: 4.5, .q5_K: 5.5, .q6_K: 6.5625, .iq2_xxs: 2.0625, .iq2_xs: 2.3125]
        for (type, expected) in bits { #expect(type.bitsPerWeight == expected, "\(type.name)") }
    }

    /// The helpers ggml's rounding rests on: nearest_int rounds half to even; the half
    /// conversion rounds to nearest even, overflows to infinity and keeps subnormals.
    @Test func scalarRounding() {
        #expect([0.5, 1.5, 2.5, -0.5, -1.5, 3.49, -3.51].map { nearestInt(Float($0)) } == [0, 2, 2, 0, -2, 3, -4])
        #expect(halfBits(1 + 1 / 2048) == 0x3C00)  // halfway between 1 and the next half: even
        #expect(halfBits(1 + 3 / 2048) == 0x3C02)
        #expect(halfBits(65520) == 0x7C00)
        #expect(halfBits(65519) == 0x7BFF)
        #expect(halfBits(Float(bitPattern: 0x3300_0000)) == 0x0000)  // 2^-25: halfway to the smallest subnormal
        #expect(halfBits(Float(bitPattern: 0x3300_0001)) == 0x0001)
        #expect(halfBits(-0.0) == 0x8000)
        // The literals of ggml's formulas, as the C compiler rounds them.
        #expect([Float(0.1), 0.05, 0.9, 1e-15].map(\.bitPattern) == [0x3DCC_CCCD, 0x3D4C_CCCD, 0x3F66_6666, 0x2690_1D7D])
    }

    /// Worst |x − x̂| relative to the rows' largest magnitude, per format, on normal rows: the
    /// formats' step sizes bound it (a 4-bit block of ±3σ has steps of about 6σ/15). With an
    /// imatrix the error moves to the columns that matter less, so the worst case is larger. The
    /// IQ2 lattices' magnitudes are 8, 25 and 43 steps with a 4-bit scale per sub-block and a
    /// sign that may be forced (here 0.58–0.61 with importance; ggml's own IQ2 files reach
    /// 1.24–1.36 on the recorded normal rows with their imatrix).
    @Test(arguments: quantized)
    func roundTripErrorIsBounded(type: GGMLType) throws {
        let bound: [GGMLType: Float] = [.q8_0: 0.005, .q6_K: 0.055, .q5_0: 0.07, .q5_1: 0.045, .q5_K: 0.055, .q4_0: 0.16,
                                        .q4_1: 0.12, .q4_K: 0.12, .q3_K: 0.23, .q2_K: 0.42, .iq2_xs: 0.65, .iq2_xxs: 0.65]
        let rows = 4, rowLength = 512
        let x = Self.normals(rows * rowLength, seed: 7)
        let importance = Self.normals(rowLength, seed: 8).map { $0 * $0 + 0.1 }
        for weights in [nil, importance] {
            let y = try Self.decode(type, try Self.encode(type, x, rows: rows, importance: weights), rows: rows, rowLength: rowLength)
            let largest = x.map(abs).max()!
            let worst = zip(x, y).map { abs($0 - $1) }.max()!
            #expect(worst / largest < bound[type]!, "\(type.name) importance \(weights != nil): \(worst / largest)")
        }
    }

    @Test(arguments: GGMLType.allCases)
    func zerosStayZeros(type: GGMLType) throws {
        let rowLength = 256
        let x = [Float](repeating: 0, count: 2 * rowLength)
        for weights in [nil, [Float](repeating: 1, count: rowLength)] {
            let y = try Self.decode(type, try Self.encode(type, x, rows: 2, importance: weights), rows: 2, rowLength: rowLength)
            #expect(y.allSatisfy { $0 == 0 }, "\(type.name)")
        }
    }

    /// Rows split across threads encode as each row alone does.
    @Test(arguments: [GGMLType.q4_K, .q6_K, .q5_0, .iq2_xxs, .f16])
    func parallelEncodingIsRowLocal(type: GGMLType) throws {
        let rows = 64, rowLength = 2048
        let x = Self.normals(rows * rowLength, seed: 3)
        let importance = Self.normals(rowLength, seed: 4).map { $0 * $0 }
        let whole = try Self.encode(type, x, rows: rows, importance: importance)
        let rowBytes = type.rowBytes(rowLength)
        for row in [0, 17, 63] {
            let alone = try Self.encode(type, Array(x[row * rowLength..<(row + 1) * rowLength]), rows: 1, importance: importance)
            #expect(Array(whole[row * rowBytes..<(row + 1) * rowBytes]) == alone, "\(type.name) row \(row)")
        }
        let y = try Self.decode(type, whole, rows: rows, rowLength: rowLength)
        for row in [0, 40] {
            let alone = try Self.decode(type, Array(whole[row * rowBytes..<(row + 1) * rowBytes]), rows: 1, rowLength: rowLength)
            #expect(Array(y[row * rowLength..<(row + 1) * rowLength]) == alone)
        }
    }

    @Test func errors() throws {
        #expect(throws: QuantizationError.rowLengthNotMultipleOfBlock(type: .q4_K, rowLength: 1408)) {
            try Self.encode(.q4_K, [Float](repeating: 1, count: 1408), rows: 1, importance: nil)
        }
        #expect(throws: QuantizationError.rowLengthNotMultipleOfBlock(type: .q8_0, rowLength: 48)) {
            try Self.decode(.q8_0, [UInt8](repeating: 0, count: 68), rows: 1, rowLength: 48)
        }
        var x = Self.normals(8 * 256, seed: 1)
        x[5 * 256 + 9] = .nan
        x[6 * 256] = .infinity
        for type in [GGMLType.q4_K, .f32] {
            #expect(throws: QuantizationError.nonFiniteInput(row: 5, column: 9)) { try Self.encode(type, x, rows: 8, importance: nil) }
        }
        var importance = [Float](repeating: 1, count: 256)
        importance[3] = -1
        #expect(throws: QuantizationError.invalidImportance(column: 3, value: -1)) {
            try Self.encode(.q2_K, Self.normals(256, seed: 2), rows: 1, importance: importance)
        }
        #expect(QuantizationError.nonFiniteInput(row: 5, column: 9).description == "row 5 has a non-finite value at column 9")
    }
}
