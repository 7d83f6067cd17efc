import Checkpoint
import Foundation

/// tokenizer.json (and tokenizer_config.json) as the `tokenizer.*` metadata llama.cpp reads, the
/// way its converter writes them (gguf-py's SpecialVocab, BpeVocab, LlamaHfVocab):
/// - byte-level BPE → model `gpt2`: tokens, merges, and the pre-tokenizer's llama.cpp name,
///   found by comparing the split regexes with llama.cpp's own list;
/// - SentencePiece-style BPE (Metaspace, byte fallback) → model `llama`: tokens with scores and
///   token types (bytes `<0xXX>` typed BYTE so llama.cpp falls back to them).
/// llama.cpp's SPM tokenizer merges the adjacent pair whose concatenation has the highest score,
/// so a token made by BPE merge rank r scores −r: merges then happen in the order BPE applies
/// them (llama.cpp's converter gives every token −1000, which loses that order).
/// The whole tokenizer.json also travels as `tokenizer.huggingface.json`, so moe-compress reads
/// its own GGUF files back with exactly the tokenizer they came from.
public enum GGUFTokenizerMetadata {
    /// llama-vocab.cpp's token attributes (LLAMA_TOKEN_TYPE_*).
    enum TokenType: Int32 {
        case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    /// Pre-tokenizer names llama.cpp knows, with the regexes of the tokenizer.json that selects
    /// them (llama-vocab.cpp's comments keep each original regex beside its adapted one).
    static let preTokenizers: [(name: String, patterns: [String])] = [
        ("qwen2", [#"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#]),
        ("llama-bpe", [#"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#]),
        ("gpt-2", [#"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#]),
        ("deepseek-v3", [#"\p{N}{1,3}"#, #"[一-龥぀-ゟ゠-ヿ]+"#,
                         ##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##]),
    ]

    /// - Parameters:
    ///   - tokenizer: tokenizer.json's bytes; `configuration`: tokenizer_config.json's, if any.
    ///   - chatTemplate: a separate chat_template.jinja, if the model has one.
    ///   - vocabularySize: the embedding's rows; the token list is padded to it.
    ///   - modelConfig: config.json; its `bos_token_id`, `eos_token_id` and `pad_token_id` name the
    ///     special tokens tokenizer_config.json leaves unnamed, as gguf-py's SpecialVocab reads them
    ///     (Qwen's tokenizers name no BOS; a model read from a GGUF file has no tokenizer_config.json
    ///     and carries the ids in its config). Without an id llama.cpp falls back to its own
    ///     defaults (BOS and EOS 11 for a BPE vocabulary).
    public static func entries(tokenizer: Data, configuration: Data?, chatTemplate: String?, vocabularySize: Int,
                               modelConfig: ModelConfig? = nil, file: String) throws -> [(key: String, value: GGUFValue)] {
        guard let root = try? JSONSerialization.jsonObject(with: tokenizer) as? [String: Any],
              let model = root["model"] as? [String: Any] else {
            throw GGUFError(file: file, "tokenizer.json is not a JSON object with a 'model'")
        }
        let config = configuration.flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] } ?? [:]
        guard model["type"] as? String == "BPE", let vocab = model["vocab"] as? [String: Any] else {
            throw GGUFError(file: file, "tokenizer.json: only BPE models can be written for llama.cpp (model.type is \(model["type"] ?? "missing"))")
        }
        let merges = try mergeStrings(model["merges"], file: file)
        let added = (root["added_tokens"] as? [[String: Any]]) ?? []

        // Every id up to the embedding's size gets a token; llama.cpp wants exactly that many.
        var tokens = [String?](repeating: nil, count: vocabularySize)
        func place(_ text: String, _ rawID: Any?) throws {
            guard let id = (rawID as? NSNumber)?.intValue, id >= 0 else { return }
            guard id < vocabularySize else {
                throw GGUFError(file: file, "tokenizer.json: token '\(text)' has id \(id), beyond the embedding's \(vocabularySize) rows")
            }
            tokens[id] = text
        }
        for (text, id) in vocab { try place(text, id) }
        var specialIDs = Set<Int>(), addedIDs = Set<Int>()
        for token in added {
            guard let text = token["content"] as? String, let id = (token["id"] as? NSNumber)?.intValue else { continue }
            try place(text, id)
            addedIDs.insert(id)
            if token["special"] as? Bool ?? false { specialIDs.insert(id) }
        }
        let byteLevel = usesByteLevel(root)
        let unknownID = (model["unk_token"] as? String).flatMap { (vocab[$0] as? NSNumber)?.intValue }
        var types: [Int32] = []
        var texts: [String] = []
        for (id, text) in tokens.enumerated() {
            guard let text else {
                texts.append("[PAD\(id)]")
                types.append(TokenType.unused.rawValue)
                continue
            }
            texts.append(text)
            let type: TokenType
            if specialIDs.contains(id) { type = id == unknownID ? .unknown : .control }
            else if addedIDs.contains(id) { type = .userDefined }
            else if id == unknownID { type = .unknown }
            else if !byteLevel && isByteToken(text) { type = .byte }
            else { type = .normal }
            types.append(type.rawValue)
        }

        var entries: [(key: String, value: GGUFValue)] = []
        if byteLevel {
            entries.append(("tokenizer.ggml.model", .string("gpt2")))
            entries.append(("tokenizer.ggml.pre", .string(try preTokenizerName(root, file: file))))
            entries.append(("tokenizer.ggml.tokens", .strings(texts)))
            entries.append(("tokenizer.ggml.token_type", .int32s(types)))
            entries.append(("tokenizer.ggml.merges", .strings(merges)))
        } else {
            guard model["byte_fallback"] as? Bool ?? false else {
                throw GGUFError(file: file, "tokenizer.json: a BPE model without byte-level pre-tokenization needs byte_fallback for llama.cpp's SentencePiece tokenizer")
            }
            entries.append(("tokenizer.ggml.model", .string("llama")))
            entries.append(("tokenizer.ggml.pre", .string("default")))
            entries.append(("tokenizer.ggml.tokens", .strings(texts)))
            entries.append(("tokenizer.ggml.scores", .float32s(scores(tokens: texts, merges: merges))))
            entries.append(("tokenizer.ggml.token_type", .int32s(types)))
            entries.append(("tokenizer.ggml.add_space_prefix", .bool(addsSpacePrefix(root))))
        }

        let index = Dictionary(texts.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        for (configKey, ggufKey) in [("bos_token", "bos_token_id"), ("eos_token", "eos_token_id"),
                                     ("unk_token", "unknown_token_id"), ("pad_token", "padding_token_id")] {
            var id = tokenText(config[configKey]).flatMap { index[$0] }
            // config.json's id (an integer; a list, as some generation configs have, names no one token).
            if id == nil, let value = try? modelConfig?.optionalInt("\(configKey)_id") { id = value }
            if id == nil, configKey == "unk_token" { id = unknownID }
            if let id, (0..<vocabularySize).contains(id) {
                entries.append(("tokenizer.ggml.\(ggufKey)", .uint32(UInt32(id))))
            }
        }
        let addsBOS = config["add_bos_token"] as? Bool ?? postProcessorAddsLeadingSpecial(root)
        entries.append(("tokenizer.ggml.add_bos_token", .bool(addsBOS)))
        entries.append(("tokenizer.ggml.add_eos_token", .bool(config["add_eos_token"] as? Bool ?? false)))
        if let template = chatTemplate ?? defaultChatTemplate(config["chat_template"]) {
            entries.append(("tokenizer.chat_template", .string(template)))
        }
        entries.append(("tokenizer.huggingface.json", .string(String(decoding: tokenizer, as: UTF8.self))))
        return entries
    }

    /// Merges as "left right" strings; tokenizer.json stores either those or [left, right] pairs.
    static func mergeStrings(_ raw: Any?, file: String) throws -> [String] {
        guard let list = raw as? [Any] else { return [] }
        return try list.map { item in
            if let text = item as? String { return text }
            if let pair = item as? [String], pair.count == 2 { return "\(pair[0]) \(pair[1])" }
            throw GGUFError(file: file, "tokenizer.json: a merge is neither \"a b\" nor [a, b]")
        }
    }

    /// −rank of the merge that makes each token; tokens no merge makes (characters, bytes,
    /// specials) rank after every merge, in id order.
    static func scores(tokens: [String], merges: [String]) -> [Float] {
        var rank: [String: Int] = [:]
        for (position, merge) in merges.enumerated() {
            guard let space = merge.firstIndex(of: " ") else { continue }
            let joined = String(merge[..<space]) + String(merge[merge.index(after: space)...])
            if rank[joined] == nil { rank[joined] = position }
        }
        return tokens.enumerated().map { id, text in -Float(rank[text] ?? (merges.count + id)) }
    }

    static func isByteToken(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 6, text.hasPrefix("<0x"), text.hasSuffix(">") else { return false }
        return bytes[3...4].allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 70) || ($0 >= 97 && $0 <= 102) }
    }

    static func usesByteLevel(_ root: [String: Any]) -> Bool {
        components(root["pre_tokenizer"]).contains { $0["type"] as? String == "ByteLevel" }
    }

    /// The pre-tokenizer and, for a Sequence, its members, flattened.
    static func components(_ raw: Any?) -> [[String: Any]] {
        guard let object = raw as? [String: Any] else { return [] }
        if let members = object["pretokenizers"] as? [Any] { return members.flatMap { components($0) } }
        return [object]
    }

    static func preTokenizerName(_ root: [String: Any], file: String) throws -> String {
        var patterns: [String] = []
        for component in components(root["pre_tokenizer"]) {
            if component["type"] as? String == "Split", let pattern = component["pattern"] as? [String: Any],
               let regex = pattern["Regex"] as? String {
                patterns.append(regex)
            } else if component["type"] as? String == "ByteLevel", component["use_regex"] as? Bool ?? true {
                patterns.append(preTokenizers.first { $0.name == "gpt-2" }!.patterns[0])
            } else if component["type"] as? String == "Digits" {
                patterns.append(#"\p{N}"# + (component["individual_digits"] as? Bool ?? false ? "" : "+"))
            }
        }
        guard let match = preTokenizers.first(where: { $0.patterns == patterns }) else {
            throw GGUFError(file: file, "tokenizer.json: pre-tokenizer regexes \(patterns) match none llama.cpp knows (qwen2, llama-bpe, gpt-2, deepseek-v3)")
        }
        return match.name
    }

    /// Metaspace with prepend_scheme first/always, or the older normalizer Prepend("▁").
    static func addsSpacePrefix(_ root: [String: Any]) -> Bool {
        for component in components(root["pre_tokenizer"]) where component["type"] as? String == "Metaspace" {
            if let scheme = component["prepend_scheme"] as? String { return scheme != "never" }
            return component["add_prefix_space"] as? Bool ?? true
        }
        let normalizers = ((root["normalizer"] as? [String: Any])?["normalizers"] as? [[String: Any]])
            ?? [(root["normalizer"] as? [String: Any]) ?? [:]]
        return normalizers.contains { $0["type"] as? String == "Prepend" }
    }

    /// TemplateProcessing whose single-sequence template starts with a special token adds BOS.
    static func postProcessorAddsLeadingSpecial(_ root: [String: Any]) -> Bool {
        guard let processor = root["post_processor"] as? [String: Any],
              let single = processor["single"] as? [[String: Any]], let first = single.first else { return false }
        return first["SpecialToken"] != nil
    }

    /// A token in tokenizer_config.json: a string, or an AddedToken object with `content`.
    static func tokenText(_ raw: Any?) -> String? {
        if let text = raw as? String { return text }
        return (raw as? [String: Any])?["content"] as? String
    }

    /// chat_template is a string, or a list of {name, template} whose "default" entry llama.cpp uses.
    static func defaultChatTemplate(_ raw: Any?) -> String? {
        if let text = raw as? String { return text }
        let named = (raw as? [[String: Any]]) ?? []
        return (named.first { $0["name"] as? String == "default" } ?? named.first)?["template"] as? String
    }
}
