/// tokenizer.json's `normalizer`, applied to each stretch of input between added tokens.
indirect enum Normalizer: Sendable {
    case nfc
    case lowercase
    case prepend(String)
    case replace(TextPattern, String)
    case sequence([Normalizer])

    init(json: JSONObject) throws {
        switch try json.type() {
        case "NFC": self = .nfc
        case "Lowercase": self = .lowercase
        case "Prepend": self = .prepend(try json.string("prepend"))
        case "Replace": self = .replace(try TextPattern(json: json, key: "pattern"), try json.string("content"))
        case "Sequence": self = .sequence(try json.objects("normalizers").map(Normalizer.init(json:)))
        default: throw json.unsupported("normalizer")
        }
    }

    /// The normalized text, refused when it would pass `maximumLength` UTF-8 bytes.
    func apply(_ text: String, maximumLength: Int) throws(TextLimitExceeded) -> String {
        switch self {
        case .nfc:
            // Nothing below U+0300 changes under NFC. Foundation's NFC on Linux fails to compose
            // Hangul jamo, so this uses the standard library's own (the one String comparison uses).
            if text.unicodeScalars.allSatisfy({ $0.value < 0x300 }) { return text }
            return String(decoding: text._nfcCodeUnits, as: UTF8.self)
        case .lowercase:
            // Character by character, without context (no final sigma), as Rust's char::to_lowercase.
            var result = String.UnicodeScalarView()
            for scalar in text.unicodeScalars {
                result.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
            }
            return String(result)
        case .prepend(let prefix):
            guard !text.isEmpty else { return text }
            guard text.utf8.count + prefix.utf8.count <= maximumLength else {
                throw TextLimitExceeded(problem: "prepending '\(TextLimitExceeded.excerpt(prefix))' would make the text longer than \(maximumLength) bytes")
            }
            return prefix + text
        case .replace(let pattern, let content):
            return try pattern.replacingMatches(in: text, with: content, maximumLength: maximumLength)
        case .sequence(let normalizers):
            var text = text
            for normalizer in normalizers { text = try normalizer.apply(text, maximumLength: maximumLength) }
            return text
        }
    }
}
