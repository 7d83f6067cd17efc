/// A matrix library that could not do what was asked (out of memory, or a kernel it cannot make
/// for this CPU), reported as an error with the shape involved instead of a crash.
public struct ComputeError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
