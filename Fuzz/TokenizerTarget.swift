import Foundation
import Tokenizer

/// tokenizer.json, optionally followed by a NUL byte and a text (JSON holds no raw NUL, so the
/// split is unambiguous): loaded, then fixed texts and the input's own text encoded and decoded.
/// The texts stay short (the input's is cut at 256 bytes): long ones only make each input slower
/// (100 KB texts brought the fuzzer from 580 inputs/s to 3), and the bounds on one text's work
/// (TextLimits) are proportional to its length, so short texts reach them as well.
enum TokenizerTarget {
    static let file = "tokenizer.json"
    /// Whitespace runs, digits, an emoji, CJK, combining marks, a BOM, control characters and
    /// special-token spellings: the kinds of text that take different paths through a tokenizer.
    static let texts = [
        "", " ", "Hello, world!", "  two  spaces\tand\ttabs\n\nnewlines ", "12345 6.78",
        "naïve café — Ünïcödé", "日本語のテキスト", "emoji 🤗🇫🇷", "e\u{301}\u{302} \u{FEFF}bom",
        "\u{0}\u{7}\u{1B}[0m", "<s> </s> <|endoftext|> <unk>",
    ]

    static func run(_ bytes: UnsafeRawBufferPointer) {
        let split = bytes.firstIndex(of: 0) ?? bytes.count
        let json = Data(bytes[..<split])
        let text = String(decoding: bytes[min(split + 1, bytes.count)...].prefix(256), as: UTF8.self)
        expectReported(file: file) {
            let tokenizer = try Tokenizer(data: json, file: file)
            // Each text on its own: a refusal (TextLimits) must not hide the others.
            for text in texts + [text] {
                expectReported(file: file) {
                    _ = try tokenizer.decode(try tokenizer.encode(text))
                    _ = try tokenizer.decode(try tokenizer.encode(text, addSpecialTokens: false))
                }
            }
            // Ids a caller may pass that the vocabulary does not hold.
            let size = tokenizer.vocabularySize
            let strayIDs = [-1, 0, 1, size - 1, size, Int.max, Int.min]
            expectReported(file: file) { _ = try tokenizer.decode(strayIDs) }
            for id in strayIDs { _ = tokenizer.tokenString(id) }
        }
    }
}
