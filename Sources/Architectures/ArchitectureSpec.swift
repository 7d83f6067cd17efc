/// Everything that distinguishes one MoE family from another, as data: which config.json keys it
/// reads, how its tensors are named, and which of a few known behaviours it uses. The forward pass
/// and the inspector read only this, so a new family is a new file of data (plus a new enum case
/// only when it brings a behaviour no family had before).
public struct ArchitectureSpec: Sendable {
    /// A human name, e.g. "Qwen3-MoE".
    public let name: String
    /// `model_type` values in config.json that select this spec.
    public let modelTypes: [String]
    public let keys: ConfigKeys
    public let tensors: TensorNameTemplates
    public let attention: AttentionStyle
    public let routing: RoutingRule
    public let sparseLayers: SparseLayerRule

    public init(name: String, modelTypes: [String], keys: ConfigKeys, tensors: TensorNameTemplates,
                attention: AttentionStyle, routing: RoutingRule, sparseLayers: SparseLayerRule) {
        self.name = name
        self.modelTypes = modelTypes
        self.keys = keys
        self.tensors = tensors
        self.attention = attention
        self.routing = routing
        self.sparseLayers = sparseLayers
    }
}

/// config.json key names; where families disagree, the first key present wins.
public struct ConfigKeys: Sendable {
    public var hiddenSize = ["hidden_size"]
    public var layerCount = ["num_hidden_layers"]
    public var vocabularySize = ["vocab_size"]
    public var attentionHeads = ["num_attention_heads"]
    /// Missing means multi-head attention (as many key/value heads as query heads).
    public var keyValueHeads = ["num_key_value_heads"]
    /// Empty when the family always derives head_dim as hidden_size / heads (OLMoE).
    public var headDim = ["head_dim"]
    /// transformers aliases num_experts and num_local_experts (a config class's attribute_map), and
    /// 5.x writes Qwen3-MoE's count under the alias, so every family accepts both.
    public var expertCount: [String]
    public var expertsPerToken = ["num_experts_per_tok"]
    public var expertWidth: [String]
    /// Width of the dense MLP in layers that are not sparse.
    public var denseWidth = ["intermediate_size"]
    /// Width of the always-on shared expert; empty when the family has none.
    public var sharedExpertWidth: [String] = []
    public var normEpsilon = ["rms_norm_eps"]
    public var ropeTheta = ["rope_theta"]
    public var tieWordEmbeddings = ["tie_word_embeddings"]
    /// Defaults of the family's transformers config class, used when config.json omits the key.
    public var defaultNormEpsilon: Double
    public var defaultRopeTheta: Double

    public init(expertCount: [String], expertWidth: [String], defaultNormEpsilon: Double, defaultRopeTheta: Double) {
        self.expertCount = expertCount
        self.expertWidth = expertWidth
        self.defaultNormEpsilon = defaultNormEpsilon
        self.defaultRopeTheta = defaultRopeTheta
    }
}

/// How attention differs between families.
public struct AttentionStyle: Sendable {
    public enum QueryKeyNorm: Sendable, Equatable {
        case none
        /// RMSNorm over each head's `head_dim` values (Qwen3).
        case perHead
        /// RMSNorm over the whole q (or k) projection before it is split into heads (OLMoE).
        case wholeProjection
    }

    public var queryKeyNorm: QueryKeyNorm = .none
    /// Key of a value that q, k and v are clamped to (OLMoE's clip_qkv); nil when the family has none.
    public var clipKey: String?
    /// Key of the sliding-window length, and of the flag that switches it on (nil: always on when set).
    public var slidingWindowKey: String?
    public var slidingWindowEnabledKey: String?

    public init(queryKeyNorm: QueryKeyNorm = .none, clipKey: String? = nil,
                slidingWindowKey: String? = nil, slidingWindowEnabledKey: String? = nil) {
        self.queryKeyNorm = queryKeyNorm
        self.clipKey = clipKey
        self.slidingWindowKey = slidingWindowKey
        self.slidingWindowEnabledKey = slidingWindowEnabledKey
    }
}

/// How a router turns logits into the experts and weights of each token.
public struct RoutingRule: Sendable {
    public enum Normalization: Sendable {
        /// Top-k probabilities are divided by their sum (Mixtral).
        case always
        /// A config key decides, with the family's default when absent (Qwen's norm_topk_prob).
        case configKey(String, default: Bool)
    }

    /// Softmax over all experts, then top-k, then optional renormalisation of the k weights.
    public var normalization: Normalization

    public init(normalization: Normalization) {
        self.normalization = normalization
    }
}

/// Which decoder layers have a sparse MoE block; the rest have a dense MLP.
public enum SparseLayerRule: Sendable {
    case everyLayer
    /// Qwen2/3-MoE: sparse unless listed in `mlp_only_layers`, and only every `decoder_sparse_step`-th layer.
    case sparseStep(mlpOnlyLayersKey: String, stepKey: String)
}
