import Checkpoint

/// One decoder layer's feed-forward block.
public enum FeedForwardKind: Sendable, Equatable {
    case dense(width: Int)
    case sparse(MoEShape)
}

/// The size of one sparse block.
public struct MoEShape: Sendable, Equatable {
    public let expertCount: Int
    public let expertsPerToken: Int
    public let expertWidth: Int
    /// Width of the always-on shared expert, if the layer has one.
    public let sharedExpertWidth: Int?
}

/// A checkpoint's architecture with every hyperparameter resolved from config.json and checked
/// against the tensors actually stored: what the forward pass, the inspector and every later
/// stage work from.
public struct ModelDescription: Sendable {
    public let spec: ArchitectureSpec
    /// The config.json this was read from, for errors about the model as a whole.
    public let configPath: String
    public let modelType: String
    public let hiddenSize: Int
    public let layerCount: Int
    public let vocabularySize: Int
    public let attentionHeads: Int
    public let keyValueHeads: Int
    public let headDim: Int
    public let normEpsilon: Float
    public let ropeTheta: Double
    public let tieWordEmbeddings: Bool
    /// Tokens further back than this are masked (nil: full causal attention).
    public let slidingWindow: Int?
    public let clipQKV: Float?
    public let normalizeTopK: Bool
    public let feedForward: [FeedForwardKind]

    public var sparseLayers: [Int] {
        feedForward.indices.filter { if case .sparse = feedForward[$0] { return true } else { return false } }
    }

    public var denseLayers: [Int] {
        feedForward.indices.filter { if case .dense = feedForward[$0] { return true } else { return false } }
    }

    /// Reads the hyperparameters from `config` using `spec`'s key names.
    public init(config: ModelConfig, spec: ArchitectureSpec) throws {
        self.spec = spec
        configPath = config.path
        modelType = try config.optionalString("model_type") ?? spec.modelTypes[0]
        let keys = spec.keys
        func required(_ candidates: [String]) throws -> Int {
            for key in candidates { if let value = try config.optionalInt(key) { return value } }
            throw config.error("missing required key '\(candidates.joined(separator: "' or '"))'")
        }
        func optional(_ candidates: [String]) throws -> Int? {
            for key in candidates { if let value = try config.optionalInt(key) { return value } }
            return nil
        }
        // Sizes are bounded so that products of two of them (a matrix's element count) cannot overflow.
        func positive(_ value: Int, _ candidates: [String]) throws -> Int {
            guard value > 0 else { throw config.error("'\(candidates[0])' must be positive, found \(value)") }
            guard value <= Int(Int32.max) else { throw config.error("'\(candidates[0])' is implausibly large: \(value)") }
            return value
        }

        hiddenSize = try positive(try required(keys.hiddenSize), keys.hiddenSize)
        layerCount = try positive(try required(keys.layerCount), keys.layerCount)
        // Per-layer tables are built before the tensors are checked, so the count is bounded first.
        guard layerCount <= Self.maximumLayerCount else {
            throw config.error("'\(keys.layerCount[0])' is implausibly large: \(layerCount) (at most \(Self.maximumLayerCount))")
        }
        vocabularySize = try positive(try required(keys.vocabularySize), keys.vocabularySize)
        attentionHeads = try positive(try required(keys.attentionHeads), keys.attentionHeads)
        keyValueHeads = try positive(try optional(keys.keyValueHeads) ?? attentionHeads, keys.keyValueHeads)
        guard attentionHeads % keyValueHeads == 0 else {
            throw config.error("num_attention_heads (\(attentionHeads)) is not a multiple of num_key_value_heads (\(keyValueHeads))")
        }
        if let explicit = try optional(keys.headDim) {
            headDim = try positive(explicit, keys.headDim)
        } else {
            guard hiddenSize % attentionHeads == 0 else {
                throw config.error("hidden_size (\(hiddenSize)) is not divisible by num_attention_heads (\(attentionHeads))")
            }
            headDim = hiddenSize / attentionHeads
        }
        guard headDim > 0, headDim % 2 == 0 else { throw config.error("head_dim must be positive and even, found \(headDim)") }

        /// A positive, finite number: zero or negative epsilons, thetas and windows give NaN or
        /// silently empty attention further on, so they are refused where they are read.
        func positiveNumber(_ candidates: [String], default fallback: Double) throws -> Double {
            for key in candidates {
                guard let value = try config.optionalDouble(key) else { continue }
                guard value.isFinite, value > 0 else { throw config.error("'\(key)' must be a positive number, found \(value)") }
                return value
            }
            return fallback
        }
        normEpsilon = Float(try positiveNumber(keys.normEpsilon, default: keys.defaultNormEpsilon))
        guard normEpsilon > 0 else { throw config.error("'\(keys.normEpsilon[0])' is too small for Float32, found \(normEpsilon)") }
        ropeTheta = try Self.ropeTheta(config, keys: keys, positiveNumber: positiveNumber)
        tieWordEmbeddings = try keys.tieWordEmbeddings.lazy.compactMap { try config.optionalBool($0) }.first ?? false
        for key in ["rope_scaling", "rope_parameters"] {
            guard case .object(let scaling)? = config.json[key] else { continue }
            let type = scaling["rope_type"]?.stringValue ?? scaling["type"]?.stringValue ?? "default"
            guard type == "default" else {
                throw config.error("\(key) type '\(type)' is not supported yet (supported: default)")
            }
        }

        let attention = spec.attention
        if let windowKey = attention.slidingWindowKey,
           try attention.slidingWindowEnabledKey.map({ try config.optionalBool($0) ?? false }) ?? true {
            slidingWindow = try config.optionalInt(windowKey)
            if let window = slidingWindow, window <= 0 {
                throw config.error("'\(windowKey)' must be a positive number of tokens, found \(window)")
            }
        } else {
            slidingWindow = nil
        }
        clipQKV = try attention.clipKey.flatMap { key in
            try config.optionalDouble(key).map { value in
                guard value.isFinite, value > 0 else { throw config.error("'\(key)' must be a positive number, found \(value)") }
                return Float(value)
            }
        }

        switch spec.routing.normalization {
        case .always: normalizeTopK = true
        case .configKey(let key, let fallback): normalizeTopK = try config.optionalBool(key) ?? fallback
        }

        let expertCount = try positive(try required(keys.expertCount), keys.expertCount)
        let expertsPerToken = try positive(try required(keys.expertsPerToken), keys.expertsPerToken)
        guard expertsPerToken <= expertCount else {
            throw config.error("\(keys.expertsPerToken[0]) (\(expertsPerToken)) exceeds the number of experts (\(expertCount))")
        }
        let shape = MoEShape(expertCount: expertCount, expertsPerToken: expertsPerToken,
                             expertWidth: try positive(try required(keys.expertWidth), keys.expertWidth),
                             sharedExpertWidth: try optional(keys.sharedExpertWidth).flatMap { $0 == 0 ? nil : try positive($0, keys.sharedExpertWidth) })
        let sparse: [Bool]
        switch spec.sparseLayers {
        case .everyLayer:
            sparse = Array(repeating: true, count: layerCount)
        case .sparseStep(let mlpOnlyKey, let stepKey):
            let mlpOnly = Set(try config.optionalIntArray(mlpOnlyKey) ?? [])
            let step = try config.optionalInt(stepKey) ?? 1
            guard step > 0 else { throw config.error("'\(stepKey)' must be positive, found \(step)") }
            sparse = (0..<layerCount).map { !mlpOnly.contains($0) && ($0 + 1) % step == 0 }
        }
        let denseWidth = try sparse.contains(false) ? positive(try required(keys.denseWidth), keys.denseWidth) : 0
        let counts = try Self.expertsPerLayer(config, keys: keys, sparse: sparse, scalar: expertCount, expertsPerToken: expertsPerToken)
        feedForward = sparse.indices.map { layer in
            guard sparse[layer] else { return .dense(width: denseWidth) }
            return .sparse(MoEShape(expertCount: counts?[layer] ?? expertCount, expertsPerToken: expertsPerToken,
                                    expertWidth: shape.expertWidth, sharedExpertWidth: shape.sharedExpertWidth))
        }
    }

    /// The suffix of the per-layer expert-count list that non-uniform pruning writes beside the
    /// family's scalar key (e.g. `num_local_experts_per_layer`): one count per decoder layer, 0
    /// for dense layers; the scalar then holds the largest (docs/pruning.md).
    public static let perLayerSuffix = "_per_layer"

    /// More decoder layers than any model has (the largest have ~100).
    public static let maximumLayerCount = 1 << 16

    /// The per-layer expert counts when config.json has the list (nil: every sparse layer has the scalar's).
    private static func expertsPerLayer(_ config: ModelConfig, keys: ConfigKeys, sparse: [Bool], scalar: Int,
                                        expertsPerToken: Int) throws -> [Int]? {
        guard let key = keys.expertCount.map({ $0 + perLayerSuffix }).first(where: { config.json[$0] != nil && config.json[$0] != .null }),
              let counts = try config.optionalIntArray(key) else { return nil }
        guard counts.count == sparse.count else {
            throw config.error("'\(key)' has \(counts.count) entries but the model has \(sparse.count) layers")
        }
        for (layer, count) in counts.enumerated() {
            if sparse[layer] {
                guard count >= expertsPerToken && count <= scalar else {
                    throw config.error("'\(key)'[\(layer)] is \(count); a sparse layer needs between \(expertsPerToken) (\(keys.expertsPerToken[0])) and \(scalar) (\(keys.expertCount[0]))")
                }
            } else if count != 0 {
                throw config.error("'\(key)'[\(layer)] is \(count) but layer \(layer) is dense (0 expected)")
            }
        }
        return counts
    }

    /// rope_theta from its top-level key, or (transformers 5) from the rope_parameters object; the
    /// family's default only when neither exists. A rope_parameters object without a numeric
    /// rope_theta is refused rather than guessed: a wrong theta changes every logit silently.
    private static func ropeTheta(_ config: ModelConfig, keys: ConfigKeys,
                                  positiveNumber: ([String], Double) throws -> Double) throws -> Double {
        if let key = keys.ropeTheta.first(where: { config.json[$0] != nil && config.json[$0] != .null }) {
            return try positiveNumber([key], keys.defaultRopeTheta)
        }
        guard let parameters = config.json["rope_parameters"], parameters != .null else { return keys.defaultRopeTheta }
        guard case .object = parameters else {
            throw config.error("'rope_parameters' should be an object, found \(parameters.kindName)")
        }
        guard let theta = parameters["rope_theta"] else {
            throw config.error("'rope_parameters' has no 'rope_theta' (and there is no top-level 'rope_theta')")
        }
        guard let value = theta.doubleValue else {
            throw config.error("'rope_parameters.rope_theta' should be a number, found \(theta.kindName)")
        }
        guard value.isFinite, value > 0 else {
            throw config.error("'rope_parameters.rope_theta' must be a positive number, found \(value)")
        }
        return value
    }

    /// Resolves a checkpoint: picks its spec by model_type, reads the config, and checks that the
    /// stored tensors have the shapes the config implies.
    public init(checkpoint: Checkpoint) throws {
        try self.init(config: checkpoint.config, source: checkpoint)
    }

    /// Resolves `config` against any tensor source (a stage's computed output as well as a file).
    public init(config: ModelConfig, source: TensorSource) throws {
        try self.init(config: config, spec: try ArchitectureRegistry.spec(for: config))
        try validate(against: source, configPath: config.path)
    }

    /// The tensor that holds the output projection (the embedding when tied and no head is stored).
    public func outputHeadName(in source: TensorSource) -> String {
        if tieWordEmbeddings && !source.contains(spec.tensors.outputHead) { return spec.tensors.embedding }
        return spec.tensors.outputHead
    }
}
