import ArgumentParser
import Foundation
import Inference
import Models
import Tensors
import Tokenizer

extension MoECompress {
    struct Eval: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure perplexity on a text file with this tool's own forward pass.",
            discussion: """
            Tokenizes the text with the model's tokenizer.json (adding its special tokens, as \
            transformers' tokenizer does by default), keeps the first --max-tokens ids, and cuts \
            them into consecutive non-overlapping windows of seq-len+1 ids stepping by seq-len, so \
            every id after the first is predicted exactly once with at most seq-len ids of context. \
            Windows are batched so each pass over the weights serves up to --batch-tokens ids; \
            weights are streamed one layer (and one expert) at a time.

            Example:
              moe-compress eval Fixtures/default-model \\
                --text Fixtures/text/heldout.txt --seq-len 128 --max-tokens 4096

            Faster on CPUs with AVX512-BF16, at bf16 accuracy:
              moe-compress eval Fixtures/default-model \\
                --text Fixtures/text/heldout.txt --compute bf16
            """)

        @Argument(help: "Checkpoint directory.")
        var model: String

        @Option(help: "UTF-8 text file to evaluate on.")
        var text: String

        // Numbers are parsed unconditionally, so that "-1" is read as a value and refused by
        // validate() rather than taken for an option.
        @Option(parsing: .unconditional, help: "Context length of each window (1 to 1048576).")
        var seqLen = 512

        @Option(parsing: .unconditional, help: "Use only the first N ids of the text (default: all).")
        var maxTokens: Int?

        @Option(parsing: .unconditional, help: "Ids per pass over the weights (more is faster, uses more activation memory).")
        var batchTokens = 8192

        @OptionGroup var computeOptions: ComputeOptions

        @Flag(help: "Print one JSON object instead of text.")
        var json = false

        static let maximumSequenceLength = 1 << 20

        func validate() throws {
            guard (1...Self.maximumSequenceLength).contains(seqLen) else {
                throw ValidationError("--seq-len \(seqLen): must be between 1 and \(Self.maximumSequenceLength)")
            }
            if let maxTokens, maxTokens < 2 { throw ValidationError("--max-tokens \(maxTokens): must be at least 2") }
            guard batchTokens > 0 else { throw ValidationError("--batch-tokens \(batchTokens): must be positive") }
        }

        func run() throws {
            try computeOptions.apply()
            let loaded = try Model.open(path: model)
            let tokenizer = try loaded.tokenizer()
            let content = try readUTF8Text(text)
            var ids = try tokenizeShowingProgress(content, with: tokenizer)
            if let maxTokens { ids = Array(ids.prefix(maxTokens)) }
            guard ids.count >= 2 else {
                throw ValidationError("\(text): the text gives \(ids.count) token(s); at least 2 are needed")
            }
            let forward = ForwardPass(model: loaded.description, source: loaded.source, precision: computeOptions.compute)
            let evaluator = try PerplexityEvaluator(forward: forward, sequenceLength: seqLen, batchTokens: batchTokens)
            let bar = ProgressBar(label: "eval")
            let result = try evaluator.evaluate(ids: ids) { done, total in bar.update(done: done, total: total) }
            if json {
                try printJSON(EvalReport(model: loaded.origin.path, text: text, compute: computeOptions.compute,
                                         result: result, timings: forward.timings))
            } else {
                print(String(format: "perplexity %.4f over %ld predicted tokens (%ld tokens, seq-len %ld)",
                             result.perplexity, result.predictedTokens, result.tokens, result.sequenceLength))
                print(String(format: "%.1f tokens/s (%.2f s)", result.tokensPerSecond, result.seconds) + ", \(computeOptions.compute.rawValue) compute, OpenBLAS core \(BLAS.coreName)")
            }
        }
    }
}

struct EvalReport: Encodable {
    let model: String
    let text: String
    let compute: String
    /// How bf16 linear layers ran, under `--compute bf16`: oneDNN's native kernel, or the f32 GEMM.
    let bf16Kernel: String?
    /// Instruction sets of this package's kernels and of oneDNN's.
    let isa: String
    let onednnISA: String
    let perplexity: Double
    let meanNLL: Double
    let tokens: Int
    let predictedTokens: Int
    let seqLen: Int
    let tokensPerSecond: Double
    let seconds: Double
    let blasCore: String
    let blasThreads: Int
    let weightSeconds: Double
    let expertMatmulSeconds: Double
    let expertMatmulGFLOPS: Double
    let attentionSeconds: Double
    let attentionKernelSeconds: Double
    let attentionKernelGFLOPS: Double

    init(model: String, text: String, compute: ComputePrecision, result: PerplexityResult, timings: ForwardTimings) {
        self.model = model
        self.text = text
        self.compute = compute.rawValue
        bf16Kernel = compute == .bfloat16 ? BFloat16Matmul.kernelDescription : nil
        isa = InstructionSet.current
        onednnISA = BLAS.oneDNNInstructionSet
        perplexity = result.perplexity
        meanNLL = result.meanNegativeLogLikelihood
        tokens = result.tokens
        predictedTokens = result.predictedTokens
        seqLen = result.sequenceLength
        tokensPerSecond = result.tokensPerSecond
        seconds = result.seconds
        blasCore = BLAS.coreName
        blasThreads = BLAS.threads
        weightSeconds = timings.weightSeconds
        expertMatmulSeconds = timings.expertMatmulSeconds
        expertMatmulGFLOPS = timings.expertMatmulGFLOPS
        attentionSeconds = timings.attentionSeconds
        attentionKernelSeconds = timings.attentionKernelSeconds
        attentionKernelGFLOPS = timings.attentionKernelGFLOPS
    }

    enum CodingKeys: String, CodingKey {
        case model, text, compute, perplexity, tokens, seconds, isa
        case onednnISA = "onednn_isa"
        case bf16Kernel = "bf16_kernel"
        case meanNLL = "mean_nll", predictedTokens = "predicted_tokens", seqLen = "seq_len"
        case tokensPerSecond = "tokens_per_second", blasCore = "blas_core", blasThreads = "blas_threads"
        case weightSeconds = "weight_seconds", expertMatmulSeconds = "expert_matmul_seconds"
        case expertMatmulGFLOPS = "expert_matmul_gflops", attentionSeconds = "attention_seconds"
        case attentionKernelSeconds = "attention_kernel_seconds", attentionKernelGFLOPS = "attention_kernel_gflops"
    }
}

/// Tokenizes the whole text (exact ids need it: a cut could change the tokens near it), saying on
/// stderr what it is doing when the text is large enough to take seconds (~2 MB/s).
private func tokenizeShowingProgress(_ content: String, with tokenizer: Tokenizer) throws -> [Int] {
    let bytes = content.utf8.count
    guard bytes >= 1 << 20 else { return try tokenizer.encode(content, addSpecialTokens: true) }
    let started = Date()
    FileHandle.standardError.write(Data(String(format: "tokenizing %.1f MiB of text…\n", Double(bytes) / 1_048_576).utf8))
    let ids = try tokenizer.encode(content, addSpecialTokens: true)
    FileHandle.standardError.write(Data(String(format: "tokenized: %ld ids in %.1f s\n", ids.count, Date().timeIntervalSince(started)).utf8))
    return ids
}
