import Foundation
@testable import Quantization
import Testing

/// `storeLevels` and `BlockGrid` against the decoders: reading an encoded block's grid and its
/// levels back, then writing those levels over the block, must give the encoder's bytes exactly.
struct BlockLevelsTests {
    static let quantized: [GGMLType] = GGMLType.allCases.filter(\.hasLevelGrid)

    @Test(arguments: quantized) func levelsReadFromTheGridRewriteTheSameBytes(type: GGMLType) throws {
        var generator = SystemRandomNumberGenerator()
        let width = 512, rows = 8
        for scale in [Float(1), 1e-3, 40] {
            let values = (0..<(rows * width)).map { _ in Float.random(in: -1...1, using: &generator) * scale * (Bool.random() ? 1 : 3) }
            var encoded = [UInt8](repeating: 0, count: rows * type.rowBytes(width))
            try values.withUnsafeBufferPointer { source in
                try encoded.withUnsafeMutableBytes {
                    try quantizeRows(type, source.baseAddress!, rows: rows, rowLength: width, importance: nil, into: $0.baseAddress!)
                }
            }
            var decoded = [Float](repeating: 0, count: values.count)
            try encoded.withUnsafeBytes { bytes in
                try decoded.withUnsafeMutableBufferPointer {
                    try dequantizeRows(type, bytes.baseAddress!, rows: rows, rowLength: width, into: $0.baseAddress!)
                }
            }
            let grid = BlockGrid(type: type)
            defer { grid.deallocate() }
            var rewritten = encoded
            let levels = UnsafeMutablePointer<Int32>.allocate(capacity: type.blockSize)
            defer { levels.deallocate() }
            for block in 0..<(rows * width / type.blockSize) {
                rewritten.withUnsafeMutableBytes { bytes in
                    let start = bytes.baseAddress! + block * type.bytesPerBlock
                    grid.read(UnsafeRawPointer(start))
                    for i in 0..<type.blockSize {
                        let y = decoded[block * type.blockSize + i]
                        let level = grid.step[i] == 0 ? 0 : Int32(((y - grid.zero[i]) / grid.step[i]).rounded())
                        levels[i] = min(max(level, type.levelRange.lowerBound), type.levelRange.upperBound)
                        // The grid reproduces the decoder's value for that level.
                        #expect(abs(grid.zero[i] + Float(levels[i]) * grid.step[i] - y) <= 1e-5 * max(abs(y), scale), "\(type) block \(block) weight \(i)")
                    }
                    // Levels the decoded value cannot tell apart (a zero step) are any; keep the stored ones.
                    guard (0..<type.blockSize).allSatisfy({ grid.step[$0] != 0 }) else { return }
                    type.storeLevels(levels, into: start)
                }
            }
            #expect(rewritten == encoded, "\(type) at scale \(scale)")
        }
    }
}
