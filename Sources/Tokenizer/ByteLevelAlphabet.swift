/// GPT-2's reversible map from the 256 byte values to printable characters, so that byte-level BPE
/// vocabularies can be stored as text: printable Latin-1 bytes stand for themselves and the others
/// (controls, space, soft hyphen, ...) take the characters from U+0100 upwards, in byte order.
enum ByteLevelAlphabet {
    /// The character standing for each byte value.
    static let scalars: [Unicode.Scalar] = {
        func printable(_ byte: Int) -> Bool {
            (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
        }
        var next: UInt32 = 0x100
        return (0..<256).map { byte in
            if printable(byte) { return Unicode.Scalar(UInt8(byte)) }
            defer { next += 1 }
            return Unicode.Scalar(next)!
        }
    }()

    /// The UTF-8 encoding of each byte's character, for building mapped strings without per-character work.
    static let utf8: [[UInt8]] = scalars.map { Array(String($0).utf8) }

    /// The byte each alphabet character stands for.
    static let bytes: [Unicode.Scalar: UInt8] = Dictionary(
        uniqueKeysWithValues: scalars.enumerated().map { ($0.element, UInt8($0.offset)) })

    /// `text`'s UTF-8 bytes spelled in the alphabet.
    static func encode(_ text: String) -> String {
        var mapped: [UInt8] = []
        mapped.reserveCapacity(text.utf8.count * 2)
        for byte in text.utf8 { mapped.append(contentsOf: utf8[Int(byte)]) }
        return String(decoding: mapped, as: UTF8.self)
    }

    /// The bytes `token` spells, or nil when it has a character outside the alphabet.
    static func decode(_ token: String) -> [UInt8]? {
        var result: [UInt8] = []
        for scalar in token.unicodeScalars {
            guard let byte = bytes[scalar] else { return nil }
            result.append(byte)
        }
        return result
    }
}
