import Foundation

/// Paths into the repository's Fixtures/ (and the team's ../shared), found from this file's
/// location so tests run from any working directory.
public enum Fixtures {
    public static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    public static let directory = repositoryRoot.appendingPathComponent("Fixtures")

    /// `shared/` beside the repository, or where MOE_COMPRESS_SHARED points.
    public static var shared: URL {
        if let override = ProcessInfo.processInfo.environment["MOE_COMPRESS_SHARED"] {
            return URL(fileURLWithPath: override)
        }
        return repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared")
    }

    /// A path relative to the repository root, as the records store them.
    public static func url(_ relative: String) -> URL {
        repositoryRoot.appendingPathComponent(relative).standardizedFileURL
    }

    /// A JSON record under Fixtures/records, parsed with JSONSerialization.
    public static func record(_ name: String) throws -> [String: Any] {
        let url = directory.appendingPathComponent("records").appendingPathComponent(name)
        let data = try Data(contentsOf: url)
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw FixtureError("\(url.path): not a JSON object")
        }
        return object
    }

    /// Names of the JSON records in a records subdirectory (e.g. "tokenizers").
    public static func recordNames(in subdirectory: String) -> [String] {
        let url = directory.appendingPathComponent("records").appendingPathComponent(subdirectory)
        return ((try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? [])
            .filter { $0.hasSuffix(".json") }.sorted().map { "\(subdirectory)/\($0)" }
    }

    /// A fresh scratch directory under the system temporary directory.
    public static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("moe-compress-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

public struct FixtureError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Loose JSON accessors for records.
extension Dictionary where Key == String, Value == Any {
    public func floats(_ key: String) -> [Float] { ((self[key] as? [Any]) ?? []).map { Float(($0 as? NSNumber)?.doubleValue ?? .nan) } }
    public func doubles(_ key: String) -> [Double] { ((self[key] as? [Any]) ?? []).map { ($0 as? NSNumber)?.doubleValue ?? .nan } }
    public func ints(_ key: String) -> [Int] { ((self[key] as? [Any]) ?? []).map { ($0 as? NSNumber)?.intValue ?? Int.min } }
    public func int(_ key: String) -> Int { (self[key] as? NSNumber)?.intValue ?? Int.min }
    public func double(_ key: String) -> Double { (self[key] as? NSNumber)?.doubleValue ?? .nan }
    public func object(_ key: String) -> [String: Any] { (self[key] as? [String: Any]) ?? [:] }
    public func objects(_ key: String) -> [[String: Any]] { (self[key] as? [[String: Any]]) ?? [] }
}
