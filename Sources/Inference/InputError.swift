/// Input the model cannot run (as opposed to a damaged file, which is a `CheckpointError`).
public struct InputError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
