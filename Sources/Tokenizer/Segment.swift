/// A stretch of normalized text on its way through the pre-tokenizers; each final segment is one
/// word for the model.
struct Segment {
    var text: String
    /// Whether it begins at the very start of the input (Metaspace's prepend_scheme "first" asks).
    var startsInput: Bool
}

/// What becomes of a pattern's matches when a segment is split (HF's SplitDelimiterBehavior).
enum SplitBehavior: String {
    case removed = "Removed"
    case isolated = "Isolated"
    case mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext"
    case contiguous = "Contiguous"

    init(json: JSONObject) throws {
        let name = try json.string("behavior")
        guard let behavior = SplitBehavior(rawValue: name) else {
            throw json.error("unsupported split behavior '\(name)' in \(json.path)")
        }
        self = behavior
    }

    /// The ranges that become pieces, given spans covering the text.
    func pieces(_ spans: [Span]) -> [Range<Int>] {
        switch self {
        case .removed:
            return spans.filter { !$0.isMatch }.map(\.range)
        case .isolated:
            return spans.map(\.range)
        case .contiguous:
            // Neighbouring spans of the same kind join.
            var ranges: [Range<Int>] = []
            var previousMatched = false
            for span in spans {
                if span.isMatch == previousMatched, let last = ranges.last {
                    ranges[ranges.count - 1] = last.lowerBound..<span.range.upperBound
                } else {
                    ranges.append(span.range)
                }
                previousMatched = span.isMatch
            }
            return ranges
        case .mergedWithPrevious:
            // A match joins the piece before it (a run of matches only once).
            var ranges: [Range<Int>] = []
            var previousMatched = false
            for span in spans {
                if span.isMatch && !previousMatched, let last = ranges.last {
                    ranges[ranges.count - 1] = last.lowerBound..<span.range.upperBound
                } else {
                    ranges.append(span.range)
                }
                previousMatched = span.isMatch
            }
            return ranges
        case .mergedWithNext:
            // The mirror image: a match joins the piece after it.
            var ranges: [Range<Int>] = []
            var previousMatched = false
            for span in spans.reversed() {
                if span.isMatch && !previousMatched, let last = ranges.last {
                    ranges[ranges.count - 1] = span.range.lowerBound..<last.upperBound
                } else {
                    ranges.append(span.range)
                }
                previousMatched = span.isMatch
            }
            return ranges.reversed()
        }
    }
}

extension Segment {
    /// Splits into the pieces `behavior` keeps of `spans`, dropping empty ones as HF does.
    func split(_ spans: [Span], _ behavior: SplitBehavior) -> [Segment] {
        let ranges = behavior.pieces(spans)
        if ranges.count == 1, ranges[0].lowerBound == 0, ranges[0].upperBound == spans.last?.range.upperBound {
            return text.isEmpty ? [] : [self]
        }
        let units = Array(text.utf16)
        return ranges.compactMap { range in
            guard !range.isEmpty else { return nil }
            return Segment(text: String(decoding: units[range], as: UTF16.self),
                           startsInput: startsInput && range.lowerBound == 0)
        }
    }

    /// Spans of the characters for which `isMatch` holds, each one its own match (HF's char patterns).
    func spans(where isMatch: (Unicode.Scalar) -> Bool) -> [Span] {
        var spans: [Span] = []
        var offset = 0
        var gapStart = 0
        for scalar in text.unicodeScalars {
            let width = scalar.utf16.count
            if isMatch(scalar) {
                if gapStart < offset { spans.append(Span(range: gapStart..<offset, isMatch: false)) }
                spans.append(Span(range: offset..<(offset + width), isMatch: true))
                gapStart = offset + width
            }
            offset += width
        }
        if gapStart < offset || offset == 0 { spans.append(Span(range: gapStart..<offset, isMatch: false)) }
        return spans
    }
}
