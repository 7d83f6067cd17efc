import Foundation

/// config.json of a checkpoint: typed reads that fail with one line naming the file and key.
public struct ModelConfig: Sendable, Equatable {
    public let path: String
    public private(set) var json: JSONValue

    public init(path: String, json: JSONValue) {
        self.path = path
        self.json = json
    }

    public init(contentsOf url: URL) throws {
        let data = try RegularFile.read(url.path)
        let value: JSONValue
        do { value = try JSONDecoder().decode(JSONValue.self, from: data) } catch {
            throw CheckpointError(file: url.path, "not valid JSON")
        }
        guard case .object = value else { throw CheckpointError(file: url.path, "expected a JSON object") }
        // JSONDecoder keeps the first of two equal keys and Python (transformers) the last, so a
        // repeated key would be read differently here and there.
        if let duplicate = JSONKeys.firstDuplicateTopLevelKey(in: data) {
            throw CheckpointError(file: url.path, "names key '\(duplicate)' twice")
        }
        self.init(path: url.path, json: value)
    }

    public var modelType: String? { json["model_type"]?.stringValue }

    public func int(_ key: String) throws -> Int {
        guard let value = try optionalInt(key) else { throw missing(key) }
        return value
    }

    public func optionalInt(_ key: String) throws -> Int? {
        guard let value = json[key], value != .null else { return nil }
        guard let int = value.intValue else { throw wrongKind(key, value, expected: "an integer") }
        return int
    }

    public func double(_ key: String) throws -> Double {
        guard let value = try optionalDouble(key) else { throw missing(key) }
        return value
    }

    public func optionalDouble(_ key: String) throws -> Double? {
        guard let value = json[key], value != .null else { return nil }
        guard let double = value.doubleValue else { throw wrongKind(key, value, expected: "a number") }
        return double
    }

    public func optionalBool(_ key: String) throws -> Bool? {
        guard let value = json[key], value != .null else { return nil }
        guard let bool = value.boolValue else { throw wrongKind(key, value, expected: "true or false") }
        return bool
    }

    public func optionalString(_ key: String) throws -> String? {
        guard let value = json[key], value != .null else { return nil }
        guard let string = value.stringValue else { throw wrongKind(key, value, expected: "a string") }
        return string
    }

    public func optionalIntArray(_ key: String) throws -> [Int]? {
        guard let value = json[key], value != .null else { return nil }
        guard let array = value.arrayValue else { throw wrongKind(key, value, expected: "an array of integers") }
        return try array.map { element in
            guard let int = element.intValue else { throw wrongKind(key, value, expected: "an array of integers") }
            return int
        }
    }

    /// Returns a copy with `key` set; stages use this to describe their output.
    public func setting(_ key: String, to value: JSONValue) -> ModelConfig {
        guard case .object(var members) = json else { return self }
        members[key] = value
        return ModelConfig(path: path, json: .object(members))
    }

    /// Returns a copy without `key`.
    public func removing(_ key: String) -> ModelConfig {
        guard case .object(var members) = json else { return self }
        members[key] = nil
        return ModelConfig(path: path, json: .object(members))
    }

    public func error(_ problem: String) -> CheckpointError { CheckpointError(file: path, problem) }

    private func missing(_ key: String) -> CheckpointError {
        error("missing required key '\(key)'")
    }

    private func wrongKind(_ key: String, _ value: JSONValue, expected: String) -> CheckpointError {
        error("'\(key)' should be \(expected), found \(value.kindName)")
    }
}
