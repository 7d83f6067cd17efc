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
        #expect(try tokenizer.decode([0, 1, 2_147_483_646]) == "a b")
    }

    /// A tokenizer.json around `components` (JSON members) with a one-letter vocabulary.
    func tokenizer(_ components: String) throws -> Tokenizer {
        let json = #"{"model":{"type":"BPE","vocab":{"a":0,"!":1},"merges":[]},"# + components + "}"
        return try Tokenizer(data: Data(json.utf8), file: Self.file)
    }

    func expectEncodingFails(_ tokenizer: Tokenizer, _ text: String, containing fragment: String) {
        do {
            _ = try tokenizer.encode(text)
            Issue.record("expected an error containing '\(fragment)'")
        } catch {
            #expect(error.description.hasPrefix("\(Self.file): cannot encode"))
            #expect(error.description.contains(fragment), "got: \(error)")
        }
    }

    /// `(a+)+$` on 34 a's and a '!' backtracked 2^34 ways (34 s for this one text; hours for a
    /// few more a's).
    @Test func regexThatBacktracksWithoutBoundGivesUp() throws {
        let split = try tokenizer(#""pre_tokenizer":{"type":"Split","pattern":{"Regex":"(a+)+$"},"behavior":"Isolated"}"#)
        let started = Date()
        expectEncodingFails(split, String(repeating: "a", count: 34) + "!", containing: "regex '(a+)+$' backtracks without bound")
        #expect(Date().timeIntervalSince(started) < 5)
        #expect(try split.encode("aaa!") == [0, 0, 0, 1])
    }

    /// Nine Replace normalizers, each a → aaaaaaaa, made 8 bytes into 8^10 (a timeout, then gigabytes).
    @Test func replacementsThatGrowWithoutBoundGiveUp() throws {
        let replace = #"{"type":"Replace","pattern":{"String":"a"},"content":"aaaaaaaa"}"#
        let normalizers = try tokenizer(#""normalizer":{"type":"Sequence","normalizers":["# + Array(repeating: replace, count: 9).joined(separator: ",") + "]}")
        expectEncodingFails(normalizers, "aaaaaaaa", containing: "would make the text longer than 4224 bytes")
        #expect(try normalizers.encode("") == [])

        let decoders = try tokenizer(#""decoder":{"type":"Sequence","decoders":["# + Array(repeating: replace, count: 9).joined(separator: ",") + "]}")
        #expect(throws: TokenizerError.self) { try decoders.decode([0, 0]) }
        #expect(try decoders.decode([1]) == "!")
    }
}
