/// A problem with a tokenizer.json, reported as the single line `FILE: problem`.
public struct TokenizerError: Error, CustomStringConvertible {
    public let file: String
    public let problem: String

    public init(file: String, _ problem: String) {
        self.file = file
        self.problem = problem
    }

    public var description: String { "\(file): \(problem)" }
}
