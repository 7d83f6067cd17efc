import Architectures
import Checkpoint
import Foundation
import Inference

/// How a checkpoint whose MoE layers keep different expert counts is described so that this tool
/// and transformers both load it (no stock loader reads per-layer counts): the family's scalar
/// key holds the largest count, `<key>_per_layer` lists every decoder layer's (0 for dense
/// layers), and `auto_map` points transformers (with trust_remote_code=True) at
/// modeling_moe_compress.py, shipped beside the weights, which builds each layer with its count.
public enum PerLayerExperts {
    public static let modelingFile = "modeling_moe_compress.py"
    public static let modelClass = "modeling_moe_compress.MoECompressForCausalLM"

    /// The config for `counts` (one per decoder layer) and the files to write with it. Uniform
    /// counts give a plain config (and drop a per-layer description the input may have had).
    static func describe(counts: [Int], in config: ModelConfig, description: ModelDescription) throws -> (ModelConfig, [String: Data]) {
        let keys = description.spec.keys.expertCount
        let scalarKey = keys.first { config.json[$0] != nil } ?? keys[0]
        let sparseCounts = Set(description.sparseLayers.map { counts[$0] })
        var result = config
        for key in keys where config.json[key] != nil || key == scalarKey {
            result = result.setting(key, to: .int(sparseCounts.max() ?? 0)).removing(key + ModelDescription.perLayerSuffix)
        }
        let ours = JSONValue.object(["AutoModelForCausalLM": .string(modelClass)])
        guard sparseCounts.count > 1 else {
            return (result.json["auto_map"] == ours ? result.removing("auto_map") : result, [:])
        }
        if let existing = config.json["auto_map"], existing != ours {
            throw InputError("\(config.path): has its own auto_map (remote code); per-layer expert counts would replace it")
        }
        result = result.setting(scalarKey + ModelDescription.perLayerSuffix, to: .array(counts.map { .int($0) }))
            .setting("auto_map", to: ours)
        return (result, [modelingFile: modelingCode()])
    }

    /// Resources/modeling_moe_compress.py, embedded at build time.
    static func modelingCode() -> Data { Data(PackageResources.modeling_moe_compress_py) }
}
