import Architectures
import Checkpoint
import Foundation
import GGUF
import Models
import Quantization
import Tensors

/// Writes a model (an opened checkpoint or any stage's output) as one GGUF file llama.cpp loads:
/// llama.cpp's names and metadata for the family, the tokenizer, and every tensor in the type its
/// plan gives it, quantized one source tensor at a time (an expert of a stacked tensor is read,
/// quantized with its own importance weights and written into its slice), so memory holds one
/// expert's matrix, never a layer or the model.
public enum GGUFExport {
    public struct Summary: Sendable {
        public let path: String
        public let bytes: Int
        /// Bits per weight as llama.cpp counts them: every tensor's bits over every tensor's weights.
        public let bitsPerWeight: Double
        public let weights: Int
        public let types: [String: GGMLType]
        /// Source tensors the quantizer could not treat as its method intends (an expert no or
        /// too few calibration tokens reached), with what it did instead.
        public let fallbacks: [String: String]
    }

    /// The tensors a model becomes, for planning before writing.
    public static func layout(_ model: Model) throws -> (family: GGUFFamily, tensors: [GGUFTensorPlan]) {
        let family = try family(of: model)
        try GGUFModelMetadata.checkCompatible(model.description, config: model.config, family: family)
        return (family, try GGUFLayout.plan(model.description, source: model.source, family: family, file: model.config.path))
    }

    static func family(of model: Model) throws -> GGUFFamily {
        guard let family = GGUFFamily.forModelType(model.description.modelType) else {
            throw GGUFError(file: model.config.path, "model_type '\(model.description.modelType)' has no GGUF architecture in moe-compress")
        }
        return family
    }

    public static func write(_ model: Model, to destination: URL, types: [String: GGMLType], quantizer: TensorQuantizer,
                             overwrite: Bool = false, progress: ((Int, Int) -> Void)? = nil) throws -> Summary {
        let (family, plans) = try layout(model)
        var declared: [GGUFTensorInfo] = []
        for plan in plans {
            guard let type = types[plan.name] else {
                throw GGUFError(file: destination.path, "no type chosen for tensor '\(plan.name)'")
            }
            declared.append(GGUFTensorInfo(name: plan.name, dimensions: plan.dimensions, type: type))
        }
        let input = inputGGUF(model)
        var metadata = try GGUFModelMetadata.entries(model.description, config: model.config, family: family,
                                                     name: modelName(model, input: input), fileType: fileType(declared))
        metadata += try tokenizerEntries(model, input: input, vocabularySize: model.description.vocabularySize)
        let writer = try GGUFWriter(destination: destination, metadata: metadata, tensors: declared,
                                    inputs: [model.origin], overwrite: overwrite)

        let largest = plans.map { $0.rowsPerSource * $0.rowLength }.max() ?? 1
        let values = FloatBuffer(uninitializedCount: largest)
        let encoded = UnsafeMutableRawBufferPointer.allocate(byteCount: largest * 4, alignment: 64)
        defer { encoded.deallocate() }
        var fallbacks: [String: String] = [:]
        // Layer by layer, then the tensors outside the layers (the writer takes any order).
        let order = plans.indices.sorted { (plans[$0].layer ?? Int.max, $0) < (plans[$1].layer ?? Int.max, $1) }
        var prepared: Int?? = .none
        for (done, index) in order.enumerated() {
            let (plan, info) = (plans[index], declared[index])
            if prepared != .some(plan.layer) {
                try quantizer.prepare(layer: plan.layer)
                prepared = .some(plan.layer)
            }
            let sliceBytes = info.type.rowBytes(plan.rowLength) * plan.rowsPerSource
            for (slice, name) in plan.sources.enumerated() {
                try model.source.readFloat32(name, into: values.pointer)
                if let heads = plan.permutedHeads {
                    GGUFTensorSource.permuteRows(values.pointer, rows: plan.rowsPerSource, rowLength: plan.rowLength, heads: heads)
                }
                do {
                    if let note = try quantizer.quantize(plan, slice: slice, type: info.type, values: values.pointer, into: encoded.baseAddress!) {
                        fallbacks[name] = note
                    }
                } catch {
                    throw GGUFError(file: model.config.path, "tensor '\(name)' as \(info.type.name): \(error)")
                }
                try writer.write(plan.name, bytes: UnsafeRawBufferPointer(rebasing: encoded[0..<sliceBytes]), at: slice * sliceBytes)
                model.source.release([name])
            }
            progress?(done + 1, plans.count)
        }
        try writer.commit()
        let weights = declared.reduce(0) { $0 + $1.elementCount }
        let dataBits = declared.reduce(0) { $0 + $1.byteCount } * 8
        return Summary(path: destination.path, bytes: writer.fileSize, bitsPerWeight: Double(dataBits) / Double(max(weights, 1)),
                       weights: weights, types: Dictionary(uniqueKeysWithValues: declared.map { ($0.name, $0.type) }),
                       fallbacks: fallbacks)
    }

    /// general.name: the model directory's name.
    static func modelName(_ model: Model, input: GGUFFile?) -> String {
        if let input, let name = input["general.name"]?.stringValue { return name }
        return model.origin.standardizedFileURL.deletingPathExtension().lastPathComponent
    }

    /// The GGUF file a model (or the stage output computed from one) was read from.
    static func inputGGUF(_ model: Model) -> GGUFFile? {
        if let source = model.source as? GGUFTensorSource { return source.file }
        guard GGUFModelReader.isGGUF(model.origin.path) else { return nil }
        return try? GGUFFile(path: model.origin.path)
    }

    /// llama.cpp's LLAMA_FTYPE for the type most of the weights have (general.file_type is a label:
    /// llama.cpp reads each tensor's own type).
    static func fileType(_ tensors: [GGUFTensorInfo]) -> Int {
        var weights: [GGMLType: Int] = [:]
        for tensor in tensors where tensor.dimensions.count > 1 { weights[tensor.type, default: 0] += tensor.elementCount }
        let dominant = weights.max { $0.value < $1.value }?.key ?? .f32
        let ftypes: [GGMLType: Int] = [.f32: 0, .f16: 1, .q4_0: 2, .q4_1: 3, .q8_0: 7, .q5_0: 8, .q5_1: 9, .q2_K: 10,
                                       .q3_K: 12, .q4_K: 15, .q5_K: 17, .q6_K: 18, .iq2_xxs: 19, .iq2_xs: 20, .bf16: 32]
        return ftypes[dominant] ?? 0
    }

    static func tokenizerEntries(_ model: Model, input: GGUFFile?, vocabularySize: Int) throws -> [(key: String, value: GGUFValue)] {
        // A GGUF input keeps its tokenizer metadata as it is (chat template, BOS rules, special
        // ids): no stage changes the vocabulary.
        if let input {
            let entries = input.metadata.filter { $0.key.hasPrefix("tokenizer.") }
            if !entries.isEmpty { return entries }
        }
        let directory = model.isGGUF ? model.origin.deletingLastPathComponent() : model.origin
        let tokenizer: Data
        if let carried = model.tokenizerJSON {
            tokenizer = carried
        } else {
            let url = directory.appendingPathComponent("tokenizer.json")
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw GGUFError(file: url.path, "missing; llama.cpp needs the tokenizer inside the GGUF file")
            }
            tokenizer = try RegularFile.read(url.path)
        }
        func optionalFile(_ name: String) throws -> Data? {
            guard !model.isGGUF else { return nil }
            let url = directory.appendingPathComponent(name)
            return FileManager.default.fileExists(atPath: url.path) ? try RegularFile.read(url.path) : nil
        }
        let template = try optionalFile("chat_template.jinja").map { String(decoding: $0, as: UTF8.self) }
        return try GGUFTokenizerMetadata.entries(tokenizer: tokenizer, configuration: try optionalFile("tokenizer_config.json"),
                                                 chatTemplate: template, vocabularySize: vocabularySize, modelConfig: model.config,
                                                 file: directory.appendingPathComponent("tokenizer.json").path)
    }
}
