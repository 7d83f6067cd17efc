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
        func positive(_ value: Int, _ candidates: [String]) throws -> Int {
            guard value > 0 else { throw config.error("'\(candidates[0])' must be positive, found \(value)") }
            return value
        }

        hiddenSize = try positive(try required(keys.hiddenSize), keys.hiddenSize)
        layerCount = try positive(try required(keys.layerCount), keys.layerCount)
        vocabularySize = try positive(try required(keys.vocabularySize), keys.vocabularySize)
        attentionHeads = try positive(try required(keys.attentionHeads), keys.attentionHeads)
        keyValueHeads = try positive(try optional(keys.keyValueHeads) ?? attentionHeads, keys.keyValueHeads)
        guard attentionHeads % keyValueHeads == 0 else {
            throw config.error("num_attention_heads (\(attentionHeads)) is not a multiple of num_key_value_heads (\(keyValueHeads))")
        }
        if let explicit = try optional(keys.headDim) {
            headDim = explicit
        } else {
            guard hiddenSize % attentionHeads == 0 else {
                throw config.error("hidden_size (\(hiddenSize)) is not divisible by num_attention_heads (\(attentionHeads))")
            }
            headDim = hiddenSize / attentionHeads
        }
        guard headDim > 0, headDim % 2 == 0 else { throw config.error("head_dim must be positive and even, found \(headDim)") }

        normEpsilon = Float(try keys.normEpsilon.lazy.compactMap { try config.optionalDouble($0) }.first ?? keys.defaultNormEpsilon)
        // transformers 5 moves rope_theta (and the scaling type) into a rope_parameters object.
        let ropeParameters = config.json["rope_parameters"]
        ropeTheta = try keys.ropeTheta.lazy.compactMap { try config.optionalDouble($0) }.first
            ?? ropeParameters?["rope_theta"]?.doubleValue ?? keys.defaultRopeTheta
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
            if let window = slidingWindow, window < 1 {
                throw config.error("'\(windowKey)' must be positive (it counts the keys a query sees), found \(window)")
            }
        } else {
            slidingWindow = nil
        }
        clipQKV = try attention.clipKey.flatMap { try config.optionalDouble($0) }.map(Float.init)

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
                             sharedExpertWidth: keys.sharedExpertWidth.isEmpty ? nil : try optional(keys.sharedExpertWidth).flatMap { $0 > 0 ? $0 : nil })
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
        let denseWidth = try sparse.contains(false) ? required(keys.denseWidth) : 0
        feedForward = sparse.map { $0 ? .sparse(shape) : .dense(width: denseWidth) }
    }

    /// Resolves a checkpoint: picks its spec by model_type, reads the config, and checks that the
    /// stored tensors have the shapes the config implies.
    public init(checkpoint: Checkpoint) throws {
        try self.init(config: checkpoint.config, spec: try ArchitectureRegistry.spec(for: checkpoint.config))
        try validate(against: checkpoint, configPath: checkpoint.config.path)
    }

    /// The tensor that holds the output projection (the embedding when tied and no head is stored).
    public func outputHeadName(in source: TensorSource) -> String {
        if tieWordEmbeddings && !source.contains(spec.tensors.outputHead) { return spec.tensors.embedding }
        return spec.tensors.outputHead
    }
}
