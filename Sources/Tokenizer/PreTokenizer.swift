import Foundation

/// Where Metaspace puts a replacement character in front of a segment.
enum PrependScheme: String, Sendable {
    case first, always, never

    /// `prepend_scheme`, or the older `add_prefix_space: false`, which means never.
    init(json: JSONObject) throws {
        if try json.bool("add_prefix_space", default: true) == false {
            self = .never
            return
        }
        let name = try json.optionalString("prepend_scheme") ?? "always"
        guard let scheme = PrependScheme(rawValue: name) else {
            throw json.error("unsupported prepend_scheme '\(name)' in \(json.path)")
        }
        self = scheme
    }
}

/// tokenizer.json's `pre_tokenizer`: cuts normalized text into the words the model sees.
indirect enum PreTokenizer: Sendable {
    case split(TextPattern, SplitBehavior, invert: Bool)
    /// Bytes spelled in GPT-2's alphabet, after an optional space prefix and GPT-2 regex split.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    /// Spaces become `replacement`, which is prepended per `scheme`; `split` cuts before each one.
    case metaspace(replacement: Unicode.Scalar, scheme: PrependScheme, split: Bool)
    case digits(individually: Bool)
    case sequence([PreTokenizer])

    init(json: JSONObject) throws {
        switch try json.type() {
        case "Split":
            self = .split(try TextPattern(json: json, key: "pattern"), try SplitBehavior(json: json),
                          invert: try json.bool("invert", default: false))
        case "ByteLevel":
            self = .byteLevel(addPrefixSpace: try json.bool("add_prefix_space", default: true),
                              useRegex: try json.bool("use_regex", default: true))
        case "Metaspace":
            self = .metaspace(replacement: try json.character("replacement"), scheme: try PrependScheme(json: json),
                              split: try json.bool("split", default: true))
        case "Digits":
            self = .digits(individually: try json.bool("individual_digits", default: false))
        case "Sequence":
            self = .sequence(try json.objects("pretokenizers").map(PreTokenizer.init(json:)))
        default:
            throw json.unsupported("pre_tokenizer")
        }
    }

    /// GPT-2's word-splitting expression, which ByteLevel uses when `use_regex` is set. A fixed
    /// pattern the tests compile on every run, so the `try!` cannot fail on any input.
    private static let gpt2Words = TextPattern.regex(try! NSRegularExpression(
        pattern: #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#,
        options: [.anchorsMatchLines, .useUnixLineSeparators]))

    func apply(_ segments: [Segment]) throws(TextLimitExceeded) -> [Segment] {
        switch self {
        case .sequence(let steps):
            var segments = segments
            for step in steps { segments = try step.apply(segments) }
            return segments
        default:
            var result: [Segment] = []
            result.reserveCapacity(segments.count)
            for segment in segments { try apply(segment, into: &result) }
            return result
        }
    }

    private func apply(_ segment: Segment, into result: inout [Segment]) throws(TextLimitExceeded) {
        switch self {
        case .split(let pattern, let behavior, let invert):
            var spans = try pattern.spans(in: segment.text, length: segment.text.utf16.count)
            if invert { spans = spans.map { Span(range: $0.range, isMatch: !$0.isMatch) } }
            result.append(contentsOf: segment.split(spans, behavior))
        case .byteLevel(let addPrefixSpace, let useRegex):
            var segment = segment
            if addPrefixSpace && !segment.text.hasPrefix(" ") { segment.text = " " + segment.text }
            let words = useRegex
                ? segment.split(try Self.gpt2Words.spans(in: segment.text, length: segment.text.utf16.count), .isolated)
                : [segment]
            for word in words {
                result.append(Segment(text: ByteLevelAlphabet.encode(word.text), startsInput: word.startsInput))
            }
        case .metaspace(let replacement, let scheme, let split):
            var text = String(String.UnicodeScalarView(segment.text.unicodeScalars.map { $0 == " " ? replacement : $0 }))
            let prepend = switch scheme {
            case .always: true
            case .first: segment.startsInput
            case .never: false
            }
            if prepend && text.unicodeScalars.first != replacement { text = String(replacement) + text }
            let replaced = Segment(text: text, startsInput: segment.startsInput)
            if split {
                result.append(contentsOf: replaced.split(replaced.spans { $0 == replacement }, .mergedWithNext))
            } else {
                result.append(replaced)
            }
        case .digits(let individually):
            // Rust's char::is_numeric: the Nd, Nl and No categories.
            let spans = segment.spans {
                switch $0.properties.generalCategory {
                case .decimalNumber, .letterNumber, .otherNumber: true
                default: false
                }
            }
            result.append(contentsOf: segment.split(spans, individually ? .isolated : .contiguous))
        case .sequence:
            result.append(contentsOf: try apply([segment]))
        }
    }
}
