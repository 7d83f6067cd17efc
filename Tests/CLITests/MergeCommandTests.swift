import FixtureSupport
import Foundation
import Testing

/// `merge` as a user runs it: the report, prune-then-merge, the written model evaluating to the
/// report's "after", and every bad input the issue names (one line, non-zero exit, no output).
struct MergeCommandTests {
    static let calibration = PruneCommandTests.calibration

    func run(_ arguments: [String]) throws -> (CommandResult, URL) {
        let output = try Fixtures.temporaryDirectory().appendingPathComponent("merged")
        let result = try MoECompressBinary.run(["merge", "Fixtures/default-model", "-o", output.path] + arguments)
        return (result, output)
    }

    @Test func mergeWithEvalWritesASmallerModelAndItsReport() throws {
        let (result, output) = try run(["--ratio", "0.25", "--fuse", "subspace", "--energy", "0.8", "--router", "fit"] + Self.calibration
                                       + ["--eval", "Fixtures/text/heldout.txt", "--eval-seq-len", "64", "--eval-max-tokens", "256"])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: output.appendingPathComponent("merge-report.json"))) as! [String: Any]
        let layers = report.objects("layers")
        #expect(layers.count == 4)
        for layer in layers {
            let clusters = (layer["clusters"] as? [[Int]]) ?? []
            #expect(clusters.count == 6 && clusters.flatMap { $0 }.sorted() == Array(0..<8))
            #expect((layer["distances"] as? [[Double]])?.count == 8)
            let fit = layer.object("router_fit")
            #expect(fit.double("rms_error_fitted") <= fit.double("rms_error_initial"))
            // Every merged expert of two or more members reports its kept rank per projection.
            let subspace = layer.object("subspace")
            #expect(subspace.count == clusters.filter { $0.count > 1 }.count)
            for (_, projections) in subspace {
                for (_, kept) in (projections as? [String: [String: Any]]) ?? [:] {
                    #expect(kept.double("retained_energy") >= 0.8 && kept.int("rank") <= kept.int("full_rank"))
                }
            }
        }
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: output.appendingPathComponent("config.json"))) as! [String: Any]
        #expect(config.int("num_local_experts") == 6 && config.int("num_experts_per_tok") == 2)
        let perplexity = report.object("perplexity")
        let evaluated = try MoECompressBinary.run(["eval", output.path, "--text", "Fixtures/text/heldout.txt", "--seq-len", "64", "--max-tokens", "256", "--json"])
        let measured = try JSONSerialization.jsonObject(with: Data(evaluated.stdout.utf8)) as! [String: Any]
        #expect(abs(measured.double("perplexity") - perplexity.double("after")) < 1e-9)
    }

    @Test func pruneThenMergeAndMergeFromStatistics() throws {
        let stats = try PruneCommandTests.statistics.get().path
        let (result, output) = try run(["--experts", "4", "--prune-to", "6", "--stats", stats, "--sample-tokens", "128"])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: output.appendingPathComponent("merge-report.json"))) as! [String: Any]
        #expect(report.object("pruned_first").objects("layers").allSatisfy { $0.ints("kept").count == 6 })
        #expect(report.objects("layers").allSatisfy { (($0["clusters"] as? [[Int]]) ?? []).flatMap { $0 }.sorted() == Array(0..<6) })
        // Weight similarity with a non-fitted router needs no pass: usage comes from the file.
        let (weights, _) = try run(["--experts", "6", "--similarity", "weights", "--cluster", "kmeans", "--router", "dominant", "--stats", stats])
        #expect(weights.status == 0, "\(weights.stderr)")
        #expect(!weights.stderr.contains("sample"))
    }

    @Test func badMergeInput() throws {
        let stats = try PruneCommandTests.statistics.get().path
        let refuse = PruneCommandTests().expectRefused
        let output = try Fixtures.temporaryDirectory().appendingPathComponent("never")
        let base = ["merge", "Fixtures/default-model", "-o", output.path, "--stats", stats]
        try refuse(base + ["--experts", "8"], "--experts 8: layer 0 has 8 experts; merging needs fewer", output)
        try refuse(base + ["--experts", "1"], "--experts 1: fewer than the 2 experts each token is routed to", output)
        try refuse(base + ["--experts", "0"], "--experts 0: must be positive", output)
        try refuse(base + ["--experts", "6", "--fuse", "subspace", "--rank", "100000"], "--rank 100000: the cluster's", output)
        try refuse(base + ["--experts", "6", "--rank", "4"], "--rank and --energy apply to --fuse subspace", output)
        try refuse(base + ["--experts", "6", "--fuse", "subspace", "--energy", "1.5"], "--energy 1.5: must be in (0, 1]", output)
        try refuse(base + ["--experts", "6", "--prune-to", "5"], "--experts 6: layer 0 has 5 experts; merging needs fewer", output)
        try refuse(["merge", "Fixtures/models/tiny-mixtral", "-o", output.path, "--experts", "4", "--stats", stats], "measured on another model", output)
        try refuse(["merge", "Fixtures/default-model", "-o", output.path, "--experts", "4"], "pass exactly one of --stats FILE and --data FILE[:N]", output)
        try refuse(["merge", "Fixtures/default-model", "-o", output.path, "--experts", "4", "--cluster", "spectral", "--stats", stats], "spectral", output)
    }
}
