import FixtureSupport
import Foundation
import Testing

struct EvalCommandTests {
    /// `moe-compress eval` on the trained default model agrees with the perplexity transformers
    /// recorded on the same text, sequence length and token count.
    @Test func perplexityOfTheDefaultModelMatchesTransformers() throws {
        let record = try Fixtures.record("default-model.json")
        let result = try MoECompressBinary.run([
            "eval", record["model"] as! String, "--text", record["text"] as! String,
            "--seq-len", String(record.int("seq_len")), "--max-tokens", String(record.int("max_tokens")), "--json",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: Any]
        #expect(report.int("tokens") == record.int("tokens"))
        #expect(report.int("seq_len") == record.int("seq_len"))
        #expect(report.double("tokens_per_second") > 0)
        let ours = report.double("perplexity"), theirs = record.double("perplexity")
        #expect(abs(ours - theirs) / theirs < 0.005, "moe-compress \(ours) vs transformers \(theirs)")
        #expect(ours < record.double("unigram_perplexity") / 2, "the trained model should beat a unigram model clearly")
    }

    /// `--compute bf16` moves the perplexity no further from transformers' float32 value than
    /// transformers' own bf16 inference does (Fixtures/records/bf16-reference.json).
    @Test func bfloat16PerplexityIsNoFurtherFromFloat32ThanTransformersBFloat16() throws {
        let record = try Fixtures.record("default-model.json")
        let yardstick = try Fixtures.record("bf16-reference.json").object("default_model")
        let result = try MoECompressBinary.run([
            "eval", record["model"] as! String, "--text", record["text"] as! String, "--compute", "bf16",
            "--seq-len", String(record.int("seq_len")), "--max-tokens", String(record.int("max_tokens")), "--json",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: Any]
        #expect(report["compute"] as? String == "bf16")
        let float32 = record.double("perplexity")
        let ours = abs(report.double("perplexity") - float32), theirs = abs(yardstick.double("perplexity") - float32)
        #expect(theirs > 0 && ours <= theirs, "bf16 perplexity \(report.double("perplexity")) vs transformers bf16 \(yardstick.double("perplexity")), float32 \(float32)")
    }

    /// With oneDNN held to AVX2 (as on a CPU without AVX512-BF16) bf16 compute runs through the
    /// Float32 GEMM on bf16-rounded operands: the same numbers up to summation order, which each
    /// layer's bf16 rounding of its input amplifies a little (measured: 3e-5 relative).
    @Test func bfloat16ComputeWithoutANativeBFloat16Product() throws {
        func evaluate(_ environment: [String: String]) throws -> [String: Any] {
            let result = try MoECompressBinary.run(
                ["eval", "Fixtures/default-model", "--text", "Fixtures/text/heldout.txt", "--max-tokens", "512",
                 "--seq-len", "128", "--compute", "bf16", "--json"], environment: environment)
            #expect(result.status == 0, "\(result.stderr)")
            return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: Any]
        }
        let portable = try evaluate(["ONEDNN_MAX_CPU_ISA": "AVX2"])
        #expect((portable["bf16_kernel"] as? String)?.contains("f32 GEMM") == true, "\(portable)")
        let native = try evaluate([:])
        let (ours, theirs) = (portable.double("perplexity"), native.double("perplexity"))
        #expect(abs(ours - theirs) / theirs < 1e-4, "portable \(ours) vs \(native["bf16_kernel"] ?? "") \(theirs)")
    }

    /// MOE_COMPRESS_MAX_ISA=scalar runs this package's portable C kernels and caps oneDNN at SSE4.1,
    /// with Float32 results unchanged up to rounding.
    @Test func portableKernelsGiveTheSamePerplexity() throws {
        func evaluate(_ environment: [String: String]) throws -> [String: Any] {
            let result = try MoECompressBinary.run(
                ["eval", "Fixtures/default-model", "--text", "Fixtures/text/heldout.txt", "--max-tokens", "512",
                 "--seq-len", "128", "--json"], environment: environment)
            #expect(result.status == 0, "\(result.stderr)")
            return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: Any]
        }
        let scalar = try evaluate(["MOE_COMPRESS_MAX_ISA": "scalar"])
        #expect(scalar["isa"] as? String == "scalar")
        #expect(scalar["onednn_isa"] as? String == "sse41")
        let best = try evaluate(["MOE_COMPRESS_MAX_ISA": ""])
        let (ours, theirs) = (scalar.double("perplexity"), best.double("perplexity"))
        #expect(abs(ours - theirs) / theirs < 1e-5, "scalar \(ours) vs \(best["isa"] ?? "") \(theirs)")
    }

    @Test func forwardJSONHasLogitsAndRoutingForEverySparseLayer() throws {
        let record = try Fixtures.record("tiny-mixtral.json")
        let ids = record.objects("forward")[1].ints("input_ids")
        let result = try MoECompressBinary.run(["forward", "Fixtures/models/tiny-mixtral", "--ids", ids.map(String.init).joined(separator: ","), "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: Any]
        #expect(report.ints("input_ids") == ids)
        #expect((report["logits"] as? [[Any]])?.count == ids.count)
        #expect(report.objects("routing").map { $0.int("layer") } == record.objects("forward")[1].objects("routing").map { $0.int("layer") })
    }

    @Test func inspectReportsTheMoELayout() throws {
        let result = try MoECompressBinary.run(["inspect", "Fixtures/models/tiny-qwen2-moe", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: Any]
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.url("Fixtures/models/tiny-qwen2-moe/config.json"))) as! [String: Any]
        #expect(report.int("experts") == config.int("num_experts"))
        #expect(report.int("top_k") == config.int("num_experts_per_tok"))
        #expect(report.ints("dense_layers") == config.ints("mlp_only_layers"))
        #expect(report.object("parameters").int("shared_experts") > 0)
        #expect(report.objects("shards").count >= 3)
    }
}
