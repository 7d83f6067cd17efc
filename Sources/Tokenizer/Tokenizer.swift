import Foundation

/// A Hugging Face tokenizer.json with a BPE model (byte-level as in GPT-2, Qwen, OLMoE and
/// DeepSeek, or SentencePiece-style with byte fallback as in Llama and Mistral), giving the ids
/// the `tokenizers` library gives. Components it does not implement are refused when loading.
public final class Tokenizer: Sendable {
    private let normalizer: Normalizer?
    private let preTokenizer: PreTokenizer?
    private let model: BPEModel
    private let addedVocabulary: AddedVocabulary
    private let postProcessor: PostProcessor?
    private let decoder: Decoder?
    /// The tokenizer.json, for errors.
    private let file: String
    /// Max id + 1 over the vocabulary and the added tokens.
    public let vocabularySize: Int

    public convenience init(contentsOf url: URL) throws {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw TokenizerError(file: url.path, "cannot be read (\(error.localizedDescription))")
        }
        try self.init(data: data, file: url.path)
    }

    /// Reads the bytes of a tokenizer.json; errors name it as `file`.
    public init(data: Data, file: String) throws {
        self.file = file
        let json = try JSONObject.parse(data, file: file)
        if let version = try json.optionalString("version"), version != "1.0" {
            throw json.error("unsupported tokenizer.json version '\(version)'")
        }
        // Both change the ids of a single encode; refusing beats silently differing from HF.
        for key in ["truncation", "padding"] where json.value(key) != nil {
            throw json.error("unsupported \(key) (set it to null)")
        }
        normalizer = try json.optionalObject("normalizer").map(Normalizer.init(json:))
        preTokenizer = try json.optionalObject("pre_tokenizer").map(PreTokenizer.init(json:))
        model = try BPEModel(json: try json.object("model"))
        postProcessor = try json.optionalObject("post_processor").map(PostProcessor.init(json:))
        decoder = try json.optionalObject("decoder").map(Decoder.init(json:))
        let added = json.value("added_tokens") == nil ? [] : try json.objects("added_tokens")
        do {
            addedVocabulary = try AddedVocabulary(json: added, model: model, normalizer: normalizer)
        } catch let failure as TextLimitExceeded {
            throw json.error("added_tokens: normalizing a token: \(failure.problem)")
        }
        vocabularySize = max(model.idLimit, (addedVocabulary.byID.keys.max() ?? -1) + 1)
    }

    /// The ids of `text`; with `addSpecialTokens` the post-processor's special tokens (e.g. BOS) are
    /// added. Fails only when the file's components would cost this text without bound (`TextLimits`).
    public func encode(_ text: String, addSpecialTokens: Bool = true) throws(TokenizerError) -> [Int] {
        let segments: [Encoded]
        do {
            segments = try self.segments(of: text)
        } catch {
            throw TokenizerError(file: file, "cannot encode a \(text.utf8.count)-byte text: \(error.problem)")
        }
        var ids: [Int] = []
        for segment in segments {
            switch segment {
            case .added(let id):
                ids.append(id)
            case .words(let words):
                for word in words { model.tokenize(word.text, into: &ids) }
            }
        }
        guard addSpecialTokens, let postProcessor else { return ids }
        return postProcessor.apply(ids)
    }

    /// The text of `ids`, skipping special tokens (HF's default) and ids it does not know. Fails
    /// only when the file's decoder would make the text without bound (`TextLimits`).
    public func decode(_ ids: [Int]) throws(TokenizerError) -> String {
        let tokens = ids.compactMap { id -> String? in
            if let added = addedVocabulary.byID[id] {
                return addedVocabulary.specialContents.contains(ExactString(added.content)) ? nil : added.content
            }
            return model.tokens[id]
        }
        guard let decoder else { return tokens.joined(separator: " ") }
        let length = tokens.reduce(0) { $0 + $1.utf8.count }
        do {
            return try decoder.decode(tokens, maximumLength: TextLimits.maximumLength(forInputOf: length)).joined()
        } catch {
            throw TokenizerError(file: file, "cannot decode \(ids.count) ids: \(error.problem)")
        }
    }

    /// The vocabulary entry for `id`, as stored (byte-level tokens in GPT-2's alphabet).
    public func tokenString(_ id: Int) -> String? {
        if let added = addedVocabulary.byID[id] { return added.content }
        return model.tokens[id]
    }

    private enum Encoded {
        case added(Int)
        case words([Segment])
    }

    /// Added tokens found in the raw text, then in each normalized stretch between them; the
    /// remaining text pre-tokenized into words.
    private func segments(of text: String) throws(TextLimitExceeded) -> [Encoded] {
        var result: [Encoded] = []
        let raw = Array(text.utf8)
        for split in addedVocabulary.split(raw, with: addedVocabulary.rawMatcher) {
            if let id = split.id {
                result.append(.added(id))
                continue
            }
            let stretch = String(decoding: raw[split.range], as: UTF8.self)
            let maximumLength = TextLimits.maximumLength(forInputOf: split.range.count)
            let normalized = Array((try normalizer?.apply(stretch, maximumLength: maximumLength) ?? stretch).utf8)
            for inner in addedVocabulary.split(normalized, with: addedVocabulary.normalizedMatcher) {
                if let id = inner.id {
                    result.append(.added(id))
                    continue
                }
                let segment = Segment(text: String(decoding: normalized[inner.range], as: UTF8.self),
                                      startsInput: split.range.lowerBound == 0 && inner.range.lowerBound == 0)
                result.append(.words(try preTokenizer?.apply([segment]) ?? [segment]))
            }
        }
        return result
    }
}
