import Architectures

/// What llama.cpp calls a model family and what its graph hard-codes, as llama.cpp's own
/// converter (convert_hf_to_gguf.py) and src/models/*.cpp define them: the architecture name,
/// where it keeps the expert width, whether it renormalises the top-k router weights, and whether
/// q and k rows are permuted (LLM_ARCH_LLAMA rotates adjacent pairs; Hugging Face rotates halves).
public struct GGUFFamily: Sendable {
    /// general.architecture, the prefix of every hyperparameter key.
    public let architecture: String
    /// The config.json model_type this family reads back as.
    public let modelType: String
    /// config.json's key for the routed-expert count when read back.
    public let expertCountKey: String
    /// Whether the expert width is `<arch>.expert_feed_forward_length` (Qwen) rather than
    /// `<arch>.feed_forward_length` (llama, OLMoE).
    public let expertWidthIsSeparate: Bool
    /// llama.cpp's build_moe_ffn norm_w for this graph: fixed, not read from the file.
    public let normalizesTopK: Bool
    public let permutesQueryKey: Bool
    /// llama.cpp's graph runs every layer as a sparse block (no dense layers in between).
    public let allLayersSparse: Bool
    /// Whether the graph loads an output head; false means a tied embedding must still be written
    /// as output.weight (llama.cpp's loader requires it).
    public let outputHeadOptional: Bool

    public static let all: [GGUFFamily] = [
        GGUFFamily(architecture: "llama", modelType: "mixtral", expertCountKey: "num_local_experts",
                   expertWidthIsSeparate: false, normalizesTopK: true, permutesQueryKey: true,
                   allLayersSparse: true, outputHeadOptional: true),
        GGUFFamily(architecture: "qwen2moe", modelType: "qwen2_moe", expertCountKey: "num_experts",
                   expertWidthIsSeparate: true, normalizesTopK: false, permutesQueryKey: false,
                   allLayersSparse: true, outputHeadOptional: false),
        GGUFFamily(architecture: "qwen3moe", modelType: "qwen3_moe", expertCountKey: "num_experts",
                   expertWidthIsSeparate: true, normalizesTopK: true, permutesQueryKey: false,
                   allLayersSparse: true, outputHeadOptional: true),
        GGUFFamily(architecture: "olmoe", modelType: "olmoe", expertCountKey: "num_experts",
                   expertWidthIsSeparate: false, normalizesTopK: false, permutesQueryKey: false,
                   allLayersSparse: true, outputHeadOptional: false),
    ]

    public static func forModelType(_ modelType: String) -> GGUFFamily? { all.first { $0.modelType == modelType } }
    public static func forArchitecture(_ name: String) -> GGUFFamily? { all.first { $0.architecture == name } }

    public func key(_ suffix: String) -> String { "\(architecture).\(suffix)" }
}

/// Hugging Face tensor names and the GGUF names llama.cpp's tensor map gives them (gguf-py's
/// TENSOR_MAPPINGS), per role. `{L}` is the layer; a GGUF name ending in `_exps` stacks the
/// role's per-expert tensors (`{E}`) into one 3-D tensor, the only way llama.cpp stores experts.
public struct GGUFTensorName: Sendable {
    public let huggingFace: String
    public let gguf: String
    public var stacksExperts: Bool { huggingFace.contains("{E}") }

    public static func table(for templates: TensorNameTemplates) -> [GGUFTensorName] {
        var pairs: [(String?, String)] = [
            (templates.embedding, "token_embd.weight"),
            (templates.finalNorm, "output_norm.weight"),
            (templates.outputHead, "output.weight"),
            (templates.inputNorm, "blk.{L}.attn_norm.weight"),
            (templates.postAttentionNorm, "blk.{L}.ffn_norm.weight"),
            (templates.queryNorm, "blk.{L}.attn_q_norm.weight"),
            (templates.keyNorm, "blk.{L}.attn_k_norm.weight"),
            (templates.router, "blk.{L}.ffn_gate_inp.weight"),
            (templates.expertGate, "blk.{L}.ffn_gate_exps.weight"),
            (templates.expertUp, "blk.{L}.ffn_up_exps.weight"),
            (templates.expertDown, "blk.{L}.ffn_down_exps.weight"),
            (templates.sharedExpertGate, "blk.{L}.ffn_gate_shexp.weight"),
            (templates.sharedExpertUp, "blk.{L}.ffn_up_shexp.weight"),
            (templates.sharedExpertDown, "blk.{L}.ffn_down_shexp.weight"),
            (templates.sharedExpertRouter, "blk.{L}.ffn_gate_inp_shexp.weight"),
            (templates.denseGate, "blk.{L}.ffn_gate.weight"),
            (templates.denseUp, "blk.{L}.ffn_up.weight"),
            (templates.denseDown, "blk.{L}.ffn_down.weight"),
        ]
        // Attention projections, with the biases some families have.
        for (template, name) in [(templates.query, "attn_q"), (templates.key, "attn_k"),
                                 (templates.value, "attn_v"), (templates.output, "attn_output")] {
            pairs.append((template, "blk.{L}.\(name).weight"))
            if template.hasSuffix(".weight") {
                pairs.append((String(template.dropLast(".weight".count)) + ".bias", "blk.{L}.\(name).bias"))
            }
        }
        return pairs.compactMap { hf, gguf in hf.map { GGUFTensorName(huggingFace: $0, gguf: gguf) } }
    }
}
