/// How the distance between two clusters follows from the distances between their members.
public enum Linkage: String, CaseIterable, Sendable {
    /// The smallest distance between a member of one and a member of the other.
    case single
    /// The mean distance over all pairs of members (UPGMA).
    case average
    /// The largest distance between a member of one and a member of the other.
    case complete
}

/// Agglomerative clustering of `count` items into `clusters` clusters.
///
/// `distances` is the symmetric `count x count` matrix, row-major (the diagonal is ignored).
/// Starting from one cluster per item, the two closest clusters are merged until `clusters`
/// remain (`count - clusters` merges, so there are always exactly `clusters`). A cluster is
/// indexed by its smallest member; on equal distances the pair with the lexicographically
/// smallest (smaller index, larger index) is merged first. Distances to a merged cluster follow
/// Lance-Williams: the minimum (single), the size-weighted mean (average) or the maximum
/// (complete) of the two merged clusters' distances.
///
/// Returns one label per item, clusters numbered by their smallest member: item 0 has label 0,
/// the first item not in its cluster label 1, and so on. Without tied distances these are
/// scipy's clusters (`linkage` then the first `count - clusters` merges, which is `fcluster(...,
/// 'maxclust')` whenever that cut has `clusters` clusters). With ties the dendrogram is not
/// unique and scipy's nearest-neighbour chain may merge tied pairs in another order
/// (Fixtures/scripts/record_merge_math.py records where).
///
/// O(count³): one scan of the active pairs per merge, which is cheap at expert counts (≤ 256).
public func agglomerativeClusters(
    distances: [Double], count: Int, clusters: Int, linkage: Linkage
) throws -> [Int] {
    guard count >= 1 else { throw MergingError("clustering needs at least one item, got \(count)") }
    guard distances.count == count * count else {
        throw MergingError("clustering: \(distances.count) distances for \(count) items (need \(count * count))")
    }
    guard (1...count).contains(clusters) else {
        throw MergingError("clustering: \(clusters) clusters of \(count) items (need 1...\(count))")
    }
    for i in 0..<count {
        for j in (i + 1)..<count where !(distances[i * count + j] == distances[j * count + i]) {
            // `!(==)` also catches NaN, which would make every comparison below false.
            throw MergingError("clustering: distance matrix not symmetric (or NaN) at (\(i), \(j))")
        }
    }

    var d = distances
    var size = [Int](repeating: 1, count: count)
    // representative[i] = the cluster item i is in, by its smallest member.
    var representative = Array(0..<count)
    var active = Array(0..<count)  // kept sorted, so the scan meets pairs in lexicographic order

    while active.count > clusters {
        var best = (distance: Double.infinity, a: active[0], b: active[1])
        var found = false
        for (position, a) in active.enumerated() {
            for b in active[(position + 1)...] {
                let value = d[a * count + b]
                // Strict `<`: the first pair met (lexicographically smallest) keeps a tie.
                if !found || value < best.distance {
                    best = (value, a, b)
                    found = true
                }
            }
        }
        let (a, b) = (best.a, best.b)  // a < b, so the merged cluster keeps index a
        let (sizeA, sizeB) = (Double(size[a]), Double(size[b]))
        for c in active where c != a && c != b {
            let (da, db) = (d[a * count + c], d[b * count + c])
            let merged: Double
            switch linkage {
            case .single: merged = min(da, db)
            case .complete: merged = max(da, db)
            case .average: merged = (sizeA * da + sizeB * db) / (sizeA + sizeB)
            }
            d[a * count + c] = merged
            d[c * count + a] = merged
        }
        size[a] += size[b]
        for i in 0..<count where representative[i] == b { representative[i] = a }
        active.removeAll { $0 == b }
    }
    return labelsByFirstOccurrence(representative)
}

/// Renumbers cluster ids so they count up in order of each cluster's first item.
func labelsByFirstOccurrence(_ ids: [Int]) -> [Int] {
    var label: [Int: Int] = [:]
    return ids.map { id in
        if let existing = label[id] { return existing }
        let next = label.count
        label[id] = next
        return next
    }
}
