/// k-means on the rows of a row-major `count x dimension` matrix, Euclidean distance.

/// Squared Euclidean distance between row `row` of `points` and row `centre` of `centres`,
/// summed over the dimensions in order (the fixture script sums in the same order).
private func squaredDistance(_ points: [Double], _ row: Int, _ centres: [Double], _ centre: Int, dimension: Int) -> Double {
    var sum = 0.0
    for d in 0..<dimension {
        let difference = points[row * dimension + d] - centres[centre * dimension + d]
        sum += difference * difference
    }
    return sum
}

private func checkShape(_ points: [Double], count: Int, dimension: Int, k: Int) throws {
    guard count >= 1, dimension >= 1, points.count == count * dimension else {
        throw MergingError("k-means: \(points.count) values for \(count) rows of \(dimension)")
    }
    guard (1...count).contains(k) else {
        throw MergingError("k-means: k = \(k) for \(count) rows (need 1...\(count))")
    }
}

/// k-means++ seeding: the row indices of `k` initial centres, drawn with `uniform`, which must
/// return values in [0, 1) (injected so a test can replay recorded draws).
///
/// The exact rule (Fixtures/scripts/record_merge_math.py implements the same):
/// - the first centre is row `min(floor(u * count), count - 1)`;
/// - each next centre: `D2[i]` = squared distance from row i to its nearest chosen centre,
///   `C` = the running sum of `D2` in row order, `t = u * C[count - 1]`; the centre is the
///   smallest i with `C[i] > t`, or `count - 1` if none (rounding). Rows already chosen have
///   `D2 = 0` and so are never picked again while `C[count - 1] > 0`;
/// - if `C[count - 1] == 0` (every row coincides with a centre) no uniform is drawn and the
///   smallest row index not yet chosen is taken, so the centres are always distinct rows.
///
/// One uniform is drawn per centre, except in the last case.
public func kMeansPlusPlusSeeds(
    points: [Double], count: Int, dimension: Int, k: Int, uniform: () -> Double
) throws -> [Int] {
    try checkShape(points, count: count, dimension: dimension, k: k)
    func draw() throws -> Double {
        let u = uniform()
        guard u >= 0, u < 1 else { throw MergingError("k-means++: uniform \(u) outside [0, 1)") }
        return u
    }
    var chosen = [min(Int(try draw() * Double(count)), count - 1)]
    var nearest = (0..<count).map { squaredDistance(points, $0, points, chosen[0], dimension: dimension) }
    while chosen.count < k {
        var cumulative = [Double](repeating: 0, count: count)
        var running = 0.0
        for i in 0..<count {
            running += nearest[i]
            cumulative[i] = running
        }
        let next: Int
        if running == 0 {
            next = (0..<count).first { !chosen.contains($0) } ?? count - 1
        } else {
            let target = try draw() * running
            next = cumulative.firstIndex { $0 > target } ?? count - 1
        }
        chosen.append(next)
        for i in 0..<count {
            nearest[i] = min(nearest[i], squaredDistance(points, i, points, next, dimension: dimension))
        }
    }
    return chosen
}

/// The outcome of Lloyd's iterations.
public struct KMeansResult: Equatable, Sendable {
    /// The centre (0..<k) of each row.
    public var labels: [Int]
    /// The final centres, row-major `k x dimension`.
    public var centres: [Double]
    /// Centre updates run (≤ the bound; fewer when the labels stopped changing).
    public var iterations: Int
}

/// Lloyd's k-means from `initialCentres` (row-major `k x dimension`).
///
/// Each row is labelled with its nearest centre (squared Euclidean; a tie goes to the lowest
/// centre index). Then, up to `maxIterations` times: each centre becomes the mean of its rows
/// (a centre with no rows stays where it is) and the rows are relabelled; it stops as soon as
/// the labels do not change.
public func kMeans(
    points: [Double], count: Int, dimension: Int, initialCentres: [Double], maxIterations: Int
) throws -> KMeansResult {
    guard dimension >= 1, !initialCentres.isEmpty, initialCentres.count % dimension == 0 else {
        throw MergingError("k-means: \(initialCentres.count) centre values for dimension \(dimension)")
    }
    let k = initialCentres.count / dimension
    try checkShape(points, count: count, dimension: dimension, k: k)
    guard maxIterations >= 0 else { throw MergingError("k-means: maxIterations \(maxIterations) < 0") }

    func assign(_ centres: [Double]) -> [Int] {
        (0..<count).map { row in
            var best = 0
            var bestDistance = squaredDistance(points, row, centres, 0, dimension: dimension)
            for centre in 1..<k {
                let distance = squaredDistance(points, row, centres, centre, dimension: dimension)
                if distance < bestDistance { (best, bestDistance) = (centre, distance) }  // strict: lowest index wins ties
            }
            return best
        }
    }

    var centres = initialCentres
    var labels = assign(centres)
    var iterations = 0
    while iterations < maxIterations {
        iterations += 1
        var sums = [Double](repeating: 0, count: k * dimension)
        var members = [Int](repeating: 0, count: k)
        for row in 0..<count {
            members[labels[row]] += 1
            for d in 0..<dimension { sums[labels[row] * dimension + d] += points[row * dimension + d] }
        }
        for centre in 0..<k where members[centre] > 0 {
            for d in 0..<dimension { centres[centre * dimension + d] = sums[centre * dimension + d] / Double(members[centre]) }
        }
        let relabelled = assign(centres)
        if relabelled == labels { break }
        labels = relabelled
    }
    return KMeansResult(labels: labels, centres: centres, iterations: iterations)
}
