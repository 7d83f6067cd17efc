import FixtureSupport
import Foundation
import Testing
@testable import Tokenizer

/// The pieces, against Fixtures/records/tokenizer-units.json (made by
/// Fixtures/scripts/record_tokenizer_units.py from Hugging Face `tokenizers`).
@Suite struct TokenizerUnitTests {
    static let recordName = "tokenizer-units.json"
    /// Read afresh by each test: `[String: Any]` cannot be shared between concurrent tests.
    static var record: [String: Any]? { try? Fixtures.record(recordName) }
    static let variantNames = (record?.objects("variants") ?? []).compactMap { $0["name"] as? String }
    static let unsupportedCount = record?.objects("unsupported").count ?? 0
    static let vocabularyNames = (record?.object("vocabularies").keys).map { $0.sorted() } ?? []

    @Test func recordIsPresent() throws {
        _ = try Fixtures.record(Self.recordName)
        #expect(Self.variantNames.count >= 10 && Self.unsupportedCount > 0 && Self.vocabularyNames.count >= 6)
    }

    @Test func byteToUnicodeTableIsGPT2s() throws {
        let table = try #require(Self.record?["byte_to_unicode"] as? [String])
        #expect(ByteLevelAlphabet.scalars.map { String($0) } == table)
        for byte in 0..<256 {
            #expect(ByteLevelAlphabet.bytes[ByteLevelAlphabet.scalars[byte]] == UInt8(byte))
        }
    }

    @Test(arguments: variantNames)
    func variantMatchesHuggingFace(_ name: String) throws {
        let variant = try #require(Self.record?.objects("variants").first { $0["name"] as? String == name })
        let tokenizer = try Self.build(variant)
        for testCase in variant.objects("cases") {
            let text = testCase["text"] as? String ?? ""
            let ids = try tokenizer.encode(text, addSpecialTokens: false)
            #expect(ids == testCase.ints("ids"), "\(name): \(text.debugDescription)\n  ours: \(ids)\n  HF:   \(testCase.ints("ids"))")
            let withSpecial = try tokenizer.encode(text)
            let expected = testCase.ints("ids_with_special_tokens")
            #expect(withSpecial == expected, "\(name) with special tokens: \(text.debugDescription)\n  ours: \(withSpecial)\n  HF:   \(expected)")
            let tokens = expected.map { tokenizer.tokenString($0) }
            let expectedTokens = (testCase["tokens"] as? [Any] ?? []).map { $0 as? String }
            #expect(exact(tokens) == exact(expectedTokens), "\(name): token strings of \(text.debugDescription)")
            let decoded = try tokenizer.decode(expected)
            let expectedText = testCase["decoded"] as? String ?? ""
            #expect(exact(decoded) == exact(expectedText), "\(name): decoding \(expected)\n  ours: \(decoded.debugDescription)\n  HF:   \(expectedText.debugDescription)")
        }
    }

    @Test(arguments: 0..<unsupportedCount)
    func unsupportedComponentIsRefused(_ index: Int) throws {
        let entry = try #require(Self.record?.objects("unsupported")[index])
        let expected = entry["error"] as? String ?? ""
        do {
            _ = try Self.build(entry)
            Issue.record("loaded a tokenizer.json with \(expected)")
        } catch let error as TokenizerError {
            #expect(error.description.contains(expected), "\(error.description)")
            #expect(error.description.hasPrefix(error.file + ": ") && !error.description.contains("\n"))
        }
    }

    @Test(arguments: vocabularyNames)
    func vocabularyMatchesHuggingFace(_ name: String) throws {
        let entry = try #require(Self.record?.object("vocabularies").object(name))
        let url = TokenizerFixtures.tokenizerURL(entry["tokenizer"] as? String ?? "")
        guard FileManager.default.fileExists(atPath: url.path) else {
            Issue.record("\(name): tokenizer file \(url.path) is missing (is ../shared present, or MOE_COMPRESS_SHARED set?)")
            return
        }
        let tokenizer = try Tokenizer(contentsOf: url)
        #expect(tokenizer.vocabularySize == entry.int("vocabulary_size"))
        for token in entry.objects("tokens") {
            let id = token.int("id")
            #expect(exact(tokenizer.tokenString(id)) == exact(token["token"] as? String), "\(name): token \(id)")
        }
        for decode in entry.objects("decodes") {
            let text = try tokenizer.decode(decode.ints("ids"))
            let expected = decode["text"] as? String ?? ""
            #expect(exact(text) == exact(expected), "\(name): decoding \(decode.ints("ids"))\n  ours: \(text.debugDescription)\n  HF:   \(expected.debugDescription)")
        }
    }

    /// A base tokenizer.json with the record's replacements, written to a scratch file and loaded.
    static func build(_ entry: [String: Any]) throws -> Tokenizer {
        let baseURL = TokenizerFixtures.tokenizerURL(entry["base"] as? String ?? "")
        var spec = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: baseURL)) as? [String: Any])
        for (key, value) in entry.object("replace") { spec[key] = value }
        var model = try #require(spec["model"] as? [String: Any])
        for (key, value) in entry.object("model") { model[key] = value }
        spec["model"] = model
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("tokenizer.json")
        try JSONSerialization.data(withJSONObject: spec).write(to: url)
        return try Tokenizer(contentsOf: url)
    }
}

/// Strings compared by code points: Swift's `==` would call "A\u{30A}" and "Å" equal.
private func exact(_ string: String?) -> [UInt32]? {
    string.map { $0.unicodeScalars.map(\.value) }
}

private func exact(_ strings: [String?]) -> [[UInt32]?] {
    strings.map(exact)
}
