/// Why rows could not be encoded or decoded; one line each.
public enum QuantizationError: Error, CustomStringConvertible, Equatable {
    /// ggml's blocks never straddle rows, so a row must hold whole blocks.
    case rowLengthNotMultipleOfBlock(type: GGMLType, rowLength: Int)
    /// A negative row count or length (a caller's arithmetic gone wrong, reported not trapped).
    case negativeShape(rows: Int, rowLength: Int)
    /// A NaN or infinity in the source, which no block scale can represent.
    case nonFiniteInput(row: Int, column: Int)
    /// An importance weight that is negative, NaN or infinite (imatrix entries are mean squares).
    case invalidImportance(column: Int, value: Float)

    public var description: String {
        switch self {
        case let .rowLengthNotMultipleOfBlock(type, rowLength):
            "\(type.name) needs rows of a multiple of \(type.blockSize) weights, got \(rowLength)"
        case let .negativeShape(rows, rowLength):
            "impossible shape \(rows) x \(rowLength)"
        case let .nonFiniteInput(row, column):
            "row \(row) has a non-finite value at column \(column)"
        case let .invalidImportance(column, value):
            "importance weight \(value) at column \(column) is not a finite non-negative number"
        }
    }
}
