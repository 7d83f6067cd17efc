import FixtureSupport
import Foundation
@testable import Merging
import Testing

/// The merging math against Fixtures/records/merge-math.json (made by
/// Fixtures/scripts/record_merge_math.py from scipy and numpy), and the properties that are the
/// point of the rules (dominant centres, no empty k-means cluster, exact singletons). `@testable`
/// for the dominant and empty-cluster rules, which clusterExperts uses but does not export.
struct MergeMathTests {
    let record: [String: Any]

    init() throws { record = try Fixtures.record("merge-math.json") }

    /// Largest |a - b| relative to |b|, with a floor of `scale · 1e-10` for values that are
    /// float64 noise (the zero singular values of a rank-deficient matrix).
    func worstRelative(_ actual: [Double], _ expected: [Double], scale: Double) -> Double {
        zip(actual, expected).map { abs($0 - $1) / max(abs($1), scale * 1e-10) }.max() ?? 0
    }

    /// Largest |a - b| relative to the largest |b|: for matrices whose small entries carry the
    /// rounding of the large ones (SVD reconstructions, solved rows).
    func worstRelativeToLargest(_ actual: [Double], _ expected: [Double]) -> Double {
        guard actual.count == expected.count else { return .infinity }
        let largest = expected.map(abs).max() ?? 0
        return (zip(actual, expected).map { abs($0 - $1) }.max() ?? 0) / max(largest, .leastNormalMagnitude)
    }

    // MARK: - Hierarchical clustering

    @Test func clusteringMatchesRecordedRule() throws {
        let cases = record.objects("clustering")
        #expect(!cases.isEmpty)
        for c in cases {
            for linkage in Linkage.allCases {
                let labels = try agglomerativeClusters(
                    distances: c.doubles("distances"), count: c.int("n"), clusters: c.int("k"), linkage: linkage)
                let what = "\(c["name"] ?? "?") k=\(c.int("k")) \(linkage)"
                #expect(labels == c.object("labels").ints(linkage.rawValue), "\(what): rule")
                // scipy's own clusters, except where its tie order is recorded as different.
                let differs = (c["scipy_tie_order_differs"] as? [String]) ?? []
                if !differs.contains(linkage.rawValue) {
                    #expect(labels == c.object("scipy_first_merges").ints(linkage.rawValue), "\(what): scipy")
                }
                // Where scipy's maxclust cut has exactly K clusters it is the same partition.
                let cut = c.object("scipy_maxclust").ints(linkage.rawValue)
                if Set(cut).count == c.int("k") && !differs.contains(linkage.rawValue) {
                    #expect(labels == cut, "\(what): fcluster maxclust")
                }
            }
        }
    }

    @Test func clusteringRejectsBadShapes() {
        let d: [Double] = [0, 1, 1, 0]
        #expect(throws: MergingError.self) { try agglomerativeClusters(distances: d, count: 2, clusters: 3, linkage: .single) }
        #expect(throws: MergingError.self) { try agglomerativeClusters(distances: d, count: 2, clusters: 0, linkage: .single) }
        #expect(throws: MergingError.self) { try agglomerativeClusters(distances: d, count: 3, clusters: 1, linkage: .single) }
        #expect(throws: MergingError.self) { try agglomerativeClusters(distances: [0, 1, 2, 0], count: 2, clusters: 1, linkage: .average) }
    }

    // MARK: - Linear assignment

    @Test func assignmentMatchesScipy() throws {
        let cases = record.objects("assignment")
        #expect(!cases.isEmpty)
        for c in cases {
            let (rows, columns, cost) = (c.int("rows"), c.int("columns"), c.doubles("cost"))
            for (key, maximize) in [("minimize", false), ("maximize", true)] {
                let expected = c.object(key)
                let assignment = try linearAssignment(cost: cost, rows: rows, columns: columns, maximize: maximize)
                let what = "\(c["name"] ?? "?") \(key)"
                #expect(assignment.count == rows, "\(what): one column per row")
                #expect(Set(assignment).count == rows && assignment.allSatisfy { (0..<columns).contains($0) }, "\(what): distinct columns")
                let total = assignment.enumerated().reduce(0.0) { $0 + cost[$1.offset * columns + $1.element] }
                let expectedTotal = expected.double("total")
                #expect(abs(total - expectedTotal) <= 1e-12 * max(1, abs(expectedTotal)), "\(what): total \(total) vs \(expectedTotal)")
                // A unique optimum must be scipy's columns; on tied optima they are scipy's too only
                // because the search scans columns in scipy's order (pinned scipy 1.17.1).
                let tie = c["unique_optimum"] as? Bool == true ? "" : " (tied optimum: scipy's scan order)"
                #expect(assignment == expected.ints("columns"), "\(what): columns\(tie)")
            }
        }
    }

    @Test func assignmentRejectsBadShapes() {
        #expect(throws: MergingError.self) { try linearAssignment(cost: [1, 2, 3, 4, 5, 6], rows: 3, columns: 2) }
        #expect(throws: MergingError.self) { try linearAssignment(cost: [1, 2, 3], rows: 2, columns: 2) }
        #expect(throws: MergingError.self) { try linearAssignment(cost: [.nan, 1, 1, 1], rows: 2, columns: 2) }
        #expect(throws: MergingError.self) { try linearAssignment(cost: [.infinity, .infinity, 1, 1], rows: 2, columns: 2) }
    }

    // MARK: - k-means

    @Test func kMeansPlusPlusAndLloydMatchTheNumpyReference() throws {
        let cases = record.objects("kmeans")
        #expect(!cases.isEmpty)
        for c in cases {
            let (x, n, d, k) = (c.doubles("x"), c.int("rows"), c.int("columns"), c.int("k"))
            let what = "\(c["name"] ?? "?")"
            var uniforms = c.doubles("uniforms").makeIterator()
            var drawn = 0
            let seeds = try kMeansPlusPlusSeeds(points: x, count: n, dimension: d, k: k) {
                drawn += 1
                return uniforms.next() ?? .nan  // .nan makes the seeding throw if it drew too many
            }
            #expect(seeds == c.ints("initial_centres"), "\(what): k-means++ centres")
            #expect(drawn == c.doubles("uniforms").count, "\(what): uniforms drawn")

            let initial = seeds.flatMap { x[($0 * d)..<($0 * d + d)] }
            let result = try kMeans(points: x, count: n, dimension: d, initialCentres: initial, maxIterations: c.int("max_iterations"))
            #expect(result.labels == c.ints("labels"), "\(what): labels")
            #expect(result.iterations == c.int("iterations"), "\(what): iterations")
            let worst = worstRelative(result.centres, c.doubles("centres"), scale: 1)
            #expect(worst <= 1e-12, "\(what): centres, worst relative error \(worst)")
        }
    }

    @Test func kMeansRejectsBadInput() {
        let x: [Double] = [0, 0, 1, 1]
        #expect(throws: MergingError.self) { try kMeansPlusPlusSeeds(points: x, count: 2, dimension: 2, k: 2) { 1.0 } }
        #expect(throws: MergingError.self) { try kMeansPlusPlusSeeds(points: x, count: 1, dimension: 2, k: 2) { 0.5 } }
        #expect(throws: MergingError.self) { try kMeans(points: x, count: 1, dimension: 2, initialCentres: [0, 0, 1, 1], maxIterations: 5) }
        #expect(throws: MergingError.self) { try kMeans(points: x, count: 2, dimension: 2, initialCentres: [0, 0, 1], maxIterations: 5) }
    }

    /// Every row identical: after the first centre all D² are 0, so the rest are the lowest
    /// unchosen rows and no further uniforms are drawn.
    @Test func kMeansPlusPlusOnCoincidentRowsTakesUnchosenRows() throws {
        var drawn = 0
        let seeds = try kMeansPlusPlusSeeds(points: [Double](repeating: 2, count: 8), count: 4, dimension: 2, k: 3) {
            drawn += 1
            return 0.6
        }
        #expect(Set(seeds).count == 3)
        #expect(drawn == 1)
    }

    // MARK: - SVD

    @Test func svdMatchesNumpy() throws {
        let cases = record.objects("svd")
        #expect(!cases.isEmpty)
        for c in cases {
            let (a, rows, columns) = (c.doubles("a"), c.int("rows"), c.int("columns"))
            let what = "\(c["name"] ?? "?")"
            let svd = try singularValueDecomposition(a, rows: rows, columns: columns)
            let expected = c.doubles("singular_values")
            let largest = expected.first ?? 1
            #expect(svd.singularValues.count == expected.count, "\(what): count")
            let worstS = worstRelative(svd.singularValues, expected, scale: largest)
            #expect(worstS <= 1e-4, "\(what): singular values, worst relative error \(worstS)")

            let norm = a.reduce(0) { $0 + $1 * $1 }.squareRoot()
            let errors = try c.ints("ranks").map { rank in
                let approximation = try svd.reconstruction(rank: rank)
                return zip(a, approximation).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
            }
            let worstE = worstRelative(errors, c.doubles("errors"), scale: norm)
            #expect(worstE <= 1e-4, "\(what): reconstruction errors \(errors), worst relative error \(worstE)")

            // Ranks for energy fractions, from numpy's own singular values (same arithmetic).
            let ranks = try c.doubles("energy_fractions").map { try rankRetainingEnergy(singularValues: expected, fraction: $0) }
            #expect(ranks == c.ints("energy_ranks"), "\(what): energy ranks")
        }
    }

    @Test func svdRejectsBadInput() throws {
        #expect(throws: MergingError.self) { try singularValueDecomposition([1, 2, 3], rows: 2, columns: 2) }
        #expect(throws: MergingError.self) { try singularValueDecomposition([], rows: 0, columns: 0) }
        let svd = try singularValueDecomposition([1, 2, 3, 4, 5, 6], rows: 2, columns: 3)
        #expect(throws: MergingError.self) { try svd.reconstruction(rank: 3) }
        #expect(throws: MergingError.self) { try rankRetainingEnergy(singularValues: [1], fraction: 1.5) }
        #expect(try rankRetainingEnergy(singularValues: [0, 0], fraction: 0.9) == 0)
    }

    // MARK: - Expert geometry

    @Test func geometryDistancesMatchScipyAndNumpy() throws {
        let cases = record.objects("geometry")
        #expect(!cases.isEmpty)
        for c in cases {
            for metric in [ExpertGeometry.Metric.euclidean, .cosine] {
                let geometry = try ExpertGeometry(rows: c.doubles("x"), count: c.int("count"), dimension: c.int("dimension"), metric: metric)
                let expected = c.doubles(metric.rawValue)
                #expect(geometry.distances.count == expected.count)
                let worst = worstRelative(geometry.distances, expected, scale: expected.max() ?? 1)
                #expect(worst <= 1e-9, "\(c["name"] ?? "?") \(metric): worst relative error \(worst)")
            }
        }
    }

    /// k-means sees only the embedding, so its points must have the metric's geometry:
    /// ‖x_i − x_j‖² = d² (euclidean) or 2 − 2 cos = 4 d (cosine).
    @Test func embeddingReproducesTheSquaredDistances() throws {
        for c in record.objects("geometry") {
            let n = c.int("count")
            for metric in [ExpertGeometry.Metric.euclidean, .cosine] {
                let geometry = try ExpertGeometry(rows: c.doubles("x"), count: n, dimension: c.int("dimension"), metric: metric)
                let points = try geometry.embedding()
                #expect(points.count == n * n)
                let squared = (0..<(n * n)).map { index in
                    (0..<n).reduce(0.0) { sum, d in
                        let difference = points[(index / n) * n + d] - points[(index % n) * n + d]
                        return sum + difference * difference
                    }
                }
                let target = c.doubles(metric.rawValue).map { metric == .euclidean ? $0 * $0 : 4 * $0 }
                let worst = worstRelativeToLargest(squared, target)
                #expect(worst <= 1e-9, "\(c["name"] ?? "?") \(metric): worst error \(worst) of the largest squared distance")
            }
        }
    }

    @Test func geometryRejectsBadShapes() {
        #expect(throws: MergingError.self) { try ExpertGeometry(rows: [1, 2, 3], count: 2, dimension: 2, metric: .cosine) }
        #expect(throws: MergingError.self) { try ExpertGeometry(gram: [1, 0, 0], count: 2, metric: .euclidean) }
        #expect(throws: MergingError.self) { try ExpertGeometry(gram: [.nan], count: 1, metric: .euclidean) }
    }

    // MARK: - Dominant centres and k-means without empty clusters

    /// Clusters are a partition of 0..<n into `k` non-empty ascending groups ordered by their
    /// smallest member.
    func expectPartition(_ clusters: [[Int]], n: Int, k: Int, _ what: String) {
        #expect(clusters.count == k && clusters.allSatisfy { !$0.isEmpty }, "\(what): \(k) non-empty clusters, got \(clusters)")
        #expect(clusters.flatMap { $0 }.sorted() == Array(0..<n), "\(what): a partition")
        #expect(clusters.allSatisfy { $0 == $0.sorted() } && clusters.map { $0[0] } == clusters.map { $0[0] }.sorted(), "\(what): order")
    }

    /// M-SMoE's rule as properties: the k most used experts (ties: the lower id) each lead their
    /// own cluster, and every other expert is with a centre no farther than any other centre.
    @Test func dominantClustersGatherAroundTheMostUsedExperts() throws {
        let c = try #require(record.objects("geometry").first { $0["name"] as? String == "rows-8x2" })
        let n = c.int("count")
        let usage: [Double] = [3, 9, 1, 9, 4, 0, 2, 7]  // tied 9s: expert 1 ranks before expert 3
        let byUsage = (0..<n).sorted { usage[$0] != usage[$1] ? usage[$0] > usage[$1] : $0 < $1 }
        #expect(byUsage.prefix(2) == [1, 3])
        for metric in [ExpertGeometry.Metric.euclidean, .cosine] {
            let geometry = try ExpertGeometry(rows: c.doubles("x"), count: n, dimension: c.int("dimension"), metric: metric)
            let distances = geometry.distances
            for k in 1...n {
                let clusters = try clusterExperts(geometry, method: .dominant, k: k, usage: usage, seed: 0)
                let what = "\(metric) k=\(k)"
                expectPartition(clusters, n: n, k: k, what)
                let centres = Set(byUsage.prefix(k))
                for cluster in clusters {
                    let own = cluster.filter(centres.contains)
                    #expect(own.count == 1, "\(what): \(cluster) holds one centre")
                    guard let centre = own.first else { continue }
                    for expert in cluster where expert != centre {
                        let nearest = centres.map { distances[expert * n + $0] }.min() ?? .infinity
                        #expect(distances[expert * n + centre] == nearest, "\(what): expert \(expert) is with its nearest centre")
                    }
                }
            }
        }
    }

    /// Labels with an empty cluster: the expert farthest from its centre, among clusters of two or
    /// more, starts it, so exactly k clusters are non-empty and only that expert moves.
    @Test func fillingEmptyClustersLeavesExactlyKNonEmpty() throws {
        let c = try #require(record.objects("kmeans").first)
        let (x, n, d) = (c.doubles("x"), c.int("rows"), c.int("columns"))
        let k = c.int("k") + 2
        let labels = c.ints("labels")  // k - 2 clusters used: labels k - 2 and k - 1 are empty
        let centres = c.doubles("centres") + Array(x[0..<(2 * d)])
        let filled = fillingEmptyClusters(labels, k: k, points: x, dimension: d, centres: centres)
        #expect(Set(filled) == Set(0..<k))
        #expect(zip(labels, filled).filter { $0 != $1 }.count == 2)
        // The first expert moved (into cluster k - 2) was the farthest from its own centre.
        func distance(_ row: Int, _ centre: Int) -> Double {
            (0..<d).reduce(0) { $0 + (x[row * d + $1] - centres[centre * d + $1]) * (x[row * d + $1] - centres[centre * d + $1]) }
        }
        let moved = try #require(filled.firstIndex(of: k - 2))
        let movable = (0..<n).filter { row in labels.filter { $0 == labels[row] }.count >= 2 }
        #expect(movable.contains(moved) && movable.allSatisfy { distance($0, labels[$0]) <= distance(moved, labels[moved]) })
    }

    /// Coincident experts: k-means++ picks coincident centres and Lloyd leaves some clusters
    /// empty; the merged layer must still get exactly k experts.
    @Test func kMeansClustersOfCoincidentExpertsAreNeverEmpty() throws {
        let rows: [Double] = [1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 2, 0, 0, 2, 0, 0, 0, 3]  // three distinct of six
        for metric in [ExpertGeometry.Metric.euclidean, .cosine] {
            let geometry = try ExpertGeometry(rows: rows, count: 6, dimension: 3, metric: metric)
            for k in 1...6 {
                for seed in UInt64(0)..<8 {
                    let clusters = try clusterExperts(geometry, method: .kmeans, k: k, usage: [Double](repeating: 1, count: 6), seed: seed)
                    expectPartition(clusters, n: 6, k: k, "\(metric) k=\(k) seed \(seed)")
                }
            }
        }
    }

    // MARK: - Subspace merge

    @Test func subspaceMergeMatchesNumpy() throws {
        let cases = record.objects("subspace")
        #expect(!cases.isEmpty)
        for c in cases {
            let (rows, columns, members, usage) = (c.int("rows"), c.int("columns"), c.matrices("members"), c.doubles("usage"))
            let choices: [(String, ([String: Any]) -> RankChoice)] = [
                ("by_rank", { .rank($0.int("rank")) }), ("by_energy", { .energy($0.double("fraction")) }),
            ]
            for (key, choice) in choices {
                for expected in c.objects(key) {
                    let (merged, summary) = try subspaceMerge(members, weights: usage, rows: rows, columns: columns, keeping: choice(expected))
                    let what = "\(c["name"] ?? "?") \(choice(expected))"
                    #expect(summary.rank == expected.int("rank"), "\(what): rank")
                    #expect(summary.fullRank == c.int("full_rank"), "\(what): full rank")
                    #expect(abs(summary.retainedEnergy - expected.double("energy")) <= 1e-12, "\(what): energy \(summary.retainedEnergy)")
                    let worst = worstRelativeToLargest(merged, expected.doubles("merged"))
                    #expect(worst <= 1e-9, "\(what): merged, worst error \(worst) of the largest value")
                }
            }
        }
    }

    /// At full rank nothing is truncated: the merge is the usage-weighted average (equal weights
    /// when no member was used).
    @Test func fullRankSubspaceMergeIsTheWeightedAverage() throws {
        for c in record.objects("subspace") {
            let (rows, columns, members, usage) = (c.int("rows"), c.int("columns"), c.matrices("members"), c.doubles("usage"))
            let total = usage.reduce(0, +)
            let weights = usage.map { total > 0 ? $0 / total : 1 / Double(usage.count) }
            let average = (0..<(rows * columns)).map { index in zip(members, weights).reduce(0.0) { $0 + $1.1 * $1.0[index] } }
            let (merged, summary) = try subspaceMerge(members, weights: usage, rows: rows, columns: columns, keeping: .rank(c.int("full_rank")))
            #expect(abs(summary.retainedEnergy - 1) <= 1e-12)
            let worst = worstRelativeToLargest(merged, average)
            #expect(worst <= 1e-12, "\(c["name"] ?? "?"): worst error \(worst) of the largest value")
        }
    }

    @Test func subspaceMergeRejectsRanksOutsideTheConcatenation() throws {
        for c in record.objects("subspace") {
            let (rows, columns, members, usage) = (c.int("rows"), c.int("columns"), c.matrices("members"), c.doubles("usage"))
            for rank in [0, c.int("full_rank") + 1] {
                #expect(throws: MergingError.self) { try subspaceMerge(members, weights: usage, rows: rows, columns: columns, keeping: .rank(rank)) }
            }
        }
        #expect(throws: MergingError.self) { try subspaceMerge([[1, 2]], weights: [1, 1], rows: 1, columns: 2, keeping: .rank(1)) }
        #expect(throws: MergingError.self) { try subspaceMerge([[1, 2]], weights: [-1], rows: 1, columns: 2, keeping: .rank(1)) }
        #expect(throws: MergingError.self) { try subspaceMerge([[1, 2]], weights: [1], rows: 1, columns: 2, keeping: .energy(1.5)) }
    }

    // MARK: - Router fit

    func routerFit(_ c: [String: Any], initial: [Double]? = nil) throws -> RouterFit {
        try RouterFit(inputs: c.floats("x"), tokens: c.int("tokens"), hidden: c.int("hidden"), weights: c.floats("weights"),
                      bias: c.optionalFloats("router_bias"), clusters: c.intMatrices("clusters"),
                      initial: initial ?? c.doubles("initial"), initialBias: c.optionalDoubles("initial_bias"), ridge: c.double("ridge"))
    }

    @Test func routerFitMatchesNumpy() throws {
        let cases = record.objects("router_fit")
        #expect(!cases.isEmpty)
        for c in cases {
            let what = "\(c["name"] ?? "?")"
            let fit = try routerFit(c)
            let worst = worstRelativeToLargest(fit.rows, c.doubles("rows"))
            #expect(worst <= 1e-8, "\(what): rows, worst error \(worst) of the largest value")
            #expect((fit.bias == nil) == (c.optionalDoubles("bias") == nil), "\(what): bias present")
            if let bias = fit.bias, let expected = c.optionalDoubles("bias") {
                let worstBias = worstRelativeToLargest(bias, expected)
                #expect(worstBias <= 1e-8, "\(what): bias, worst error \(worstBias) of the largest value")
            }
            #expect(fit.summary.tokens == c.int("tokens"))
            for (ours, key) in [(fit.summary.rmsErrorInitial, "rms_error_initial"), (fit.summary.rmsErrorFitted, "rms_error_fitted")] {
                let expected = c.double(key)
                #expect(abs(ours - expected) <= 1e-8 * max(expected, 1e-4), "\(what): \(key) \(ours) vs \(expected)")
            }
        }
    }

    /// A singleton's target is its own logit, so starting from its own row it keeps that row
    /// (and bias) exactly, whatever the other clusters need.
    @Test func routerFitKeepsSingletonRowsExactly() throws {
        for c in record.objects("router_fit") {
            let (hidden, clusters, weights, bias) = (c.int("hidden"), c.intMatrices("clusters"), c.floats("weights"), c.optionalFloats("router_bias"))
            var initial = c.doubles("initial")
            for (index, members) in clusters.enumerated() where members.count == 1 {
                for h in 0..<hidden { initial[index * hidden + h] = Double(weights[members[0] * hidden + h]) }
            }
            var initialBias = c.optionalDoubles("initial_bias")
            for (index, members) in clusters.enumerated() where members.count == 1 { initialBias?[index] = bias.map { Double($0[members[0]]) } ?? 0 }
            let fit = try RouterFit(inputs: c.floats("x"), tokens: c.int("tokens"), hidden: hidden, weights: weights, bias: bias,
                                    clusters: clusters, initial: initial, initialBias: initialBias, ridge: c.double("ridge"))
            for (index, members) in clusters.enumerated() where members.count == 1 {
                let own = weights[(members[0] * hidden)..<((members[0] + 1) * hidden)].map(Double.init)
                #expect(Array(fit.rows[(index * hidden)..<((index + 1) * hidden)]) == own, "\(c["name"] ?? "?"): singleton \(members[0])")
                #expect(fit.bias?[index] == bias.map { Double($0[members[0]]) }, "\(c["name"] ?? "?"): singleton \(members[0]) bias")
            }
        }
    }

    @Test func routerFitRejectsBadInput() {
        let x: [Float] = [1, 2, 3, 4]
        #expect(throws: MergingError.self) {
            try RouterFit(inputs: x, tokens: 2, hidden: 2, weights: x, bias: nil, clusters: [[0, 1]], initial: [0, 0], initialBias: nil, ridge: 0)
        }
        #expect(throws: MergingError.self) {
            try RouterFit(inputs: x, tokens: 2, hidden: 2, weights: x, bias: [0, 0], clusters: [[0, 1]], initial: [0, 0], initialBias: nil, ridge: 1)
        }
        #expect(throws: MergingError.self) {
            try RouterFit(inputs: x, tokens: 2, hidden: 2, weights: x, bias: nil, clusters: [[0, 2]], initial: [0, 0], initialBias: nil, ridge: 1)
        }
    }

    // MARK: - Neuron alignment

    func expert(_ c: [String: Any], _ key: String) throws -> ExpertMatrices {
        let m = c.object(key)
        return try ExpertMatrices(width: c.int("width"), hidden: c.int("hidden"), gate: m.floats("gate"), up: m.floats("up"), down: m.floats("down"))
    }

    @Test func neuronAlignmentMatchesScipy() throws {
        let cases = record.objects("alignment")
        #expect(!cases.isEmpty)
        for c in cases {
            let order = try neuronAlignment(reference: expert(c, "reference"), member: expert(c, "member"))
            #expect(order == c.ints("columns"), "\(c["name"] ?? "?")")
        }
    }

    /// A member that is the reference with its neurons reordered aligns back onto it exactly:
    /// the order found is the inverse permutation; the reference aligned to itself is unmoved.
    @Test func neuronAlignmentUndoesAPermutation() throws {
        for c in record.objects("alignment") {
            let reference = try expert(c, "reference")
            let perm = c.ints("perm")
            let member = reference.permuted(perm)
            let order = try neuronAlignment(reference: reference, member: member)
            #expect(member.permuted(order) == reference, "\(c["name"] ?? "?"): permuted back")
            #expect(order.map { perm[$0] } == Array(0..<reference.width), "\(c["name"] ?? "?"): the inverse permutation")
            #expect(try neuronAlignment(reference: reference, member: reference) == Array(0..<reference.width))
        }
    }

    @Test func neuronAlignmentRejectsMismatchedExperts() throws {
        let a = try ExpertMatrices(width: 2, hidden: 1, gate: [1, 2], up: [3, 4], down: [5, 6])
        let b = try ExpertMatrices(width: 1, hidden: 2, gate: [1, 2], up: [3, 4], down: [5, 6])
        #expect(throws: MergingError.self) { try neuronAlignment(reference: a, member: b) }
        #expect(throws: MergingError.self) { try ExpertMatrices(width: 2, hidden: 2, gate: [1, 2], up: [3, 4], down: [5, 6]) }
    }
}

/// Nested arrays and nullable lists, which the shared FixtureSupport accessors do not read.
/// (JSONSerialization on Linux hands long numbers over as NSDecimalNumber, whose doubleValue can
/// be an ulp off the recorded float64: exact comparisons go through the Float inputs instead.)
private extension Dictionary where Key == String, Value == Any {
    func matrices(_ key: String) -> [[Double]] { ((self[key] as? [[Any]]) ?? []).map { $0.map { ($0 as? NSNumber)?.doubleValue ?? .nan } } }
    func intMatrices(_ key: String) -> [[Int]] { ((self[key] as? [[Any]]) ?? []).map { $0.map { ($0 as? NSNumber)?.intValue ?? Int.min } } }
    /// nil where the record holds null.
    func optionalDoubles(_ key: String) -> [Double]? { self[key] is NSNull ? nil : doubles(key) }
    func optionalFloats(_ key: String) -> [Float]? { self[key] is NSNull ? nil : floats(key) }
}
