import Foundation

/// One JSON object of a tokenizer.json, whose accessors throw `TokenizerError`s that name the file
/// and where in it the problem is. JSON null reads like a missing key, as serde treats `Option`s.
struct JSONObject {
    let members: [JSONMember]
    /// The file, for error messages.
    let file: String
    /// Where this object sits in the file, e.g. `pre_tokenizer.pretokenizers[1]`.
    let path: String

    /// Parses the bytes of a whole tokenizer.json, `file`.
    static func parse(_ data: Data, file: String) throws -> JSONObject {
        let parsed: JSONValue
        do {
            parsed = try JSONValue.parse([UInt8](data))
        } catch {
            throw TokenizerError(file: file, "is not valid JSON (\(error.message))")
        }
        guard case .object(let members) = parsed else { throw TokenizerError(file: file, "is not a JSON object") }
        return JSONObject(members: members, file: file, path: "")
    }

    func error(_ problem: String) -> TokenizerError {
        TokenizerError(file: file, problem)
    }

    func location(_ key: String) -> String {
        path.isEmpty ? key : "\(path).\(key)"
    }

    /// The value for `key` (compared exactly), nil when missing or null.
    func value(_ key: String) -> JSONValue? {
        guard let member = members.first(where: { $0.key.utf8.elementsEqual(key.utf8) }) else { return nil }
        if case .null = member.value { return nil }
        return member.value
    }

    /// The `type` field every component carries.
    func type() throws -> String {
        try string("type")
    }

    func string(_ key: String) throws -> String {
        guard let value = try optionalString(key) else { throw error("\(location(key)) is missing") }
        return value
    }

    func optionalString(_ key: String) throws -> String? {
        guard let value = value(key) else { return nil }
        guard let string = value.stringValue else { throw error("\(location(key)) is not a string") }
        return string
    }

    /// A field that must hold exactly one character (a Rust `char`).
    func character(_ key: String) throws -> Unicode.Scalar {
        let scalars = try string(key).unicodeScalars
        guard scalars.count == 1, let scalar = scalars.first else { throw error("\(location(key)) must be a single character") }
        return scalar
    }

    func bool(_ key: String, default defaultValue: Bool) throws -> Bool {
        guard let value = value(key) else { return defaultValue }
        guard case .bool(let bool) = value else { throw error("\(location(key)) is not a boolean") }
        return bool
    }

    func int(_ key: String) throws -> Int {
        guard let value = value(key) else { throw error("\(location(key)) is missing") }
        guard let int = value.intValue else { throw error("\(location(key)) is not an integer") }
        return int
    }

    /// A Rust `usize` field: a non-negative integer.
    func count(_ key: String) throws -> Int {
        let value = try int(key)
        guard value >= 0 else { throw error("\(location(key)) must not be negative") }
        return value
    }

    func optionalDouble(_ key: String) throws -> Double? {
        guard let value = value(key) else { return nil }
        guard case .number(let number) = value else { throw error("\(location(key)) is not a number") }
        return number
    }

    /// A nested object, or nil when the key is missing or null.
    func optionalObject(_ key: String) throws -> JSONObject? {
        guard let value = value(key) else { return nil }
        guard case .object(let members) = value else { throw error("\(location(key)) is not an object") }
        return JSONObject(members: members, file: file, path: location(key))
    }

    func object(_ key: String) throws -> JSONObject {
        guard let object = try optionalObject(key) else { throw error("\(location(key)) is missing") }
        return object
    }

    func array(_ key: String) throws -> [JSONValue] {
        guard let value = value(key) else { throw error("\(location(key)) is missing") }
        guard case .array(let array) = value else { throw error("\(location(key)) is not an array") }
        return array
    }

    func objects(_ key: String) throws -> [JSONObject] {
        try array(key).enumerated().map { index, element in
            guard case .object(let members) = element else { throw error("\(location(key))[\(index)] is not an object") }
            return JSONObject(members: members, file: file, path: "\(location(key))[\(index)]")
        }
    }

    /// The error for a component whose `type` this package does not implement.
    func unsupported(_ component: String) -> TokenizerError {
        error("unsupported \(component) '\(value("type")?.stringValue ?? "?")'")
    }
}
