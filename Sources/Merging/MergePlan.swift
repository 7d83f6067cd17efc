/// How each sparse layer's experts are grouped into merged experts: the data a merge stage
/// applies and reports.
public struct MergePlan: Sendable, Codable, Equatable {
    public struct Layer: Sendable, Codable, Equatable {
        public let layer: Int
        /// Original expert ids per merged expert, each ascending; merged expert i is cluster i.
        public let clusters: [[Int]]
        /// Each expert's routing count (the fusing and router weights), by original id.
        public let usage: [Double]
        /// The distances the clusters were made from (experts x experts), when they were measured.
        public let distances: [[Double]]?

        public init(layer: Int, clusters: [[Int]], usage: [Double], distances: [[Double]]? = nil) {
            self.layer = layer
            self.clusters = clusters
            self.usage = usage
            self.distances = distances
        }

        /// Per cluster, the most used member (the lowest id on ties): whose router row the
        /// merged expert keeps under the `dominant` router rule (M-SMoE), and the member the
        /// others' neurons are aligned to.
        public var dominant: [Int] {
            clusters.map { members in
                members.reduce(members[0]) { best, expert in usage[expert] > usage[best] ? expert : best }
            }
        }

        /// Per cluster, its members' usage normalised to sum to 1 (equal when none was used).
        public func weights(of cluster: Int) -> [Double] {
            let members = clusters[cluster]
            let total = members.reduce(0) { $0 + max(usage[$1], 0) }
            return members.map { total > 0 ? max(usage[$0], 0) / total : 1 / Double(members.count) }
        }
    }

    public let layers: [Layer]

    public init(layers: [Layer]) { self.layers = layers }

    public func layer(_ index: Int) -> Layer? { layers.first { $0.layer == index } }
}
