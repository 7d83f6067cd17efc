/// How each sparse layer's experts are grouped into merged experts: the data a merge stage
/// applies and reports.
public struct MergePlan: Sendable, Codable, Equatable {
    public struct Layer: Sendable, Codable, Equatable {
        public let layer: Int
        /// Original expert ids per merged expert, each ascending; merged expert i is cluster i.
        public let clusters: [[Int]]
        /// Each expert's routing count (the fusing and router weights), by original id.
        public let usage: [Double]

        public init(layer: Int, clusters: [[Int]], usage: [Double]) {
            self.layer = layer
            self.clusters = clusters
            self.usage = usage
        }

        /// Per cluster, the most used member (the lowest id on ties): whose router row the
        /// merged expert keeps under the `dominant` router rule (M-SMoE).
        public var dominant: [Int] {
            clusters.map { members in
                members.reduce(members[0]) { best, expert in usage[expert] > usage[best] ? expert : best }
            }
        }
    }

    public let layers: [Layer]

    public init(layers: [Layer]) { self.layers = layers }

    public func layer(_ index: Int) -> Layer? { layers.first { $0.layer == index } }
}
