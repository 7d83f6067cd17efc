import Architectures
import Checkpoint

/// A model's hyperparameters as `<arch>.*` metadata (what convert_hf_to_gguf.py's
/// set_gguf_parameters writes), and back: the config.json that describes a GGUF file, so the
/// forward pass reads a GGUF model exactly as it reads a checkpoint.
public enum GGUFModelMetadata {
    /// Refuses models llama.cpp would compute differently from transformers; each check names
    /// the config key that llama.cpp's graph ignores or hard-codes.
    public static func checkCompatible(_ description: ModelDescription, config: ModelConfig, family: GGUFFamily) throws {
        let file = config.path
        if description.normalizeTopK != family.normalizesTopK {
            throw GGUFError(file: file, "'norm_topk_prob' is \(description.normalizeTopK), but llama.cpp's \(family.architecture) graph always uses \(family.normalizesTopK)")
        }
        if let clip = description.clipQKV {
            throw GGUFError(file: file, "'clip_qkv' is \(clip), but llama.cpp's \(family.architecture) graph does not clamp q, k and v")
        }
        let context = try contextLength(config)
        if let window = description.slidingWindow, window < context {
            throw GGUFError(file: file, "sliding window \(window) is shorter than the context \(context), and llama.cpp's \(family.architecture) graph has none")
        }
        let counts = Set(description.feedForward.compactMap { kind -> Int? in
            if case .sparse(let shape) = kind { return shape.expertCount }
            return nil
        })
        if counts.count > 1 {
            throw GGUFError(file: file, "layers have different expert counts \(counts.sorted()); llama.cpp has one expert_count per model")
        }
        for key in ["rope_scaling"] where config.json[key] != nil && config.json[key] != .null {
            throw GGUFError(file: file, "'\(key)' is set; moe-compress writes GGUF only for unscaled rotary embeddings")
        }
    }

    static func contextLength(_ config: ModelConfig) throws -> Int {
        try config.optionalInt("max_position_embeddings") ?? 4096
    }

    public static func entries(_ description: ModelDescription, config: ModelConfig, family: GGUFFamily,
                               name: String, fileType: Int) throws -> [(key: String, value: GGUFValue)] {
        guard let shape = description.feedForward.lazy.compactMap({ kind -> MoEShape? in
            if case .sparse(let shape) = kind { return shape }
            return nil
        }).first else {
            throw GGUFError(file: config.path, "the model has no sparse layer")
        }
        func u32(_ value: Int) -> GGUFValue { .uint32(UInt32(clamping: value)) }
        let key = family.key
        var entries: [(key: String, value: GGUFValue)] = [
            ("general.architecture", .string(family.architecture)),
            ("general.type", .string("model")),
            ("general.name", .string(name)),
            ("general.file_type", u32(fileType)),
            ("general.quantization_version", u32(2)),
            (key("vocab_size"), u32(description.vocabularySize)),
            (key("context_length"), u32(try contextLength(config))),
            (key("embedding_length"), u32(description.hiddenSize)),
            (key("block_count"), u32(description.layerCount)),
            (key("attention.head_count"), u32(description.attentionHeads)),
            (key("attention.head_count_kv"), u32(description.keyValueHeads)),
            (key("attention.key_length"), u32(description.headDim)),
            (key("attention.value_length"), u32(description.headDim)),
            (key("rope.dimension_count"), u32(description.headDim)),
            (key("rope.freq_base"), .float32(Float(description.ropeTheta))),
            (key("attention.layer_norm_rms_epsilon"), .float32(description.normEpsilon)),
            (key("expert_count"), u32(shape.expertCount)),
            (key("expert_used_count"), u32(shape.expertsPerToken)),
        ]
        if family.expertWidthIsSeparate {
            entries.append((key("expert_feed_forward_length"), u32(shape.expertWidth)))
            if let dense = try config.optionalInt("intermediate_size") { entries.append((key("feed_forward_length"), u32(dense))) }
            if let shared = shape.sharedExpertWidth { entries.append((key("expert_shared_feed_forward_length"), u32(shared))) }
        } else {
            entries.append((key("feed_forward_length"), u32(shape.expertWidth)))
        }
        return entries
    }

    /// The config.json of a GGUF file written for `family` (the keys the family's ArchitectureSpec reads).
    public static func config(of file: GGUFFile, family: GGUFFamily, hasOutputHead: Bool) throws -> ModelConfig {
        let key = family.key
        let hidden = try file.int(key("embedding_length"))
        let heads = try file.int(key("attention.head_count"))
        var json: [String: JSONValue] = [
            "model_type": .string(family.modelType),
            "hidden_size": .int(hidden),
            "num_hidden_layers": .int(try file.int(key("block_count"))),
            "num_attention_heads": .int(heads),
            "num_key_value_heads": .int(file[key("attention.head_count_kv")]?.intValue ?? heads),
            "head_dim": .int(file[key("attention.key_length")]?.intValue ?? hidden / max(heads, 1)),
            "rms_norm_eps": .double(try file.double(key("attention.layer_norm_rms_epsilon"))),
            "rope_theta": .double(file[key("rope.freq_base")]?.doubleValue ?? 10_000),
            "max_position_embeddings": .int(try file.int(key("context_length"))),
            "num_experts_per_tok": .int(try file.int(key("expert_used_count"))),
            family.expertCountKey: .int(try file.int(key("expert_count"))),
            "tie_word_embeddings": .bool(!hasOutputHead),
        ]
        if let vocabulary = file.tensor("token_embd.weight")?.dimensions.last { json["vocab_size"] = .int(vocabulary) }
        if family.expertWidthIsSeparate {
            json["moe_intermediate_size"] = .int(try file.int(key("expert_feed_forward_length")))
            json["intermediate_size"] = .int(file[key("feed_forward_length")]?.intValue ?? 0)
            if let shared = file[key("expert_shared_feed_forward_length")]?.intValue {
                json["shared_expert_intermediate_size"] = .int(shared)
            }
            json["decoder_sparse_step"] = .int(1)
            json["mlp_only_layers"] = .array([])
        } else {
            json["intermediate_size"] = .int(try file.int(key("feed_forward_length")))
        }
        if family.modelType != "mixtral" { json["norm_topk_prob"] = .bool(family.normalizesTopK) }
        // The special tokens, so writing the model again (a GGUF file has no tokenizer_config.json) keeps them.
        for (ggufKey, configKey) in [("bos_token_id", "bos_token_id"), ("eos_token_id", "eos_token_id"), ("padding_token_id", "pad_token_id")] {
            if let id = file["tokenizer.ggml.\(ggufKey)"]?.intValue { json[configKey] = .int(id) }
        }
        return ModelConfig(path: file.path, json: .object(json))
    }
}
