/// A problem with a GGUF file, or with writing a model as one: one line naming the file and the
/// key or tensor.
public struct GGUFError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let problem: String

    public init(file: String, _ problem: String) {
        self.file = file
        self.problem = problem
    }

    public var description: String {
        "\(file): \(problem)".split(whereSeparator: \.isNewline).joined(separator: " ")
    }
}
