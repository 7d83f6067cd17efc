/// A problem with one file of a checkpoint, reported as the single line `FILE: problem`.
public struct CheckpointError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let problem: String

    public init(file: String, _ problem: String) {
        self.file = file
        self.problem = problem
    }

    public var description: String { "\(file): \(problem)" }
}
