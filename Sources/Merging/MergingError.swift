/// Bad input to one of the merging math functions (a shape that does not fit, a count out of
/// range); thrown rather than trapped, since every input comes from a checkpoint or the user.
public struct MergingError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
