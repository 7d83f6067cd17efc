import FixtureSupport
import Foundation
import Testing
import Tokenizer

/// Every record under Fixtures/records/tokenizers holds texts and the ids Hugging Face `tokenizers`
/// gave for them, with and without special tokens; ours must be identical.
@Suite struct TokenizerRecordTests {
    static let recordNames = Fixtures.recordNames(in: "tokenizers")

    @Test func recordsExist() {
        #expect(Self.recordNames.count >= 6, "expected the tokenizer records made by Fixtures/scripts/make_fixtures.py")
    }

    @Test(arguments: recordNames)
    func matchesHuggingFace(_ name: String) throws {
        let record = try Fixtures.record(name)
        let url = TokenizerFixtures.tokenizerURL(record["tokenizer"] as? String ?? "")
        guard FileManager.default.fileExists(atPath: url.path) else {
            Issue.record("\(name): tokenizer file \(url.path) is missing (is ../shared present, or MOE_COMPRESS_SHARED set?)")
            return
        }
        let tokenizer = try Tokenizer(contentsOf: url)
        let cases = record.objects("cases")
        #expect(!cases.isEmpty, "\(name) has no cases")
        for testCase in cases {
            let text = testCase["text"] as? String ?? ""
            let plain = try tokenizer.encode(text, addSpecialTokens: false)
            let expected = testCase.ints("ids")
            #expect(plain == expected, "\(name): \(text.debugDescription)\n  ours: \(plain)\n  HF:   \(expected)")
            let special = try tokenizer.encode(text, addSpecialTokens: true)
            let expectedSpecial = testCase.ints("ids_with_special_tokens")
            #expect(special == expectedSpecial, "\(name) with special tokens: \(text.debugDescription)\n  ours: \(special)\n  HF:   \(expectedSpecial)")
        }
    }
}
