/// Which experts each sparse layer keeps: the data a prune stage applies, written into
/// prune-report.json, and what a recipe or a later stage can read back.
public struct PrunePlan: Sendable, Codable, Equatable {
    public struct Layer: Sendable, Codable, Equatable {
        public let layer: Int
        /// Original expert ids kept, ascending; the output renumbers them 0..<kept.count.
        public let kept: [Int]
        /// Every expert's score under the method (empty for a plan given by hand or a search).
        public let scores: [Double]
        /// How a subset search chose `kept` (`enumerate`), else nil.
        public let search: ExpertSubsetResult?

        public init(layer: Int, kept: [Int], scores: [Double] = [], search: ExpertSubsetResult? = nil) {
            self.layer = layer
            self.kept = kept
            self.scores = scores
            self.search = search
        }
    }

    public let method: String
    public let layers: [Layer]

    public init(method: String, layers: [Layer]) {
        self.method = method
        self.layers = layers
    }

    public func kept(inLayer layer: Int) -> [Int]? { layers.first { $0.layer == layer }?.kept }
}
