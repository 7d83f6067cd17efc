import GGUF
import Quantization

/// How GGUFExport turns one source tensor (an expert's slice of a stacked tensor, or a whole
/// tensor) into blocks. `prepare` is called before the tensors of each layer, in layer order,
/// and with nil before the tensors outside the layers (embedding, output head, final norm),
/// which are written last: a layer-wise method (GPTQ) measures each layer's inputs just then.
public protocol TensorQuantizer: AnyObject {
    func prepare(layer: Int?) throws
    /// Encodes `values` (`tensor.rowsPerSource × tensor.rowLength`, in the GGUF row order) as `type`.
    /// Returns a note when the tensor was not quantized as the method intends (a fallback).
    func quantize(_ tensor: GGUFTensorPlan, slice: Int, type: GGMLType, values: UnsafePointer<Float>,
                  into destination: UnsafeMutableRawPointer) throws -> String?
}

/// Rounding to each format's grid, with llama.cpp's imatrix weights where an importance pass
/// measured them: what llama-quantize does.
public final class WeightedRounding: TensorQuantizer {
    let importance: InputImportance?

    public init(importance: InputImportance?) { self.importance = importance }

    public func prepare(layer: Int?) throws {}

    public func quantize(_ tensor: GGUFTensorPlan, slice: Int, type: GGMLType, values: UnsafePointer<Float>,
                         into destination: UnsafeMutableRawPointer) throws -> String? {
        let weights = type.isQuantized ? importance?.weights(for: tensor, slice: slice) : nil
        try weights.withOptionalPointer {
            try quantizeRows(type, values, rows: tensor.rowsPerSource, rowLength: tensor.rowLength, importance: $0, into: destination)
        }
        let missing = importance != nil && type.isQuantized && weights == nil && tensor.role != .embedding
        return missing ? "no calibration token reached it: rounded without importance weights" : nil
    }
}
