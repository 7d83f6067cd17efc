import Calibration
import GGUF

/// Importance weights from a statistics file: for a routed expert's gate and up rows, the mean
/// square of each input column over the tokens routed to that expert (the diagonal of its XᵀX,
/// what llama.cpp's imatrix stores per expert slice). Other tensors' inputs are not in the file,
/// so they are rounded without weights.
public struct ExpertImportance: Sendable {
    private let layers: [Int: LayerStatistics]

    public init(statistics: RouterStatistics) {
        layers = Dictionary(uniqueKeysWithValues: statistics.layers.map { ($0.layer, $0) })
    }

    public func weights(for tensor: GGUFTensorPlan, slice: Int) -> [Float]? {
        guard [.expertGate, .expertUp].contains(tensor.role), let layer = tensor.layer, let statistics = layers[layer],
              slice < statistics.expertCount, statistics.hiddenSize == tensor.rowLength else { return nil }
        let tokens = statistics[.counts][slice]
        guard tokens > 0 else { return nil }
        let start = slice * statistics.hiddenSize
        return statistics.inputSquareSum[start..<(start + statistics.hiddenSize)].map { Float($0 / tokens) }
    }
}
