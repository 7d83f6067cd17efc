import Foundation
import Tokenizer

/// Everything `calibrate` measures, with what it was measured on: the statistics file's content.
public struct RouterStatistics: Sendable {
    public struct Provenance: Sendable, Codable, Equatable {
        /// ModelFingerprint of the model measured.
        public var modelFingerprint: String
        public var model: String
        public var architecture: String
        public var sources: [CalibrationData.Source]
        public var sequenceLength: Int
        public var seed: UInt64
        public var windows: Int
        public var tokens: Int
        public var compute: String

        enum CodingKeys: String, CodingKey {
            case model, architecture, sources, seed, windows, tokens, compute
            case modelFingerprint = "model_fingerprint", sequenceLength = "seq_len"
        }

        public static func == (lhs: Provenance, rhs: Provenance) -> Bool {
            lhs.modelFingerprint == rhs.modelFingerprint && lhs.model == rhs.model && lhs.sequenceLength == rhs.sequenceLength
                && lhs.seed == rhs.seed && lhs.windows == rhs.windows && lhs.tokens == rhs.tokens
                && lhs.sources.map(\.path) == rhs.sources.map(\.path)
        }
    }

    public var provenance: Provenance
    /// Sparse layers in order.
    public var layers: [LayerStatistics]

    public init(provenance: Provenance, layers: [LayerStatistics]) {
        self.provenance = provenance
        self.layers = layers
    }

    public func layer(_ index: Int) -> LayerStatistics? { layers.first { $0.layer == index } }
}

extension CalibrationData {
    /// The windows a statistics file was measured on, drawn again from its sources (same files,
    /// counts, window length and seed give the same windows), for methods that need the tokens
    /// themselves rather than the sums.
    public init(replaying provenance: RouterStatistics.Provenance, tokenizer: Tokenizer) throws {
        try self.init(sources: provenance.sources.map { CalibrationSourceSpec(path: $0.path, samples: $0.windows) },
                      tokenizer: tokenizer, sequenceLength: provenance.sequenceLength, samples: nil, seed: provenance.seed)
    }
}
