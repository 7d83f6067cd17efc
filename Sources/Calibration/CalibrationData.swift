import Checkpoint
import Foundation
import Tokenizer

/// One `--data FILE[:N]` argument: a plain-text or JSONL file (one object with a "text" string
/// per line) and how many windows to draw from it (nil: decided by `--samples`, or all).
public struct CalibrationSourceSpec: Sendable, Equatable, Codable {
    public let path: String
    public let samples: Int?

    public init(path: String, samples: Int?) {
        self.path = path
        self.samples = samples
    }

    /// Parses `FILE` or `FILE:N` (a path may itself contain colons; only a trailing `:digits` counts).
    public init(argument: String) throws {
        if let colon = argument.lastIndex(of: ":"), argument.index(after: colon) < argument.endIndex,
           argument[argument.index(after: colon)...].allSatisfy(\.isNumber) {
            guard let count = Int(argument[argument.index(after: colon)...]), count > 0 else {
                throw CalibrationError("--data \(argument): the sample count must be a positive integer")
            }
            self.init(path: String(argument[..<colon]), samples: count)
        } else {
            self.init(path: argument, samples: nil)
        }
    }
}

/// The calibration windows: token windows of `sequenceLength` ids drawn from each source's id
/// stream (its documents tokenized with special tokens and laid end to end) at non-overlapping
/// positions chosen by a seeded generator, so a seed names the same windows everywhere.
public struct CalibrationData: Sendable {
    public struct Source: Sendable, Codable {
        public let path: String
        /// Ids in the source's stream and windows drawn from it.
        public let tokens: Int
        public let windows: Int
    }

    public let sequenceLength: Int
    public let seed: UInt64
    public let sources: [Source]
    /// The windows, every source's in stream order, one after another.
    public let windows: [[Int]]

    public var tokenCount: Int { windows.reduce(0) { $0 + $1.count } }

    /// - Parameter samples: total windows for the sources without a count of their own, shared
    ///   evenly; nil takes every window of those sources.
    public init(sources specs: [CalibrationSourceSpec], tokenizer: Tokenizer, sequenceLength: Int,
                samples: Int?, seed: UInt64) throws {
        guard !specs.isEmpty else { throw CalibrationError("no calibration data: pass --data FILE[:N]") }
        guard sequenceLength >= 2 else { throw CalibrationError("--seq-len \(sequenceLength): must be at least 2") }
        self.sequenceLength = sequenceLength
        self.seed = seed
        let uncounted = specs.filter { $0.samples == nil }.count
        var generator = SeededRandom(seed: seed)
        var sources: [Source] = []
        var windows: [[Int]] = []
        for (index, spec) in specs.enumerated() {
            let ids = try Self.tokenStream(spec.path, tokenizer: tokenizer)
            let starts = Array(stride(from: 0, through: ids.count - sequenceLength, by: sequenceLength))
            guard !starts.isEmpty else {
                throw CalibrationError("\(spec.path): \(ids.count) token(s), too short for one window of --seq-len \(sequenceLength)")
            }
            let wanted: Int
            if let count = spec.samples {
                wanted = count
            } else if let samples {
                // The first sources take the remainder, so the counts add up to --samples.
                let position = specs[..<index].filter { $0.samples == nil }.count
                wanted = samples / uncounted + (position < samples % uncounted ? 1 : 0)
            } else {
                wanted = starts.count
            }
            guard wanted <= starts.count else {
                throw CalibrationError("\(spec.path): \(ids.count) tokens give \(starts.count) windows of \(sequenceLength), but \(wanted) were asked for")
            }
            guard wanted > 0 else { continue }
            let chosen = generator.sample(starts, count: wanted).sorted()
            windows += chosen.map { Array(ids[$0..<($0 + sequenceLength)]) }
            sources.append(Source(path: spec.path, tokens: ids.count, windows: wanted))
        }
        guard !windows.isEmpty else { throw CalibrationError("no calibration windows: --samples is smaller than the number of sources") }
        self.sources = sources
        self.windows = windows
    }

    /// Windows the caller already has (a recipe replaying another run, a test's recorded ids).
    public init(windows: [[Int]], sources: [Source], sequenceLength: Int, seed: UInt64) {
        self.windows = windows
        self.sources = sources
        self.sequenceLength = sequenceLength
        self.seed = seed
    }

    /// A source's documents tokenized (special tokens added to each) and concatenated.
    static func tokenStream(_ path: String, tokenizer: Tokenizer) throws -> [Int] {
        let data = try RegularFile.read(path)
        guard let text = String(validating: data, as: UTF8.self) else {
            throw CalibrationError("\(path): not valid UTF-8 text")
        }
        let documents = (path.hasSuffix(".jsonl") || path.hasSuffix(".ndjson") ? try jsonLinesTexts(text, path: path) : [text])
            .filter { !$0.allSatisfy(\.isWhitespace) }
        guard !documents.isEmpty else { throw CalibrationError("\(path): no text to calibrate on") }
        return try documents.flatMap { try tokenizer.encode($0, addSpecialTokens: true) }
    }

    /// The "text" field of every non-empty line.
    static func jsonLinesTexts(_ content: String, path: String) throws -> [String] {
        var texts: [String] = []
        for (number, line) in content.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            guard !line.allSatisfy(\.isWhitespace) else { continue }
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let text = object["text"] as? String else {
                throw CalibrationError("\(path):\(number + 1): expected a JSON object with a \"text\" string")
            }
            texts.append(text)
        }
        return texts
    }
}

/// Calibration input that cannot be used, named by file.
public struct CalibrationError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
