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
    func spans(in text: String, length: Int) throws(TextLimitExceeded) -> [Span] {
        guard length > 0 else { return [Span(range: 0..<0, isMatch: false)] }
        let matches = try matches(in: text, length: length)
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

    /// `text` with every match replaced by `content`, taken literally; refused when the result
    /// could pass `maximumLength` UTF-8 bytes.
    func replacingMatches(in text: String, with content: String, maximumLength: Int) throws(TextLimitExceeded) -> String {
        let units = Array(text.utf16)
        let matches = try matches(in: text, length: units.count)
        guard !matches.isEmpty else { return text }
        guard text.utf8.count + matches.count * content.utf8.count <= maximumLength else {
            throw TextLimitExceeded(problem: "replacing \(matches.count) matches with '\(TextLimitExceeded.excerpt(content))' would make the text longer than \(maximumLength) bytes")
        }
        var result: [UInt16] = []
        result.reserveCapacity(units.count)
        var previous = 0
        for match in matches {
            result.append(contentsOf: units[previous..<match.lowerBound])
            result.append(contentsOf: content.utf16)
            previous = match.upperBound
        }
        result.append(contentsOf: units[previous...])
        return String(decoding: result, as: UTF16.self)
    }

    /// The matches in UTF-16 offsets, left to right and not overlapping.
    private func matches(in text: String, length: Int) throws(TextLimitExceeded) -> [Range<Int>] {
        switch self {
        case .literal(let literal):
            return occurrences(of: Array(literal.utf16), in: Array(text.utf16))
        case .regex(let regex):
            var matches: [Range<Int>] = []
            var reports = 0
            let allowed = TextLimits.regexProgressReports(forTextOf: length)
            regex.enumerateMatches(in: text, options: .reportProgress, range: NSRange(location: 0, length: length)) { result, flags, stop in
                if let range = result?.range { matches.append(range.location..<(range.location + range.length)) }
                if flags.contains(.progress) {
                    reports += 1
                    if reports > allowed { stop.pointee = true }
                }
            }
            guard reports <= allowed else {
                throw TextLimitExceeded(problem: "regex '\(TextLimitExceeded.excerpt(regex.pattern))' backtracks without bound on a \(length)-character text")
            }
            return matches
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
