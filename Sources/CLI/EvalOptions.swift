import ArgumentParser
import Foundation
import Inference
import Models

/// `--eval FILE` on every stage command: held-out perplexity before and after the stage, by the
/// same forward pass and windows as `eval`.
struct EvalOptions: ParsableArguments {
    @Option(name: .customLong("eval"), help: ArgumentHelp("Held-out UTF-8 text: print and report perplexity before and after.", valueName: "file"))
    var evalText: String?

    @Option(parsing: .unconditional, help: "Context length of the --eval windows.")
    var evalSeqLen = 512

    @Option(parsing: .unconditional, help: "Use only the first N ids of the --eval text (default: all).")
    var evalMaxTokens: Int?

    func validate() throws {
        guard evalSeqLen > 0 else { throw ValidationError("--eval-seq-len \(evalSeqLen): must be positive") }
        if let evalMaxTokens, evalMaxTokens < 2 { throw ValidationError("--eval-max-tokens \(evalMaxTokens): must be at least 2") }
    }

    /// The held-out ids, tokenized once with the input model's tokenizer (stages keep the vocabulary).
    func ids(for model: Model) throws -> [Int]? {
        guard let evalText else { return nil }
        var ids = try model.tokenizer().encode(readUTF8Text(evalText), addSpecialTokens: true)
        if let evalMaxTokens { ids = Array(ids.prefix(evalMaxTokens)) }
        guard ids.count >= 2 else { throw ValidationError("\(evalText): the text gives \(ids.count) token(s); at least 2 are needed") }
        return ids
    }

    func measure(_ model: Model, ids: [Int], label: String, precision: ComputePrecision) throws -> PerplexityResult {
        let bar = ProgressBar(label: label)
        return try model.perplexity(of: ids, sequenceLength: evalSeqLen, precision: precision) { bar.update(done: $0, total: $1) }
    }
}

/// Before/after perplexity as stage reports record it.
struct PerplexityComparison: Encodable {
    let text: String
    let seqLen: Int
    let tokens: Int
    let before: Double
    let after: Double

    enum CodingKeys: String, CodingKey { case text, tokens, before, after, seqLen = "seq_len" }
}
