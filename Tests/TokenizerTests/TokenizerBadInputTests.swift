import Foundation
import Testing
import Tokenizer

/// tokenizer.json files the fuzzer (scripts/fuzz.sh) found mishandled: each must be refused with
/// one line naming the file, or read and used without a crash.
@Suite struct TokenizerBadInputTests {
    static let file = "tokenizer.json"

    func expectRefused(_ json: String, containing fragment: String) {
        do {
            _ = try Tokenizer(data: Data(json.utf8), file: Self.file)
            Issue.record("expected an error containing '\(fragment)'")
        } catch let error as TokenizerError {
            #expect(error.description.hasPrefix("\(Self.file): "))
            #expect(error.description.contains(fragment), "got: \(error)")
            let lineBreaks = error.description.filter(\.isNewline)
            #expect(lineBreaks.isEmpty, "got: \(error)")
        } catch {
            Issue.record("unexpected error type: \(error)")
        }
    }

    @Test func tokenWithALineBreakIsReportedOnOneLine() {
        expectRefused(#"{"model":{"type":"BPE","vocab":{"a\nb\u2028c":-1},"merges":[]}}"#,
                      containing: #"vocab['a\nb\u{2028}c'] is not a valid id"#)
    }

    /// Decoding used to trap (`removeLast(-1)`); HF reads start and stop as unsigned.
    @Test(arguments: ["start", "stop"])
    func stripDecoderWithANegativeCountIsRefused(_ key: String) {
        let counts = key == "start" ? #""start":-1,"stop":0"# : #""start":0,"stop":-1"#
        expectRefused(#"{"model":{"type":"BPE","vocab":{"a":0},"merges":[]},"decoder":{"type":"Strip","content":" ","#
                      + counts + "}}", containing: "decoder.\(key) must not be negative")
    }

    /// Ids may have gaps; the largest one used to size an array (2^31 entries: tens of GiB).
    @Test func sparseVocabularyNeedsNoArrayAsLongAsItsLargestID() throws {
        let json = #"{"model":{"type":"BPE","vocab":{"a":0,"b":2147483646},"merges":[]}}"#
        let tokenizer = try Tokenizer(data: Data(json.utf8), file: Self.file)
        #expect(tokenizer.vocabularySize == 2_147_483_647)
        #expect(tokenizer.tokenString(2_147_483_646) == "b")
        #expect(tokenizer.tokenString(1) == nil)
        #expect(tokenizer.decode([0, 1, 2_147_483_646]) == "a b")
    }
}
