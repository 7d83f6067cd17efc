/// tokenizer.json's `decoder`: turns the tokens of a list of ids back into text. Each step maps a
/// list of token strings to another (HF's `decode_chain`); the results are concatenated.
indirect enum Decoder: Sendable {
    /// Byte-level tokens back to bytes, decoded as (lossy) UTF-8.
    case byteLevel
    case metaspace(replacement: Unicode.Scalar, scheme: PrependScheme)
    case replace(TextPattern, String)
    /// Runs of `<0xXX>` tokens back to the text their bytes spell.
    case byteFallback
    case fuse
    /// Removes up to `start` leading and `stop` trailing copies of `content` from each token.
    case strip(content: Unicode.Scalar, start: Int, stop: Int)
    case sequence([Decoder])

    init(json: JSONObject) throws {
        switch try json.type() {
        case "ByteLevel": self = .byteLevel
        case "Metaspace":
            self = .metaspace(replacement: try json.character("replacement"), scheme: try PrependScheme(json: json))
        case "Replace": self = .replace(try TextPattern(json: json, key: "pattern"), try json.string("content"))
        case "ByteFallback": self = .byteFallback
        case "Fuse": self = .fuse
        case "Strip":
            self = .strip(content: try json.character("content"), start: try json.count("start"), stop: try json.count("stop"))
        case "Sequence": self = .sequence(try json.objects("decoders").map(Decoder.init(json:)))
        default: throw json.unsupported("decoder")
        }
    }

    /// The tokens' text, refused when it would pass `maximumLength` UTF-8 bytes in all.
    func decode(_ tokens: [String], maximumLength: Int) throws(TextLimitExceeded) -> [String] {
        switch self {
        case .byteLevel:
            var bytes: [UInt8] = []
            for token in tokens {
                bytes.append(contentsOf: ByteLevelAlphabet.decode(token) ?? Array(token.utf8))
            }
            return [String(decoding: bytes, as: UTF8.self)]
        case .metaspace(let replacement, let scheme):
            return tokens.enumerated().map { index, token in
                var scalars = String.UnicodeScalarView()
                for scalar in token.unicodeScalars {
                    if scalar != replacement {
                        scalars.append(scalar)
                    } else if index > 0 || scheme == .never {
                        scalars.append(" ")
                    }
                }
                return String(scalars)
            }
        case .replace(let pattern, let content):
            var result: [String] = []
            result.reserveCapacity(tokens.count)
            var length = 0
            for token in tokens {
                let replaced = try pattern.replacingMatches(in: token, with: content, maximumLength: maximumLength - length)
                length += replaced.utf8.count
                result.append(replaced)
            }
            return result
        case .byteFallback:
            var result: [String] = []
            var pending: [UInt8] = []
            func flush() {
                guard !pending.isEmpty else { return }
                if let text = String(validating: pending, as: UTF8.self) {
                    result.append(text)
                } else {
                    result.append(contentsOf: repeatElement("\u{FFFD}", count: pending.count))
                }
                pending.removeAll()
            }
            for token in tokens {
                if let byte = Self.byteValue(token) {
                    pending.append(byte)
                } else {
                    flush()
                    result.append(token)
                }
            }
            flush()
            return result
        case .fuse:
            return [tokens.joined()]
        case .strip(let content, let start, let stop):
            return tokens.map { token in
                var scalars = Array(token.unicodeScalars)
                let trailing = min(stop, scalars.reversed().prefix { $0 == content }.count)
                scalars.removeLast(trailing)
                let leading = min(start, scalars.prefix { $0 == content }.count)
                return String(String.UnicodeScalarView(scalars.dropFirst(leading)))
            }
        case .sequence(let decoders):
            var tokens = tokens
            for decoder in decoders { tokens = try decoder.decode(tokens, maximumLength: maximumLength) }
            return tokens
        }
    }

    /// The byte of a `<0xXX>` token.
    private static func byteValue(_ token: String) -> UInt8? {
        let bytes = Array(token.utf8)
        guard bytes.count == 6, token.hasPrefix("<0x"), bytes[5] == UInt8(ascii: ">") else { return nil }
        return UInt8(String(decoding: bytes[3..<5], as: UTF8.self), radix: 16)
    }
}
