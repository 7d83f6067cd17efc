import FixtureSupport
import Foundation
import Merging
import Testing

/// The merging math against Fixtures/records/merge-math.json (made by
/// Fixtures/scripts/record_merge_math.py from scipy and numpy).
struct MergeMathTests {
    let record: [String: Any]

    init() throws { record = try Fixtures.record("merge-math.json") }

    /// Largest |a - b| relative to |b|, with a floor of `scale · 1e-10` for values that are
    /// float64 noise (the zero singular values of a rank-deficient matrix).
    func worstRelative(_ actual: [Double], _ expected: [Double], scale: Double) -> Double {
        zip(actual, expected).map { abs($0 - $1) / max(abs($1), scale * 1e-10) }.max() ?? 0
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
}
