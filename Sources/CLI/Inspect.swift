import Architectures
import ArgumentParser
import Checkpoint
import Foundation
import GGUF
import Models

extension MoECompress {
    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Describe a checkpoint or GGUF file: architecture, MoE layout, parameters by kind, bytes by dtype, shards.",
            discussion: """
            Reads only config.json and the safetensors headers (or a GGUF file's header), so it is \
            instant even for models larger than memory, and it checks that the config agrees with \
            the stored tensor shapes. For GGUF it also counts tensors by ggml type and the bits per \
            weight as llama.cpp counts them.

            Example:
              moe-compress inspect Fixtures/default-model
              moe-compress inspect ~/models/OLMoE-1B-7B --json
              moe-compress inspect /tmp/default-4.5.gguf
            """)

        @Argument(help: "Checkpoint directory (config.json + *.safetensors) or GGUF file.")
        var model: String

        @Flag(help: "Print one JSON object instead of text.")
        var json = false

        func run() throws {
            let loaded = try Model.open(path: model)
            let report = InspectReport(loaded)
            if json { try printJSON(report) } else { print(report.text) }
        }
    }
}

/// What `inspect` prints, as one Codable value so text and JSON never disagree.
struct InspectReport: Encodable {
    struct Shard: Encodable {
        let file: String
        let bytes: Int
        let tensors: Int
    }

    let model: String
    let architecture: String
    let modelType: String
    let layers: Int
    let sparseLayers: [Int]
    let denseLayers: [Int]
    let hiddenSize: Int
    let vocabularySize: Int
    let attentionHeads: Int
    let keyValueHeads: Int
    let headDim: Int
    /// The largest expert count of a sparse layer (every layer's when they agree).
    let experts: Int?
    /// Each decoder layer's expert count (0 for dense), when sparse layers differ.
    let expertsPerLayer: [Int]?
    let expertsPerToken: Int?
    let expertWidth: Int?
    let sharedExpertWidth: Int?
    let normalizeTopK: Bool
    let parameters: [String: Int]
    let totalParameters: Int
    let bytesByDType: [String: Int]
    let shards: [Shard]
    let unrecognizedTensors: [String]
    /// GGUF only: tensors per ggml type, and bits per weight over all tensors.
    let ggmlTypes: [String: Int]?
    let bitsPerWeight: Double?

    enum CodingKeys: String, CodingKey {
        case model, architecture, layers, parameters, shards, experts
        case modelType = "model_type", sparseLayers = "sparse_layers", denseLayers = "dense_layers"
        case hiddenSize = "hidden_size", vocabularySize = "vocab_size", attentionHeads = "num_attention_heads"
        case keyValueHeads = "num_key_value_heads", headDim = "head_dim", expertsPerToken = "top_k"
        case expertWidth = "expert_width", sharedExpertWidth = "shared_expert_width", normalizeTopK = "norm_topk_prob"
        case expertsPerLayer = "experts_per_layer"
        case totalParameters = "total_parameters", bytesByDType = "bytes_by_dtype", unrecognizedTensors = "unrecognized_tensors"
        case ggmlTypes = "ggml_types", bitsPerWeight = "bits_per_weight"
    }

    init(_ loaded: Model) {
        let description = loaded.description
        let inventory = ModelInventory(description: description, source: loaded.source)
        model = loaded.origin.path
        architecture = description.spec.name
        modelType = description.modelType
        layers = description.layerCount
        sparseLayers = description.sparseLayers
        denseLayers = description.denseLayers
        hiddenSize = description.hiddenSize
        vocabularySize = description.vocabularySize
        attentionHeads = description.attentionHeads
        keyValueHeads = description.keyValueHeads
        headDim = description.headDim
        let shape = description.feedForward.lazy.compactMap { kind -> MoEShape? in
            if case .sparse(let shape) = kind { return shape } else { return nil }
        }.first
        let counts = description.feedForward.map { kind -> Int in if case .sparse(let shape) = kind { return shape.expertCount } else { return 0 } }
        let sparseCounts = Set(description.sparseLayers.map { counts[$0] })
        experts = sparseCounts.max()
        expertsPerLayer = sparseCounts.count > 1 ? counts : nil
        expertsPerToken = shape?.expertsPerToken
        expertWidth = shape?.expertWidth
        sharedExpertWidth = shape?.sharedExpertWidth
        normalizeTopK = description.normalizeTopK
        parameters = Dictionary(uniqueKeysWithValues: ParameterKind.allCases.map { ($0.rawValue, inventory.parametersByKind[$0] ?? 0) })
        totalParameters = inventory.totalParameters
        if let gguf = (loaded.source as? GGUFTensorSource)?.file {
            shards = [Shard(file: URL(fileURLWithPath: gguf.path).lastPathComponent, bytes: gguf.dataOffset + (gguf.tensors.map { $0.offset + $0.byteCount }.max() ?? 0),
                            tensors: gguf.tensors.count)]
            ggmlTypes = gguf.tensors.reduce(into: [:]) { $0[$1.type.name, default: 0] += 1 }
            let weights = gguf.tensors.reduce(0) { $0 + $1.elementCount }, bytes = gguf.tensors.reduce(0) { $0 + $1.byteCount }
            bitsPerWeight = Double(bytes * 8) / Double(max(weights, 1))
            bytesByDType = gguf.tensors.reduce(into: [:]) { $0[$1.type.name, default: 0] += $1.byteCount }
        } else {
            bytesByDType = Dictionary(uniqueKeysWithValues: inventory.bytesByDType.map { ($0.key.rawValue, $0.value) })
            let checkpoint = loaded.source as? Checkpoint
            shards = (checkpoint?.shards ?? []).map { Shard(file: URL(fileURLWithPath: $0.path).lastPathComponent, bytes: $0.mapping.size, tensors: $0.header.tensors.count) }
            ggmlTypes = nil
            bitsPerWeight = nil
        }
        unrecognizedTensors = inventory.unrecognizedTensors
    }

    var text: String {
        var lines: [String] = []
        lines.append("model         \(model)")
        lines.append("architecture  \(architecture) (model_type \(modelType))")
        lines.append("layers        \(layers): sparse \(ranges(sparseLayers)), dense \(ranges(denseLayers))")
        lines.append("attention     hidden \(hiddenSize), \(attentionHeads) heads, \(keyValueHeads) key/value heads, head_dim \(headDim)")
        lines.append("vocabulary    \(vocabularySize)")
        if let experts, let expertsPerToken, let expertWidth {
            let shared = sharedExpertWidth.map { "shared expert of width \($0)" } ?? "no shared expert"
            let count = expertsPerLayer.map { "\($0.map(String.init).joined(separator: ", ")) by layer" } ?? "\(experts) per sparse layer"
            lines.append("experts       \(count), top-\(expertsPerToken)\(normalizeTopK ? " (renormalised)" : ""), width \(expertWidth), \(shared)")
        }
        lines.append("parameters    \(grouped(totalParameters))")
        for kind in ParameterKind.allCases where (parameters[kind.rawValue] ?? 0) > 0 {
            let count = parameters[kind.rawValue] ?? 0
            lines.append("  \(kind.rawValue.padding(toLength: 16, withPad: " ", startingAt: 0))\(grouped(count).leftPadded(16))  \(String(format: "%5.1f%%", 100 * Double(count) / Double(max(totalParameters, 1))))")
        }
        lines.append("bytes by dtype")
        for (dtype, bytes) in bytesByDType.sorted(by: { $0.key < $1.key }) {
            lines.append("  \(dtype.padding(toLength: 16, withPad: " ", startingAt: 0))\(grouped(bytes).leftPadded(16))  \(humanBytes(bytes))")
        }
        lines.append("shards        \(shards.count)")
        for shard in shards {
            lines.append("  \(shard.file)  \(humanBytes(shard.bytes)), \(shard.tensors) tensors")
        }
        if let ggmlTypes, let bitsPerWeight {
            let types = ggmlTypes.sorted { $0.value > $1.value }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
            lines.append(String(format: "gguf          %.4f bits/weight; tensors %@", bitsPerWeight, types))
        }
        if !unrecognizedTensors.isEmpty {
            lines.append("unrecognized  \(unrecognizedTensors.count) tensors, e.g. \(unrecognizedTensors.prefix(3).joined(separator: ", "))")
        }
        return lines.joined(separator: "\n")
    }
}

/// "0-3, 5" style list of layer indices.
func ranges(_ values: [Int]) -> String {
    guard !values.isEmpty else { return "none" }
    var parts: [String] = []
    var start = values[0], previous = values[0]
    for value in values.dropFirst() + [Int.min] {
        if value == previous + 1 { previous = value; continue }
        parts.append(start == previous ? "\(start)" : "\(start)-\(previous)")
        start = value
        previous = value
    }
    return parts.joined(separator: ", ")
}

func grouped(_ value: Int) -> String {
    let digits = Array(String(value))
    var result = ""
    for (index, digit) in digits.enumerated() {
        if index > 0 && (digits.count - index) % 3 == 0 { result.append(",") }
        result.append(digit)
    }
    return result
}

func humanBytes(_ bytes: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes), unit = 0
    while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
    return unit == 0 ? "\(bytes) B" : String(format: "%.1f", value) + " " + units[unit]
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
