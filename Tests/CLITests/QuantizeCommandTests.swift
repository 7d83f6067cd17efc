import FixtureSupport
import Foundation
import Testing

/// `quantize` as a user runs it: a lossless F32 GGUF evaluates exactly like the checkpoint it
/// came from, a --bits plan lands on its budget and is reused by --plan, and every bad input the
/// issue names is one line, a non-zero exit and no output file.
struct QuantizeCommandTests {
    static let calibration = PruneCommandTests.calibration
    static let evaluation = ["--text", "Fixtures/text/heldout.txt", "--seq-len", "64", "--max-tokens", "256", "--json"]

    func perplexity(_ model: String) throws -> Double {
        let result = try MoECompressBinary.run(["eval", model] + Self.evaluation)
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: Any]
        return report.double("perplexity")
    }

    @Test func floatGGUFEvaluatesLikeTheCheckpoint() throws {
        for model in ["Fixtures/default-model", "Fixtures/models/tiny-mixtral", "Fixtures/models/tiny-qwen3-moe"] {
            let output = try Fixtures.temporaryDirectory().appendingPathComponent("model.gguf")
            let result = try MoECompressBinary.run(["quantize", model, "-o", output.path, "--types", "F32"])
            #expect(result.status == 0, "\(model): \(result.stderr)")
            // bf16 weights widen exactly and the permuted q/k rows are put back: same numbers.
            #expect(try perplexity(output.path) == perplexity(model), "\(model)")
        }
    }

    @Test func bitsPlanHitsItsBudgetAndIsReused() throws {
        let directory = try Fixtures.temporaryDirectory()
        let plan = directory.appendingPathComponent("plan.json"), output = directory.appendingPathComponent("mixed.gguf")
        let dry = try MoECompressBinary.run(["quantize", "Fixtures/default-model", "-o", plan.path, "--bits", "5",
                                             "--types", "Q4_0,Q5_0,Q8_0", "--dry-run"] + Self.calibration)
        #expect(dry.status == 0, "\(dry.stderr)")
        let written = try JSONSerialization.jsonObject(with: Data(contentsOf: plan)) as! [String: Any]
        let bits = written.double("bitsPerWeight")
        #expect(bits <= 5 && bits > 4.9, "\(bits)")
        #expect(Set(written.objects("tensors").map { $0["type"] as? String ?? "" }).isSuperset(of: ["F32", "Q4_0"]))
        let applied = try MoECompressBinary.run(["quantize", "Fixtures/default-model", "-o", output.path, "--plan", plan.path])
        #expect(applied.status == 0, "\(applied.stderr)")
        #expect(applied.stdout.contains(String(format: "%.4f bits/weight", bits)), "\(applied.stdout)")
        let mixed = try perplexity(output.path), full = try perplexity("Fixtures/default-model")
        // 256 held-out tokens move by a few percent either way; a broken file moves by far more.
        #expect(abs(mixed - full) < full * 0.1, "\(mixed) vs \(full)")
    }

    @Test func gptqWritesALoadableFileAndReportsStarvedExperts() throws {
        let output = try Fixtures.temporaryDirectory().appendingPathComponent("gptq.gguf")
        let result = try MoECompressBinary.run(["quantize", "Fixtures/default-model", "-o", output.path, "--types", "Q8_0", "--method", "gptq"]
                                               + Self.calibration)
        #expect(result.status == 0, "\(result.stderr)")
        let quantized = try perplexity(output.path), full = try perplexity("Fixtures/default-model")
        #expect(abs(quantized - full) < full * 0.02, "\(quantized) vs \(full)")
        // 64 calibration tokens: every expert sees fewer than GPTQ's minimum and is reported.
        let starved = try MoECompressBinary.run(["quantize", "Fixtures/default-model", "-o", output.path, "--types", "Q4_0", "--method", "gptq",
                                                 "--data", "Fixtures/text/calibration.txt", "--seq-len", "32", "--samples", "2", "--force"])
        #expect(starved.status == 0, "\(starved.stderr)")
        #expect(starved.stdout.contains("block_sparse_moe.experts.") && starved.stdout.contains("weighted rounding instead"), "\(starved.stdout)")
    }

    @Test func pruneThenQuantizeWithoutAnIntermediateCheckpoint() throws {
        let plan = try Fixtures.temporaryDirectory().appendingPathComponent("plan.json")
        let stats = try PruneCommandTests.statistics.get().path
        let result = try MoECompressBinary.run(["quantize", "Fixtures/default-model", "-o", plan.path, "--types", "Q8_0", "--prune-to", "6",
                                                "--stats", stats, "--dry-run"])
        #expect(result.status == 0, "\(result.stderr)")
        let written = try JSONSerialization.jsonObject(with: Data(contentsOf: plan)) as! [String: Any]
        let experts = written.objects("tensors").filter { ($0["role"] as? String)?.hasSuffix("_exps") ?? false }
        #expect(experts.count == 12 && experts.allSatisfy { ($0["shape"] as? [Int])?.last == 6 })
    }

    /// Prune to 7, merge those to 6 (merge's defaults), and lay out the GGUF of the result.
    @Test func pruneAndMergeThenQuantizeWithoutAnIntermediateCheckpoint() throws {
        let plan = try Fixtures.temporaryDirectory().appendingPathComponent("plan.json")
        let stats = try PruneCommandTests.statistics.get().path
        let result = try MoECompressBinary.run(["quantize", "Fixtures/default-model", "-o", plan.path, "--types", "Q8_0", "--prune-to", "7",
                                                "--merge-to", "6", "--merge-sample-tokens", "256", "--stats", stats, "--dry-run"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("merged to 6 experts per MoE layer"))
        let written = try JSONSerialization.jsonObject(with: Data(contentsOf: plan)) as! [String: Any]
        let experts = written.objects("tensors").filter { ($0["role"] as? String)?.hasSuffix("_exps") ?? false }
        #expect(experts.count == 12 && experts.allSatisfy { ($0["shape"] as? [Int])?.last == 6 })
    }

    @Test func badQuantizeInput() throws {
        let refuse = PruneCommandTests().expectRefused
        let directory = try Fixtures.temporaryDirectory()
        let output = directory.appendingPathComponent("never.gguf")
        let base = ["quantize", "Fixtures/default-model", "-o", output.path]
        try refuse(base + ["--bits", "1.5"] + Self.calibration, "--bits 1.5: the budget is below the smallest mix", output)
        try refuse(base + ["--bits", "40"] + Self.calibration, "--bits 40.0: the budget is above the largest mix", output)
        try refuse(base + ["--bits", "4"], "pass --data FILE[:N] or --stats FILE", output)
        try refuse(base + ["--types", "Q9_K"], "--types Q9_K: unknown ggml type", output)
        try refuse(base + ["--types", "Q4_K", "--method", "gptq"], "--method gptq measures each layer's input Hessians", output)
        try refuse(base, "pass --types TYPE (one ggml type), --bits B or --plan FILE", output)
        try refuse(base + ["--types", "Q8_0", "--merge-to", "6"], "--merge-to measures expert similarity on calibration text", output)
        try refuse(base + ["--types", "Q8_0", "--merge-to", "1"] + Self.calibration, "fewer than the 2 experts each token is routed to", output)
        let stats = try PruneCommandTests.statistics.get().path
        try refuse(["quantize", "Fixtures/models/tiny-mixtral", "-o", output.path, "--types", "Q8_0", "--stats", stats], "measured on another model", output)

        // Models llama.cpp's graph would compute differently (the tiny fixtures exercise both).
        try refuse(["quantize", "Fixtures/models/tiny-qwen2-moe", "-o", output.path, "--types", "F16"],
                   "layer 1 is dense, but llama.cpp's qwen2moe graph runs every layer as a sparse block", output)
        try refuse(["quantize", "Fixtures/models/tiny-olmoe", "-o", output.path, "--types", "F16"],
                   "'clip_qkv' is 2.5, but llama.cpp's olmoe graph does not clamp q, k and v", output)

        // A plan for another model.
        let plan = directory.appendingPathComponent("tiny-plan.json")
        let dry = try MoECompressBinary.run(["quantize", "Fixtures/models/tiny-mixtral", "-o", plan.path, "--types", "Q8_0", "--dry-run"])
        #expect(dry.status == 0, "\(dry.stderr)")
        try refuse(base + ["--plan", plan.path], "a plan for another model", output)

        // An existing output is kept without --force.
        let existing = directory.appendingPathComponent("existing.gguf")
        try Data("keep".utf8).write(to: existing)
        let kept = try MoECompressBinary.run(["quantize", "Fixtures/default-model", "-o", existing.path, "--types", "Q8_0"])
        #expect(kept.status != 0 && kept.stderr.contains("already exists"))
        #expect(try Data(contentsOf: existing) == Data("keep".utf8))
        // Writing into a directory that does not exist.
        let nowhere = directory.appendingPathComponent("missing/out.gguf")
        try refuse(["quantize", "Fixtures/default-model", "-o", nowhere.path, "--types", "Q8_0"], "does not exist", nowhere)
    }
}
