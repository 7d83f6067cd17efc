import Architectures
import Calibration
import GGUF
import Inference
import Models
import Quantization
import Tensors

/// GPTQ for a whole model, one decoder layer at a time: the calibration windows' residual
/// streams are kept between layers (tokens × hidden floats), and before a layer's tensors are
/// written, that layer alone is run on them while InputHessians sums each weight matrix's
/// input Hessian (an expert's over its routed tokens). So memory holds one layer's Hessians,
/// never the model's. With `sequential` (the default, as GPTQ's reference implementation), each
/// layer's streams are then recomputed through its quantized weights (what they decode to), so
/// the next layer is fitted to the inputs it will see in the quantized model; without it the
/// streams advance through the original weights and the model is run once in all.
///
/// A matrix whose input met fewer than `minimumTokens(rowLength)` tokens (an expert the router
/// rarely picks) would get a Hessian of too low a rank to trust: it is rounded with importance
/// weights instead (its Hessian's diagonal), and reported. The embedding is a lookup and is
/// rounded without weights, as llama.cpp does.
public final class LayerwiseGPTQ: TensorQuantizer {
    public static func minimumTokens(rowLength: Int) -> Int { max(64, rowLength / 4) }

    let model: Model
    let forward: ForwardPass
    let batches: [TokenBatch]
    let states: [FloatBuffer]
    let options: GPTQOptions
    let sequential: Bool
    let progress: ((Int, Int) -> Void)?
    private var hessians: InputHessians?
    private var nextLayer = 0
    /// With `sequential`: the layer just measured, its input streams, and its quantized tensors.
    private let overlay: QuantizedOverlay
    private let quantizedForward: ForwardPass
    private var pending: (layer: Int, inputs: [FloatBuffer])?
    /// Per source tensor: the relative dampening GPTQ needed.
    public private(set) var dampening: [String: Double] = [:]

    public init(model: Model, data: CalibrationData, precision: ComputePrecision, batchTokens: Int = 8192,
                options: GPTQOptions = GPTQOptions(), sequential: Bool = true, progress: ((Int, Int) -> Void)? = nil) throws {
        self.model = model
        self.options = options
        self.sequential = sequential
        self.progress = progress
        overlay = QuantizedOverlay(base: model.source)
        quantizedForward = ForwardPass(model: model.description, source: overlay, precision: precision)
        let forward = ForwardPass(model: model.description, source: model.source, precision: precision)
        let batches = consecutiveGroups(data.windows, limit: max(batchTokens, 1)) { $0.count }.map { TokenBatch(sequences: $0) }
        self.forward = forward
        self.batches = batches
        states = try batches.map { try forward.embedding(of: $0) }
    }

    public func prepare(layer: Int?) throws {
        try advancePendingThroughQuantizedWeights()
        let description = model.description
        let target = layer ?? description.layerCount
        // Layers before the target that no tensor asked for still advance the streams.
        while nextLayer < target {
            try run(layer: nextLayer, collecting: nil)
            nextLayer += 1
        }
        if let layer {
            try run(layer: layer, collecting: Set(model.source.tensorNames.filter { Self.layer(of: $0) == layer }))
            nextLayer = layer + 1
        } else {
            let collector = InputHessians(for: [description.outputHeadName(in: model.source)])
            for (batch, state) in zip(batches, states) { try forward.finish(state, batch: batch, observer: collector) }
            hessians = collector
        }
    }

    private func run(layer: Int, collecting tensors: Set<String>?) throws {
        let collector = tensors.map { InputHessians(for: $0) }
        if sequential && tensors != nil {
            pending = (layer, states.map { $0.copy() })
        }
        for (batch, state) in zip(batches, states) { try forward.applyLayer(layer, to: state, batch: batch, observer: collector) }
        hessians = collector
        progress?(layer + 1, model.description.layerCount)
    }

    /// Recomputes the last measured layer's output streams from its saved inputs, through the
    /// weights its quantized blocks decode to.
    private func advancePendingThroughQuantizedWeights() throws {
        guard let (layer, inputs) = pending else { return }
        for (index, batch) in batches.enumerated() {
            try quantizedForward.applyLayer(layer, to: inputs[index], batch: batch)
            states[index].pointer.update(from: inputs[index].pointer, count: inputs[index].count)
        }
        overlay.removeAll()
        pending = nil
    }

    /// The decoder layer a Hugging Face tensor name belongs to (the index after `layers.`).
    static func layer(of name: String) -> Int? {
        let parts = name.split(separator: ".")
        guard let index = parts.firstIndex(of: "layers"), index + 1 < parts.count else { return nil }
        return Int(parts[index + 1])
    }

    public func quantize(_ tensor: GGUFTensorPlan, slice: Int, type: GGMLType, values: UnsafePointer<Float>,
                         into destination: UnsafeMutableRawPointer) throws -> String? {
        let rows = tensor.rowsPerSource, width = tensor.rowLength
        guard type.isQuantized, tensor.role != .embedding else {
            try quantizeRows(type, values, rows: rows, rowLength: width, importance: nil, into: destination)
            remember(tensor, slice: slice, type: type, blocks: destination)
            return nil
        }
        let name = tensor.sources[slice]
        guard let (matrix, tokens) = hessians?.hessian(of: name), matrix.count == width * width else {
            try quantizeRows(type, values, rows: rows, rowLength: width, importance: nil, into: destination)
            remember(tensor, slice: slice, type: type, blocks: destination)
            return "no calibration token reached it: rounded without importance weights"
        }
        guard tokens >= Self.minimumTokens(rowLength: width) else {
            let importance = (0..<width).map { Float(matrix[$0 * width + $0] / Double(tokens)) }
            try quantizeRows(type, values, rows: rows, rowLength: width, importance: importance, into: destination)
            remember(tensor, slice: slice, type: type, blocks: destination)
            return "\(tokens) calibration tokens (GPTQ needs \(Self.minimumTokens(rowLength: width))): weighted rounding instead"
        }
        let report = try matrix.withUnsafeBufferPointer {
            try gptqQuantizeRows(type, values, rows: rows, rowLength: width, hessian: $0.baseAddress!, tokens: tokens,
                                 options: options, into: destination)
        }
        dampening[name] = report.dampening
        remember(tensor, slice: slice, type: type, blocks: destination)
        return nil
    }

    /// With `sequential`, keeps a layer tensor's blocks for recomputing its layer's streams.
    private func remember(_ tensor: GGUFTensorPlan, slice: Int, type: GGMLType, blocks: UnsafeMutableRawPointer) {
        guard sequential, tensor.layer != nil else { return }
        let bytes = type.rowBytes(tensor.rowLength) * tensor.rowsPerSource
        overlay.replace(tensor.sources[slice], with: QuantizedOverlay.Replacement(
            type: type, blocks: Array(UnsafeRawBufferPointer(start: blocks, count: bytes)), rows: tensor.rowsPerSource,
            rowLength: tensor.rowLength, permutedHeads: tensor.permutedHeads))
    }
}
