/// Bounds on the work a tokenizer.json can make one text cost. Without them a Split regex such as
/// `(a+)+$` backtracks for hours on 35 characters, and a Sequence of Replace normalizers (each
/// `a` → `aaaaaaaa`) makes a byte into gigabytes; past a bound, encoding fails with an error.
enum TextLimits {
    /// The longest text a normalizer or decoder may make of an input of `bytes` UTF-8 bytes:
    /// far more than any real one adds (Metaspace's `▁` for a space is three bytes for one).
    static func maximumLength(forInputOf bytes: Int) -> Int {
        16 * bytes + 4096
    }

    /// How many progress reports a regex search over `length` UTF-16 units may make. ICU reports
    /// each start position it gives up on (at most one per unit) and every ~5000 steps of
    /// matching; the patterns of real tokenizers take under 0.01 such reports per unit, so the
    /// slack, about 1200 steps per unit and 5 million in all, only stops runaway backtracking.
    static func regexProgressReports(forTextOf length: Int) -> Int {
        length + length / 4 + 1000
    }
}

/// A text that a component gave up on under `TextLimits`; the tokenizer reports it as a
/// `TokenizerError` naming its file.
struct TextLimitExceeded: Error {
    let problem: String

    /// `text` for a message: at most 40 characters.
    static func excerpt(_ text: String) -> String {
        text.count <= 40 ? text : String(text.prefix(40)) + "…"
    }
}
