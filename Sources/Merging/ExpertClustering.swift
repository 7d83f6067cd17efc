import Calibration

/// How a layer's experts are grouped into the merged experts.
public enum ClusterMethod: Sendable, Equatable {
    /// Agglomerative clustering on the distances (HC-SMoE, Chen et al. 2025, arXiv 2410.08589;
    /// its published runs use average linkage).
    case hierarchical(Linkage)
    /// k-means++ seeded k-means on the geometry's embedding (Sub-MoE, Li et al. 2025, arXiv 2506.23266).
    case kmeans
    /// The most used experts are the centres; every other joins its nearest centre (M-SMoE,
    /// Li et al. 2024, arXiv 2310.01334).
    case dominant

    public var name: String {
        switch self {
        case .hierarchical(let linkage): return "hierarchical-\(linkage.rawValue)"
        case .kmeans: return "kmeans"
        case .dominant: return "dominant"
        }
    }
}

/// Lloyd updates k-means runs at most (it stops earlier once labels settle; expert counts are small).
let kMeansIterationLimit = 300

/// Partitions `geometry.count` experts into `k` non-empty clusters, each ascending, ordered by
/// their smallest member (the merged experts' order). `usage` (one non-negative count per
/// expert) picks the dominant centres; `seed` drives k-means++.
public func clusterExperts(_ geometry: ExpertGeometry, method: ClusterMethod, k: Int, usage: [Double], seed: UInt64) throws -> [[Int]] {
    let n = geometry.count
    guard (1...n).contains(k) else { throw MergingError("clustering \(n) experts into \(k) clusters (need 1...\(n))") }
    guard usage.count == n else { throw MergingError("clustering: \(usage.count) usage counts for \(n) experts") }
    let labels: [Int]
    switch method {
    case .hierarchical(let linkage):
        labels = try agglomerativeClusters(distances: geometry.distances, count: n, clusters: k, linkage: linkage)
    case .dominant:
        labels = dominantLabels(distances: geometry.distances, count: n, k: k, usage: usage)
    case .kmeans:
        let points = try geometry.embedding()
        var random = SeededRandom(seed: seed)
        let seeds = try kMeansPlusPlusSeeds(points: points, count: n, dimension: n, k: k) { random.nextUniform() }
        let initial = seeds.flatMap { points[($0 * n)..<($0 * n + n)] }
        let result = try kMeans(points: points, count: n, dimension: n, initialCentres: initial, maxIterations: kMeansIterationLimit)
        labels = fillingEmptyClusters(result.labels, k: k, points: points, dimension: n, centres: result.centres)
    }
    return groups(labels)
}

/// M-SMoE's grouping: the `k` most used experts (ties: the lower id) are centres, every other
/// expert joins the centre nearest to it (ties: the centre listed first, by usage).
func dominantLabels(distances: [Double], count: Int, k: Int, usage: [Double]) -> [Int] {
    let centres = Array((0..<count).sorted { usage[$0] != usage[$1] ? usage[$0] > usage[$1] : $0 < $1 }.prefix(k))
    return (0..<count).map { expert in
        if let own = centres.firstIndex(of: expert) { return own }
        var best = 0
        for candidate in 1..<centres.count where distances[expert * count + centres[candidate]] < distances[expert * count + centres[best]] {
            best = candidate
        }
        return best
    }
}

/// k-means can end with a centre that no expert is nearest to (coincident or tightly packed
/// experts). Each empty cluster takes the expert farthest from its own centre among clusters
/// of two or more, as scikit-learn relocates empty clusters, so exactly `k` merged experts remain.
func fillingEmptyClusters(_ labels: [Int], k: Int, points: [Double], dimension: Int, centres: [Double]) -> [Int] {
    var labels = labels
    func distance(_ row: Int, _ centre: Int) -> Double {
        (0..<dimension).reduce(0) { sum, d in
            let difference = points[row * dimension + d] - centres[centre * dimension + d]
            return sum + difference * difference
        }
    }
    for empty in 0..<k where !labels.contains(empty) {
        let sizes = labels.reduce(into: [Int: Int]()) { $0[$1, default: 0] += 1 }
        let movable = labels.indices.filter { sizes[labels[$0], default: 0] >= 2 }
        guard let farthest = movable.max(by: { distance($0, labels[$0]) < distance($1, labels[$1]) }) else { break }
        labels[farthest] = empty
    }
    return labels
}

/// Clusters from labels: members ascending, clusters ordered by their smallest member.
func groups(_ labels: [Int]) -> [[Int]] {
    var byLabel: [Int: [Int]] = [:]
    for (expert, label) in labels.enumerated() { byLabel[label, default: []].append(expert) }
    return byLabel.values.sorted { $0[0] < $1[0] }
}

extension SeededRandom {
    /// A uniform double in [0, 1) from the top 53 bits.
    mutating func nextUniform() -> Double { Double(next() >> 11) * 0x1p-53 }
}
