/// Checkpoint tensor names with `{L}` for the layer index and `{E}` for the expert index, as in
/// llama.cpp's tensor map and mergekit's architecture files. Linear layers name their weight; a
/// bias, where the checkpoint has one, sits beside it with `.bias`.
public struct TensorNameTemplates: Sendable {
    public var embedding = "model.embed_tokens.weight"
    public var finalNorm = "model.norm.weight"
    public var outputHead = "lm_head.weight"

    public var inputNorm = "model.layers.{L}.input_layernorm.weight"
    public var postAttentionNorm = "model.layers.{L}.post_attention_layernorm.weight"
    public var query = "model.layers.{L}.self_attn.q_proj.weight"
    public var key = "model.layers.{L}.self_attn.k_proj.weight"
    public var value = "model.layers.{L}.self_attn.v_proj.weight"
    public var output = "model.layers.{L}.self_attn.o_proj.weight"
    public var queryNorm: String? = nil
    public var keyNorm: String? = nil

    public var router: String
    public var expertGate: String
    public var expertUp: String
    public var expertDown: String

    /// A per-expert bias added to the router's scores for selection only (DeepSeek-V3's
    /// `e_score_correction_bias`); nil for families without one. Pruning slices it with the router.
    public var routerCorrectionBias: String? = nil

    public var sharedExpertGate: String? = nil
    public var sharedExpertUp: String? = nil
    public var sharedExpertDown: String? = nil
    /// The 1-output linear whose sigmoid scales the shared expert (Qwen2-MoE).
    public var sharedExpertRouter: String? = nil

    /// transformers 5's fused layout of the routed experts (written by `save_pretrained(...,
    /// save_original_format=False)`): `[experts, 2 × width, hidden]` with each expert's gate rows
    /// before its up rows, and `[experts, hidden, width]`. Read through views (FusedExperts.swift).
    public var fusedExpertGateUp = "model.layers.{L}.mlp.experts.gate_up_proj"
    public var fusedExpertDown = "model.layers.{L}.mlp.experts.down_proj"
    /// Where the fused layout keeps the router when it renames it (nil: the same name).
    public var fusedLayoutRouter: String? = nil

    public var denseGate = "model.layers.{L}.mlp.gate_proj.weight"
    public var denseUp = "model.layers.{L}.mlp.up_proj.weight"
    public var denseDown = "model.layers.{L}.mlp.down_proj.weight"

    public init(router: String, expertGate: String, expertUp: String, expertDown: String) {
        self.router = router
        self.expertGate = expertGate
        self.expertUp = expertUp
        self.expertDown = expertDown
    }

    /// The layout most families share: router `mlp.gate`, experts `mlp.experts.{E}.{gate,up,down}_proj`.
    public static func mlpExperts() -> TensorNameTemplates {
        TensorNameTemplates(
            router: "model.layers.{L}.mlp.gate.weight",
            expertGate: "model.layers.{L}.mlp.experts.{E}.gate_proj.weight",
            expertUp: "model.layers.{L}.mlp.experts.{E}.up_proj.weight",
            expertDown: "model.layers.{L}.mlp.experts.{E}.down_proj.weight")
    }

    /// Every template with the kind of parameter it holds, for inventories and name checks.
    public var all: [(template: String, kind: ParameterKind)] {
        var result: [(String, ParameterKind)] = [
            (embedding, .embedding), (outputHead, .embedding), (finalNorm, .norm),
            (inputNorm, .norm), (postAttentionNorm, .norm),
            (query, .attention), (key, .attention), (value, .attention), (output, .attention),
            (router, .router), (expertGate, .routedExperts), (expertUp, .routedExperts), (expertDown, .routedExperts),
            (denseGate, .denseMLP), (denseUp, .denseMLP), (denseDown, .denseMLP),
        ]
        for (template, kind) in [(queryNorm, ParameterKind.attention), (keyNorm, .attention),
                                 (sharedExpertGate, .sharedExperts), (sharedExpertUp, .sharedExperts),
                                 (sharedExpertDown, .sharedExperts), (sharedExpertRouter, .sharedExperts)] {
            if let template { result.append((template, kind)) }
        }
        return result
    }
}

/// The groups `inspect` counts parameters in.
public enum ParameterKind: String, Sendable, CaseIterable, Codable {
    case embedding = "embeddings"
    case attention
    case norm = "norms"
    case router
    case routedExperts = "routed_experts"
    case sharedExperts = "shared_experts"
    case denseMLP = "dense_mlp"
    case other
}

extension String {
    /// Fills `{L}` and `{E}`.
    public func filled(layer: Int, expert: Int? = nil) -> String {
        var name = replacingOccurrences(of: "{L}", with: String(layer))
        if let expert { name = name.replacingOccurrences(of: "{E}", with: String(expert)) }
        return name
    }

    /// The bias tensor beside a linear layer's weight.
    public var biasName: String {
        hasSuffix(".weight") ? String(dropLast(".weight".count)) + ".bias" : self + ".bias"
    }
}
