/// Several independent sequences laid end to end: the activations of a batch are one
/// `tokenCount x hidden` matrix, and attention looks only within each sequence.
public struct TokenBatch: Sendable {
    public let sequences: [[Int]]
    /// Start of each sequence in the flattened batch.
    public let offsets: [Int]
    public let tokenCount: Int

    public init(sequences: [[Int]]) {
        self.sequences = sequences
        var offsets: [Int] = []
        var cursor = 0
        for sequence in sequences {
            offsets.append(cursor)
            cursor += sequence.count
        }
        self.offsets = offsets
        tokenCount = cursor
    }

    public var ids: [Int] { sequences.flatMap { $0 } }
}
