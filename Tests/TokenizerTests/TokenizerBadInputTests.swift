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
}
