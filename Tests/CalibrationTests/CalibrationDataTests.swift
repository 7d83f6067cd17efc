import Calibration
import FixtureSupport
import Foundation
import Testing
import Tokenizer

struct CalibrationDataTests {
    let tokenizer: Tokenizer
    init() throws { tokenizer = try Tokenizer(contentsOf: Fixtures.url("Fixtures/default-model/tokenizer.json")) }

    func data(_ sources: [CalibrationSourceSpec], samples: Int? = nil, seed: UInt64 = 42, length: Int = 64) throws -> CalibrationData {
        try CalibrationData(sources: sources, tokenizer: tokenizer, sequenceLength: length, samples: samples, seed: seed)
    }

    @Test func windowsAreDrawnByTheSeedWithoutOverlap() throws {
        let source = CalibrationSourceSpec(path: Fixtures.url("Fixtures/text/calibration.txt").path, samples: 20)
        let first = try data([source]), again = try data([source]), other = try data([source], seed: 7)
        #expect(first.windows == again.windows)
        #expect(first.windows != other.windows)
        #expect(first.windows.count == 20 && first.windows.allSatisfy { $0.count == 64 })
        let stream = try tokenizer.encode(String(contentsOf: Fixtures.url("Fixtures/text/calibration.txt"), encoding: .utf8), addSpecialTokens: true)
        for window in first.windows {
            // Each window is the stream at a multiple of the window length.
            let starts = stride(from: 0, through: stream.count - 64, by: 64).filter { Array(stream[$0..<($0 + 64)]) == window }
            #expect(!starts.isEmpty)
        }
        #expect(Set(first.windows.map { $0 }).count == 20)
    }

    @Test func samplesAreSharedBetweenSourcesWithoutACount() throws {
        let path = Fixtures.url("Fixtures/text/calibration.txt").path
        let mixed = try data([CalibrationSourceSpec(path: path, samples: 3), CalibrationSourceSpec(path: path, samples: nil),
                              CalibrationSourceSpec(path: path, samples: nil)], samples: 5)
        #expect(mixed.sources.map(\.windows) == [3, 3, 2])
    }

    @Test func argumentsWithCounts() throws {
        #expect(try CalibrationSourceSpec(argument: "a.txt:12") == CalibrationSourceSpec(path: "a.txt", samples: 12))
        #expect(try CalibrationSourceSpec(argument: "dir:x/a.txt") == CalibrationSourceSpec(path: "dir:x/a.txt", samples: nil))
        #expect(throws: (any Error).self) { _ = try CalibrationSourceSpec(argument: "a.txt:0") }
    }

    @Test func jsonLinesGiveTheirTextFields() throws {
        let directory = try Fixtures.temporaryDirectory()
        let file = directory.appendingPathComponent("data.jsonl")
        let text = try String(contentsOf: Fixtures.url("Fixtures/text/calibration.txt"), encoding: .utf8)
        let lines = text.split(separator: "\n").prefix(400).map { try! JSONSerialization.data(withJSONObject: ["text": String($0)]) }
        try (lines.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "\n") + "\n\n").write(to: file, atomically: true, encoding: .utf8)
        let result = try data([CalibrationSourceSpec(path: file.path, samples: 2)])
        #expect(result.windows.count == 2)

        try "{\"text\": \"fine\"}\n[1, 2]\n".write(to: file, atomically: true, encoding: .utf8)
        #expect(throws: (any Error).self) { _ = try data([CalibrationSourceSpec(path: file.path, samples: 1)], length: 2) }
    }

    @Test func tooShortOrEmptyDataIsRefused() throws {
        let directory = try Fixtures.temporaryDirectory()
        let empty = directory.appendingPathComponent("empty.txt"), short = directory.appendingPathComponent("short.txt")
        try Data().write(to: empty)
        try "a few words".write(to: short, atomically: true, encoding: .utf8)
        for (file, count) in [(empty, 1), (short, 1)] {
            #expect(throws: CalibrationError.self) { _ = try data([CalibrationSourceSpec(path: file.path, samples: count)]) }
        }
        let path = Fixtures.url("Fixtures/text/calibration.txt").path
        #expect(throws: CalibrationError.self) { _ = try data([CalibrationSourceSpec(path: path, samples: 1_000_000)]) }
        #expect(throws: CalibrationError.self) { _ = try data([]) }
    }
}
