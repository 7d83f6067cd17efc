import Architectures
import Foundation
import Inference
import Models

/// Runs the calibration windows through the model's own forward pass, batched so that each pass
/// over the weights serves up to `batchTokens` ids, and collects the router statistics.
public struct Calibrator {
    public let precision: ComputePrecision
    public let batchTokens: Int

    public init(precision: ComputePrecision = .float32, batchTokens: Int = 8192) {
        self.precision = precision
        self.batchTokens = max(batchTokens, 1)
    }

    /// `progress(done, total)` counts layers over all batches.
    public func statistics(of model: Model, data: CalibrationData, modelName: String,
                           progress: ((Int, Int) -> Void)? = nil) throws -> RouterStatistics {
        let collector = StatisticsCollector(model: model.description)
        let forward = ForwardPass(model: model.description, source: model.source, precision: precision)
        let batches = consecutiveGroups(data.windows, limit: batchTokens) { $0.count }
        let layers = model.description.layerCount
        for (index, batch) in batches.enumerated() {
            _ = try forward.hiddenStates(TokenBatch(sequences: batch), observer: collector) { done, _ in
                progress?(index * layers + done, batches.count * layers)
            }
        }
        let provenance = RouterStatistics.Provenance(
            modelFingerprint: try ModelFingerprint.of(model.description, source: model.source), model: modelName,
            architecture: model.description.modelType, sources: data.sources, sequenceLength: data.sequenceLength,
            seed: data.seed, windows: data.windows.count, tokens: data.tokenCount, compute: precision.rawValue)
        return RouterStatistics(provenance: provenance, layers: collector.layers.values.sorted { $0.layer < $1.layer })
    }
}

extension RouterStatistics {
    /// Refuses statistics measured on another model, or whose layers do not match this one's.
    public func check(against model: Model, file: String) throws {
        let fingerprint = try ModelFingerprint.of(model.description, source: model.source)
        guard provenance.modelFingerprint == fingerprint else {
            throw CalibrationError("\(file): measured on another model (\(provenance.model), fingerprint \(provenance.modelFingerprint); this model's is \(fingerprint))")
        }
        for layer in model.description.sparseLayers {
            guard case .sparse(let shape) = model.description.feedForward[layer], let statistics = self.layer(layer),
                  statistics.expertCount == shape.expertCount, statistics.hiddenSize == model.description.hiddenSize else {
                throw CalibrationError("\(file): has no statistics of the right shape for sparse layer \(layer)")
            }
        }
    }
}
