/// One step of a compression recipe: a value holding its options, turning a model into another.
/// The output's tensors are computed from the input's (a `DerivedTensorSource` and its kin), so
/// it can be evaluated, written by `ModelWriter`, or handed to the next stage without touching
/// the disk. Plans (kept experts, bit widths) are data inside the stage value, not branches.
public protocol Stage {
    /// The stage's name in reports, e.g. "prune".
    var name: String { get }
    func run(_ model: Model) throws -> Model
}
