import Foundation

/// A scan of a JSON object's top-level keys in the order written, for the one check a parser into
/// a dictionary cannot make: whether a key occurs twice.
enum JSONKeys {
    /// The first top-level key of the JSON object in `data` that occurs twice, or nil. `data` must
    /// already be known to be a valid JSON object.
    static func firstDuplicateTopLevelKey(in data: Data) -> String? {
        var seen: Set<String> = []
        var depth = 0
        var expectingKey = false
        var index = data.startIndex
        while index < data.endIndex {
            let byte = data[index]
            switch byte {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                expectingKey = depth == 1 && byte == UInt8(ascii: "{")
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
            case UInt8(ascii: ","):
                expectingKey = depth == 1
            case UInt8(ascii: "\""):
                let end = endOfString(in: data, openingQuote: index)
                if expectingKey, let key = decodeString(data[index..<end]) {
                    if !seen.insert(key).inserted { return key }
                }
                expectingKey = false
                index = end
                continue
            default:
                break
            }
            index += 1
        }
        return nil
    }

    /// The index just past the closing quote of the string that opens at `openingQuote`.
    private static func endOfString(in data: Data, openingQuote: Data.Index) -> Data.Index {
        var index = openingQuote + 1
        while index < data.endIndex {
            switch data[index] {
            case UInt8(ascii: "\\"): index += 2
            case UInt8(ascii: "\""): return index + 1
            default: index += 1
            }
        }
        return data.endIndex
    }

    /// A JSON string literal (with its quotes) decoded, escapes included.
    private static func decodeString(_ literal: Data) -> String? {
        try? JSONSerialization.jsonObject(with: literal, options: .fragmentsAllowed) as? String
    }
}
