import FixtureSupport
import Foundation
import Quantization
import Testing

/// The block formats against ggml itself: Fixtures/records/block-quants.json (made by
/// Fixtures/scripts/record_block_quants.py) holds, for fourteen kinds of rows (44 in all), the bytes llama.cpp's
/// ggml_quantize_chunk wrote with and without an imatrix (the IQ2 types only with one: ggml
/// refuses them without), gguf-py's dequantization of them, and the importance-weighted squared
/// error ggml achieved.
struct BlockFormatTests {
    struct Case {
        let name: String
        let rows: Int, rowLength: Int
        let x: [Float], importance: [Float]
        let results: [String: Any]
    }

    struct Result {
        let bytes: [UInt8], dequantized: [Float], weightedError: Double
    }

    let cases: [Case]

    init() throws {
        let record = try Fixtures.record("block-quants.json")
        cases = record.objects("cases").map { c in
            Case(name: c["name"] as? String ?? "?", rows: c.int("rows"), rowLength: c.int("row_length"),
                 x: Self.floats(c["x"]), importance: Self.floats(c["importance"]), results: c.object("results"))
        }
    }

    static func bytes(_ hex: Any?) -> [UInt8] {
        let digits = Array((hex as? String ?? "").utf8)
        return stride(from: 0, to: digits.count - 1, by: 2).map { UInt8(String(decoding: digits[$0...$0 + 1], as: UTF8.self), radix: 16)! }
    }

    /// Little-endian float32 bytes, bit for bit.
    static func floats(_ hex: Any?) -> [Float] {
        let raw = bytes(hex)
        return stride(from: 0, to: raw.count, by: 4).map { i in
            Float(bitPattern: UInt32(raw[i]) | UInt32(raw[i + 1]) << 8 | UInt32(raw[i + 2]) << 16 | UInt32(raw[i + 3]) << 24)
        }
    }

    /// ggml's result; nil for IQ2 without an imatrix, which ggml refuses to quantize.
    func result(_ c: Case, _ type: GGMLType, imatrix: Bool) -> Result? {
        guard let r = c.results.object(type.name)[imatrix ? "imatrix" : "plain"] as? [String: Any] else { return nil }
        return Result(bytes: Self.bytes(r["bytes"]), dequantized: Self.floats(r["dequantized"]), weightedError: r.double("weighted_error"))
    }

    func encode(_ c: Case, _ type: GGMLType, imatrix: Bool) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: c.rows * type.rowBytes(c.rowLength))
        try c.x.withUnsafeBufferPointer { x in
            try c.importance.withUnsafeBufferPointer { w in
                try out.withUnsafeMutableBytes {
                    try quantizeRows(type, x.baseAddress!, rows: c.rows, rowLength: c.rowLength,
                                     importance: imatrix ? w.baseAddress! : nil, into: $0.baseAddress!)
                }
            }
        }
        return out
    }

    func decode(_ c: Case, _ type: GGMLType, _ bytes: [UInt8]) throws -> [Float] {
        var y = [Float](repeating: .nan, count: c.rows * c.rowLength)
        try bytes.withUnsafeBytes { b in
            try y.withUnsafeMutableBufferPointer {
                try dequantizeRows(type, b.baseAddress!, rows: c.rows, rowLength: c.rowLength, into: $0.baseAddress!)
            }
        }
        return y
    }

    /// Σ_j w_j (x_j − x̂_j)² over all rows, in Double.
    func weightedError(_ c: Case, _ y: [Float], imatrix: Bool) -> Double {
        var total = 0.0
        for (i, (x, x̂)) in zip(c.x, y).enumerated() {
            let w = imatrix ? Double(c.importance[i % c.rowLength]) : 1
            total += w * (Double(x) - Double(x̂)) * (Double(x) - Double(x̂))
        }
        return total
    }

    @Test func recordCoversEveryType() {
        #expect(cases.count >= 12)
        for c in cases { #expect(Set(c.results.keys) == Set(GGMLType.allCases.map(\.name)), "\(c.name)") }
    }

    /// (1) Our decoder on ggml's bytes gives gguf-py's floats, bit for bit.
    @Test(arguments: GGMLType.allCases)
    func decoderMatchesGGUFPy(type: GGMLType) throws {
        for c in cases {
            for imatrix in [false, true] {
                guard let expected = result(c, type, imatrix: imatrix) else {
                    #expect(type.isLattice && !imatrix, "\(type.name) \(c.name) imatrix \(imatrix): no record")
                    continue
                }
                let y = try decode(c, type, expected.bytes)
                #expect(y.map(\.bitPattern) == expected.dequantized.map(\.bitPattern), "\(type.name) \(c.name) imatrix \(imatrix)")
            }
        }
    }

    /// (2) Our encoder does at least as well as ggml on the error ggml minimises (importance
    /// weighted with an imatrix, plain squared error otherwise); for every type but the IQ2
    /// lattices it writes ggml's bytes, row for row (the lattices' search is this tool's own, see
    /// LatticeSuperBlock). (3) Its bytes decode to finite values, all-zero rows to zeros.
    @Test(arguments: GGMLType.allCases)
    func encoderIsNoWorseThanGGML(type: GGMLType) throws {
        var identical = 0, total = 0, ourTotal = 0.0, ggmlTotal = 0.0, ratios: [Double] = []
        for c in cases {
            for imatrix in [false, true] {
                let ggml = result(c, type, imatrix: imatrix)
                let ours = try encode(c, type, imatrix: imatrix)
                let y = try decode(c, type, ours)
                let what = "\(type.name) \(c.name) imatrix \(imatrix)"
                let ourError = weightedError(c, y, imatrix: imatrix)
                #expect(y.allSatisfy { $0.isFinite }, "\(what)")
                for row in 0..<c.rows where c.x[row * c.rowLength..<(row + 1) * c.rowLength].allSatisfy({ $0 == 0 }) {
                    #expect(y[row * c.rowLength..<(row + 1) * c.rowLength].allSatisfy { $0 == 0 }, "\(what) row \(row)")
                }
                guard let ggml else { continue }
                #expect(ourError <= ggml.weightedError * (1 + 1e-5) + 1e-30, "\(what): \(ourError) vs ggml \(ggml.weightedError)")
                ourTotal += ourError
                ggmlTotal += ggml.weightedError
                if ggml.weightedError > 0 { ratios.append(ourError / ggml.weightedError) }
                guard !type.isLattice else { continue }
                let rowBytes = type.rowBytes(c.rowLength)
                for row in 0..<c.rows {
                    total += 1
                    let same = ours[row * rowBytes..<(row + 1) * rowBytes] == ggml.bytes[row * rowBytes..<(row + 1) * rowBytes]
                    #expect(same, "\(what) row \(row): bytes differ from ggml's")
                    identical += same ? 1 : 0
                }
            }
        }
        if type.isLattice {
            let meanRatio = ratios.reduce(0, +) / Double(max(ratios.count, 1))
            print("\(type.name): weighted error \(ourTotal) against ggml's \(ggmlTotal) over the recorded rows; mean ratio \(meanRatio) over \(ratios.count) cases")
        } else {
            print("\(type.name): \(identical) of \(total) recorded rows byte-identical to ggml")
        }
    }
}
