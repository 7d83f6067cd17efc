import ArgumentParser
import Foundation
import Inference
import Models
import Tensors
import Tokenizer

extension MoECompress {
    struct Forward: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run one sequence and show next-token predictions and each MoE layer's routing.",
            discussion: """
            For every position: the most likely next tokens, and in each sparse layer the experts \
            the router chose with their weights. --json prints {"input_ids", "logits" (one row of \
            vocab_size floats per position), "routing": [{"layer", "top_k_index", "top_k_weights"}]} \
            with layer indices as in the checkpoint's tensor names.

            Example:
              moe-compress forward Fixtures/default-model --text "The quick brown fox"
              moe-compress forward Fixtures/models/tiny-mixtral --ids 1,2,3 --json
            """)

        @Argument(help: "Checkpoint directory.")
        var model: String

        @Option(help: "Comma-separated token ids.")
        var ids: String?

        @Option(help: "Text to tokenize with the model's tokenizer.json (special tokens added).")
        var text: String?

        @Option(parsing: .unconditional, help: "How many next-token predictions to show per position.")
        var top = 5

        @OptionGroup var computeOptions: ComputeOptions

        @Flag(help: "Print one JSON object instead of text.")
        var json = false

        func validate() throws {
            guard (ids == nil) != (text == nil) else { throw ValidationError("pass exactly one of --ids and --text") }
            guard top > 0 else { throw ValidationError("--top must be positive") }
        }

        func run() throws {
            try computeOptions.apply()
            let loaded = try Model.open(path: model)
            let tokenizer: Tokenizer?
            let inputIDs: [Int]
            if let ids {
                inputIDs = try parseIDs(ids)
                tokenizer = try? loaded.tokenizer()  // only to show the tokens, when there is one
            } else {
                let required = try loaded.tokenizer()
                inputIDs = try required.encode(text ?? "", addSpecialTokens: true)
                tokenizer = required
            }
            guard !inputIDs.isEmpty else { throw ValidationError("the input gives no tokens") }

            let forward = ForwardPass(model: loaded.description, source: loaded.source, precision: computeOptions.compute)
            let recorder = RoutingRecorder()
            let bar = ProgressBar(label: "forward")
            let states = try forward.hiddenStates(TokenBatch(sequences: [inputIDs]), observer: recorder) { done, total in
                bar.update(done: done, total: total)
            }
            let logits = try forward.outputHead().logits(states.pointer, rows: inputIDs.count)
            let vocabulary = logits.count / inputIDs.count

            if json {
                try printJSON(ForwardReport(inputIDs: inputIDs, logits: logits.array, vocabulary: vocabulary, traces: recorder.traces))
                return
            }
            for (position, id) in inputIDs.enumerated() {
                let row = Array(UnsafeBufferPointer(start: logits.pointer + position * vocabulary, count: vocabulary))
                let probabilities = softmax(row)
                let best = row.withUnsafeBufferPointer { topKIndices($0.baseAddress!, count: vocabulary, k: min(top, vocabulary)) }
                let predictions = best.map { "\(display(tokenizer, $0)) \(String(format: "%.3f", probabilities[$0]))" }
                print("[\(position)] \(display(tokenizer, id)) → \(predictions.joined(separator: ", "))")
                for trace in recorder.traces {
                    let k = trace.expertsPerToken
                    let choices = (0..<k).map { slot in
                        "e\(trace.selectedExperts[position * k + slot]) \(String(format: "%.3f", trace.selectedWeights[position * k + slot]))"
                    }
                    print("      layer \(trace.layer): \(choices.joined(separator: ", "))")
                }
            }
        }

        private func parseIDs(_ list: String) throws -> [Int] {
            try list.split(separator: ",").map { part in
                guard let id = Int(part.trimmingCharacters(in: .whitespaces)) else {
                    throw ValidationError("--ids: '\(part)' is not an integer")
                }
                return id
            }
        }

        private func display(_ tokenizer: Tokenizer?, _ id: Int) -> String {
            guard let piece = tokenizer?.tokenString(id) else { return "#\(id)" }
            return "\(id) \(piece.debugDescription)"
        }
    }
}

struct ForwardReport: Encodable {
    struct Routing: Encodable {
        let layer: Int
        let topKIndex: [[Int]]
        let topKWeights: [[Float]]
        enum CodingKeys: String, CodingKey { case layer, topKIndex = "top_k_index", topKWeights = "top_k_weights" }
    }

    let inputIDs: [Int]
    let logits: [[Float]]
    let routing: [Routing]

    enum CodingKeys: String, CodingKey { case inputIDs = "input_ids", logits, routing }

    init(inputIDs: [Int], logits: [Float], vocabulary: Int, traces: [RoutingTrace]) {
        self.inputIDs = inputIDs
        self.logits = (0..<inputIDs.count).map { Array(logits[($0 * vocabulary)..<(($0 + 1) * vocabulary)]) }
        routing = traces.map { trace in
            let k = trace.expertsPerToken
            return Routing(layer: trace.layer,
                           topKIndex: (0..<trace.tokenCount).map { Array(trace.selectedExperts[($0 * k)..<(($0 + 1) * k)]) },
                           topKWeights: (0..<trace.tokenCount).map { Array(trace.selectedWeights[($0 * k)..<(($0 + 1) * k)]) })
        }
    }
}
