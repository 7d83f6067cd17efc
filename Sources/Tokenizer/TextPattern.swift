import Foundation

/// A stretch of a text in UTF-16 offsets, and whether a pattern matched it. A list of spans
/// covers the whole text, alternating between matches and the gaps around them.
struct Span {
    var range: Range<Int>
    var isMatch: Bool
}

/// The `pattern` of Split, Replace and the Replace decoder: `{"String": ...}` matches literally,
/// `{"Regex": ...}` is an Oniguruma expression, which ICU runs with the same results for the
/// patterns real tokenizers use (Unicode classes, lookahead, inline case-insensitivity).
enum TextPattern: @unchecked Sendable {  // NSRegularExpression is immutable and thread-safe.
    case literal(String)
    case regex(NSRegularExpression)

    init(json: JSONObject, key: String) throws {
        let pattern = try json.object(key)
        if let literal = try pattern.optionalString("String") {
            guard !literal.isEmpty else { throw json.error("\(pattern.path) is an empty string") }
            self = .literal(literal)
        } else if let expression = try pattern.optionalString("Regex") {
            self = .regex(try Self.compile(expression, json: pattern))
        } else {
            throw json.error("\(pattern.path) has neither String nor Regex")
        }
    }

    /// Oniguruma's default (Ruby) syntax makes ^ and $ line anchors and treats only \n as a line
    /// end; ICU needs asking for both.
    static func compile(_ expression: String, json: JSONObject) throws -> NSRegularExpression {
        do {
            return try NSRegularExpression(pattern: expression, options: [.anchorsMatchLines, .useUnixLineSeparators])
        } catch {
            throw json.error("unsupported regex '\(expression)' in \(json.path) (ICU cannot compile it)")
        }
    }

    /// Spans of `text` (whose UTF-16 length is `length`), as HF's `Pattern::find_matches`.
    func spans(in text: String, length: Int) -> [Span] {
        guard length > 0 else { return [Span(range: 0..<0, isMatch: false)] }
        let matches: [Range<Int>]
        switch self {
        case .literal(let literal):
            matches = occurrences(of: Array(literal.utf16), in: Array(text.utf16))
        case .regex(let regex):
            matches = regex.matches(in: text, range: NSRange(location: 0, length: length)).map {
                $0.range.location..<($0.range.location + $0.range.length)
            }
        }
        var spans: [Span] = []
        spans.reserveCapacity(matches.count * 2 + 1)
        var previous = 0
        for match in matches {
            if previous < match.lowerBound { spans.append(Span(range: previous..<match.lowerBound, isMatch: false)) }
            spans.append(Span(range: match, isMatch: true))
            previous = match.upperBound
        }
        if previous < length { spans.append(Span(range: previous..<length, isMatch: false)) }
        return spans
    }

    /// `text` with every match replaced by `content`, taken literally.
    func replacingMatches(in text: String, with content: String) -> String {
        switch self {
        case .literal(let literal):
            let bytes = Array(text.utf8)
            let found = occurrences(of: Array(literal.utf8), in: bytes)
            guard !found.isEmpty else { return text }
            var result: [UInt8] = []
            result.reserveCapacity(bytes.count)
            var previous = 0
            for range in found {
                result.append(contentsOf: bytes[previous..<range.lowerBound])
                result.append(contentsOf: content.utf8)
                previous = range.upperBound
            }
            result.append(contentsOf: bytes[previous...])
            return String(decoding: result, as: UTF8.self)
        case .regex(let regex):
            let length = text.utf16.count
            return regex.stringByReplacingMatches(in: text, range: NSRange(location: 0, length: length),
                                                  withTemplate: NSRegularExpression.escapedTemplate(for: content))
        }
    }
}

/// Non-overlapping occurrences of `needle` in `haystack`, left to right, as a regex finds them.
/// On UTF-8 or UTF-16 code units a well-formed needle can only match at character boundaries.
private func occurrences<Unit: Equatable>(of needle: [Unit], in haystack: [Unit]) -> [Range<Int>] {
    guard let first = needle.first, haystack.count >= needle.count else { return [] }
    var found: [Range<Int>] = []
    var start = 0
    while start + needle.count <= haystack.count {
        if haystack[start] == first && haystack[start..<(start + needle.count)].elementsEqual(needle) {
            found.append(start..<(start + needle.count))
            start += needle.count
        } else {
            start += 1
        }
    }
    return found
}
