/// A problem with one file of a checkpoint, reported as the single line `FILE: problem`.
public struct CheckpointError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let problem: String

    public init(file: String, _ problem: String) {
        self.file = file
        self.problem = problem
    }

    public var description: String { oneLine("\(file): \(problem)") }
}

/// `text` with control characters and line separators escaped (`\n`, `\u{2028}`): names quoted
/// from a file may hold them, and a report must stay one line.
func oneLine(_ text: String) -> String {
    var result = String.UnicodeScalarView()
    for scalar in text.unicodeScalars {
        switch scalar.properties.generalCategory {
        case .control, .lineSeparator, .paragraphSeparator: result.append(contentsOf: scalar.escaped(asASCII: true).unicodeScalars)
        default: result.append(scalar)
        }
    }
    return String(result)
}
