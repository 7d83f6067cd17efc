/// One entry of tokenizer.json's `added_tokens`.
struct AddedToken: Sendable, Hashable {
    let content: String
    let special: Bool
    let singleWord: Bool
    let lstrip: Bool
    let rstrip: Bool
    /// Whether it is matched in normalized text (after the normalizer) rather than in the raw input.
    let normalized: Bool

    init(json: JSONObject) throws {
        content = try json.string("content")
        special = try json.bool("special", default: false)
        singleWord = try json.bool("single_word", default: false)
        lstrip = try json.bool("lstrip", default: false)
        rstrip = try json.bool("rstrip", default: false)
        normalized = try json.bool("normalized", default: !special)
    }

    static func == (lhs: AddedToken, rhs: AddedToken) -> Bool {
        lhs.content.utf8.elementsEqual(rhs.content.utf8) && lhs.special == rhs.special && lhs.singleWord == rhs.singleWord
            && lhs.lstrip == rhs.lstrip && lhs.rstrip == rhs.rstrip && lhs.normalized == rhs.normalized
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(ExactString(content))
    }
}

/// A stretch of text cut out by the added-token matcher: either plain text (a UTF-8 byte range)
/// or an added token's id.
struct AddedTokenSplit {
    let range: Range<Int>
    let id: Int?
}

/// The added tokens, found in text before the model sees it: those with `normalized: false` in the
/// raw input, the others in each normalized stretch between them, as HF's AddedVocabulary does.
struct AddedVocabulary: Sendable {
    /// Added tokens by id, for decoding and for the flags of a match.
    let byID: [Int: AddedToken]
    let specialContents: Set<ExactString>
    let rawMatcher: TokenMatcher
    let normalizedMatcher: TokenMatcher

    /// Ids follow HF: a token already in the model's vocabulary keeps that id, the others are
    /// numbered from the vocabulary's size in file order (which is what the file's ids say).
    init(json entries: [JSONObject], model: BPEModel, normalizer: Normalizer?) throws {
        let tokens = try entries.map(AddedToken.init(json:))
        var specialOrder: [AddedToken] = []
        var specialContents: Set<ExactString> = []
        for token in tokens where token.special && !token.content.isEmpty {
            if specialContents.insert(ExactString(token.content)).inserted { specialOrder.append(token) }
        }
        var idByContent: [ExactString: Int] = [:]
        var byID: [Int: AddedToken] = [:]
        var ordinary: [AddedToken] = []
        var seen: Set<AddedToken> = []
        var nextID = model.vocabulary.count
        for token in tokens where !token.content.isEmpty && !seen.contains(token) {
            let key = ExactString(token.content)
            let id: Int
            if let existing = idByContent[key] ?? model.vocabulary[key] {
                id = existing
            } else {
                id = nextID
                nextID += 1
            }
            idByContent[key] = id
            byID[id] = token
            if !specialContents.contains(key) { ordinary.append(token) }
            seen.insert(token)
        }
        self.byID = byID
        self.specialContents = specialContents

        var raw: [(pattern: [UInt8], id: Int)] = []
        var normalized: [(pattern: [UInt8], id: Int)] = []
        for token in specialOrder + ordinary {
            let id = idByContent[ExactString(token.content)]!
            if token.normalized {
                let content = try normalizer?.apply(token.content, maximumLength: TextLimits.maximumLength(forInputOf: token.content.utf8.count))
                normalized.append((Array((content ?? token.content).utf8), id))
            } else {
                raw.append((Array(token.content.utf8), id))
            }
        }
        rawMatcher = TokenMatcher(raw)
        normalizedMatcher = TokenMatcher(normalized)
    }

    /// Splits `bytes` (UTF-8) at the matches of `matcher`, honouring each token's single_word,
    /// lstrip and rstrip, as HF's `find_matches`. Plain stretches are never empty.
    func split(_ bytes: [UInt8], with matcher: TokenMatcher) -> [AddedTokenSplit] {
        guard !matcher.isEmpty else { return bytes.isEmpty ? [] : [AddedTokenSplit(range: 0..<bytes.count, id: nil)] }
        var splits: [AddedTokenSplit] = []
        var consumed = 0
        for match in matcher.matches(in: bytes) {
            guard let token = byID[match.id] else { continue }
            var start = match.range.lowerBound
            var stop = match.range.upperBound
            if token.singleWord {
                let wordBefore = start > 0 && isWordCharacter(scalar(endingAt: start, in: bytes))
                let wordAfter = stop < bytes.count && isWordCharacter(scalar(startingAt: stop, in: bytes))
                if wordBefore || wordAfter { continue }
            }
            if token.lstrip {
                // Whitespace before the token goes with it, unless an earlier match took it.
                var newStart = start
                while newStart > consumed, scalar(endingAt: newStart, in: bytes).properties.isWhitespace {
                    newStart -= scalar(endingAt: newStart, in: bytes).utf8.count
                }
                start = newStart
            }
            if token.rstrip {
                while stop < bytes.count, scalar(startingAt: stop, in: bytes).properties.isWhitespace {
                    stop += scalar(startingAt: stop, in: bytes).utf8.count
                }
            }
            if consumed < start { splits.append(AddedTokenSplit(range: consumed..<start, id: nil)) }
            splits.append(AddedTokenSplit(range: start..<stop, id: match.id))
            consumed = stop
        }
        if consumed < bytes.count { splits.append(AddedTokenSplit(range: consumed..<bytes.count, id: nil)) }
        return splits
    }
}

/// Rust regex's `\w`: alphabetic, marks, decimal digits, connector punctuation, joiners.
private func isWordCharacter(_ scalar: Unicode.Scalar) -> Bool {
    let properties = scalar.properties
    if properties.isAlphabetic || properties.isJoinControl { return true }
    switch properties.generalCategory {
    case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
    default: return false
    }
}

/// The character whose UTF-8 encoding starts at `offset` (a character boundary).
private func scalar(startingAt offset: Int, in bytes: [UInt8]) -> Unicode.Scalar {
    var end = offset + 1
    while end < bytes.count && bytes[end] & 0xC0 == 0x80 { end += 1 }
    return String(decoding: bytes[offset..<end], as: UTF8.self).unicodeScalars.first!
}

/// The character whose UTF-8 encoding ends just before `offset` (a character boundary).
private func scalar(endingAt offset: Int, in bytes: [UInt8]) -> Unicode.Scalar {
    var start = offset - 1
    while start > 0 && bytes[start] & 0xC0 == 0x80 { start -= 1 }
    return scalar(startingAt: start, in: bytes)
}

/// A byte trie of added-token contents giving aho-corasick's LeftmostLongest matches: scanning left
/// to right, the first position where some token starts wins, with its longest token there.
struct TokenMatcher: Sendable {
    private var children: [[UInt8: Int32]] = [[:]]
    /// The id of the token ending at each node, or -1.
    private var ids: [Int] = [-1]
    /// Which bytes can start a token, to skip most positions at once.
    private var starts = [Bool](repeating: false, count: 256)

    var isEmpty: Bool { children[0].isEmpty }

    /// For contents listed twice the first listing wins.
    init(_ patterns: [(pattern: [UInt8], id: Int)]) {
        for (pattern, id) in patterns where !pattern.isEmpty {
            var node = 0
            for byte in pattern {
                if let child = children[node][byte] {
                    node = Int(child)
                } else {
                    children.append([:])
                    ids.append(-1)
                    children[node][byte] = Int32(children.count - 1)
                    node = children.count - 1
                }
            }
            if ids[node] < 0 { ids[node] = id }
            starts[Int(pattern[0])] = true
        }
    }

    func matches(in bytes: [UInt8]) -> [(range: Range<Int>, id: Int)] {
        var found: [(range: Range<Int>, id: Int)] = []
        var position = 0
        while position < bytes.count {
            guard starts[Int(bytes[position])] else {
                position += 1
                continue
            }
            var node = 0
            var longest: (end: Int, id: Int)?
            var offset = position
            while offset < bytes.count, let child = children[node][bytes[offset]] {
                node = Int(child)
                offset += 1
                if ids[node] >= 0 { longest = (offset, ids[node]) }
            }
            if let longest {
                found.append((position..<longest.end, longest.id))
                position = longest.end
            } else {
                position += 1
            }
        }
        return found
    }
}
