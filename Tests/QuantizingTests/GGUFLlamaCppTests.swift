import Checkpoint
import FixtureSupport
import Foundation
import GGUF
import Inference
import Models
import Quantization
import Quantizing
import Testing

/// GGUF files as llama.cpp itself reads them. Fixtures/scripts/record_gguf_reference.py ran
/// `moe-compress quantize` and then llama.cpp (llama-cpp-python 0.3.36, CPU) on each file; every
/// recorded case is written again here with the library, as the CLI writes it, and
/// moe-compress's forward pass on the written file is compared with llama.cpp's logits.
struct GGUFLlamaCppTests {
    static let models = ["tiny-mixtral", "tiny-qwen2-moe", "tiny-qwen3-moe", "tiny-olmoe", "default-model"]

    /// How close moe-compress's logits must be to llama.cpp's on the same file; `relative` is the
    /// largest |difference| at a position over the largest |logit| at the recorded positions.
    /// Measured on the committed record (48 ids; 6 recorded positions for the non-F32 types):
    /// - F32: max |Δ| ≤ 1.4e-5 (default model), ≤ 9.2e-6 (tiny; 5e-6 of it is the record's
    ///   rounding to 1e-5); arg-max the same everywhere.
    /// - F16: llama.cpp rounds each matrix product's input to F16 (F16's vec_dot_type), we
    ///   compute in Float32 from the same F16 weights: relative ≤ 1.3e-3 (tiny-qwen3-moe),
    ///   ≤ 5.1e-4 for the others; arg-max the same everywhere.
    /// - Q8_0, Q5_1, Q5_0, Q4_0: llama.cpp rounds the inputs to q8_0 / q8_1 blocks (8 bits per
    ///   value, one scale per 32; k-quants' inputs go to q8_K, one scale per 256): relative ≤ 2.4e-2 (tiny-qwen3-moe Q4_0), ≤ 1.2e-2 for the
    ///   others, median over positions ≤ 1.6e-2; arg-max agreement ≥ 95.8% (46 of 48). Against
    ///   llama.cpp on the twin file whose tensors ggml itself widened to F32 (the weights exactly
    ///   as llama.cpp decodes them, without that rounding): max |Δ| ≤ 1.3e-5 — the same weights.
    /// That rounding can also resolve a near-tie between two experts the other way at a token,
    /// which moves that token's logits by a quantization error's worth (seen: tiny-qwen3-moe Q8_0,
    /// position 30, 1.16 = 0.3 relative); so one recorded position may exceed the bound.
    struct Tolerance {
        let relative: Float
        let exemptPositions: Int
        let argmaxAgreement: Double

        static func of(_ type: GGMLType) -> Tolerance {
            switch type {
            case .f32: Tolerance(relative: 0, exemptPositions: 0, argmaxAgreement: 1)  // 1e-3 absolute, below
            case .f16, .bf16: Tolerance(relative: 3e-3, exemptPositions: 1, argmaxAgreement: 0.95)
            default: Tolerance(relative: 4e-2, exemptPositions: 1, argmaxAgreement: 0.9)
            }
        }
    }

    /// As the transformers parity tests: every logit of an F32 file, and of a quantized file
    /// against its dequantized twin.
    static let absolute: Float = 1e-3

    static func record(_ name: String) throws -> [String: Any] {
        try Fixtures.record("gguf-reference.json").object("models").object(name)
    }

    /// The fixture, or the variant the record describes (layers kept and renumbered, config keys
    /// overridden, tokenizer files copied into a directory of the variant's name, which becomes
    /// general.name), built in memory as the script builds it on disk.
    static func input(_ record: [String: Any], scratch: URL) throws -> Model {
        let fixture = try Model.open(Fixtures.url(record["model"] as? String ?? ""))
        guard let variant = record["variant"] as? [String: Any] else { return fixture }
        let origin = scratch.appendingPathComponent(variant["name"] as? String ?? "variant")
        try FileManager.default.createDirectory(at: origin, withIntermediateDirectories: true)
        for file in ["tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
            let from = fixture.origin.appendingPathComponent(file)
            if FileManager.default.fileExists(atPath: from.path) {
                try FileManager.default.copyItem(at: from, to: origin.appendingPathComponent(file))
            }
        }
        var config = ModelConfig(path: origin.appendingPathComponent("config.json").path, json: fixture.config.json)
        let overrides = try JSONDecoder().decode([String: JSONValue].self,
                                                 from: JSONSerialization.data(withJSONObject: variant.object("config")))
        for (key, value) in overrides { config = config.setting(key, to: value) }
        var source: TensorSource = fixture.source
        if let layers = variant["layers"] as? [Int] {
            let renumbered = Dictionary(uniqueKeysWithValues: layers.enumerated().map { ($1, $0) })
            var recipes: [(name: String, recipe: TensorRecipe)] = []
            for name in fixture.source.tensorNames {
                let parts = name.split(separator: ".", maxSplits: 3).map(String.init)
                guard parts.count == 4, parts[0] == "model", parts[1] == "layers", let layer = Int(parts[2]) else {
                    recipes.append((name, .copy(of: name)))
                    continue
                }
                if let new = renumbered[layer] { recipes.append(("model.layers.\(new).\(parts[3])", .copy(of: name))) }
            }
            source = try DerivedTensorSource(base: fixture.source, recipes: recipes)
        }
        return try Model(config: config, source: source, origin: origin)
    }

    /// The file `moe-compress quantize MODEL -o url --types requested` writes.
    static func write(_ model: Model, _ requested: GGMLType, to url: URL) throws {
        let (_, tensors) = try GGUFExport.layout(model)
        let assignment = Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, TypeRules.legal(requested, for: $0)) })
        _ = try GGUFExport.write(model, to: url, types: assignment, quantizer: WeightedRounding(importance: nil))
    }

    static func rows(_ raw: Any?) -> [[Float]] {
        ((raw as? [[Any]]) ?? []).map { $0.map { Float(($0 as? NSNumber)?.doubleValue ?? .nan) } }
    }

    @Test(arguments: models)
    func llamaCppComputesWhatWeComputeFromOurFiles(model name: String) throws {
        let record = try Self.record(name)
        let scratch = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let input = try Self.input(record, scratch: scratch)
        let ids = record.ints("input_ids")
        let cases = record.object("cases")
        #expect(cases.count >= 4 && ids.count == 48, "\(name): cases and ids recorded")
        for (typeName, value) in cases.sorted(by: { $0.key < $1.key }) {
            let label = "\(name) \(typeName)"
            let reference = try #require(value as? [String: Any])
            let requested = try #require(GGMLType(name: typeName))
            let url = scratch.appendingPathComponent("\(typeName).gguf")
            try Self.write(input, requested, to: url)
            let file = try GGUFFile(path: url.path)
            let types = Dictionary(uniqueKeysWithValues: file.tensors.map { ($0.name, $0.type.name) })
            #expect(types == (reference["tensor_types"] as? [String: String]) ?? [:], "\(label): tensor types")
            #expect(try SHA256.hex(ofFile: url) == reference["sha256"] as? String,
                    "\(label): the written bytes changed; rerun Fixtures/scripts/record_gguf_reference.py")

            let written = try Model.open(url)
            let forward = ForwardPass(model: written.description, source: written.source)
            let states = try forward.hiddenStates(TokenBatch(sequences: [ids]))
            let logits = try forward.outputHead().logits(states.pointer, rows: ids.count).array
            let vocabulary = logits.count / ids.count
            func differences(_ positions: [Int], _ expected: [[Float]]) -> [Float] {
                #expect(expected.count == positions.count && expected.allSatisfy { $0.count == vocabulary }, "\(label): recorded rows")
                return zip(positions, expected).map { position, row in
                    row.enumerated().reduce(0) { max($0, abs(logits[position * vocabulary + $1.offset] - $1.element)) }
                }
            }
            let expected = Self.rows(reference["logits"])
            let perPosition = differences(reference.ints("positions"), expected)
            let argmax = (0..<ids.count).map { position in
                let row = logits[(position * vocabulary)..<((position + 1) * vocabulary)]
                return row.indices.max { row[$0] < row[$1] }! - position * vocabulary
            }
            let agreement = Double(zip(argmax, reference.ints("argmax")).filter { $0 == $1 }.count) / Double(ids.count)
            let tolerance = Tolerance.of(requested)
            #expect(agreement >= tolerance.argmaxAgreement, "\(label): arg-max agrees at \(agreement) of the positions")
            if requested == .f32 {
                let worst = perPosition.max() ?? .infinity
                #expect(worst <= Self.absolute, "\(label): max |logit difference| \(worst)")
            } else {
                let scale = expected.joined().reduce(0) { max($0, abs($1)) }
                let relative = perPosition.map { $0 / scale }
                let outside = relative.filter { !($0 <= tolerance.relative) }
                #expect(!relative.isEmpty && outside.count <= tolerance.exemptPositions,
                        "\(label): relative differences per position \(relative), bound \(tolerance.relative)")
            }
            if let twin = reference["dequantized"] as? [String: Any] {
                let worst = differences(twin.ints("positions"), Self.rows(twin["logits"])).max() ?? .infinity
                #expect(worst <= Self.absolute, "\(label): max |logit difference| to llama.cpp on the dequantized twin \(worst)")
            } else {
                #expect(!requested.isQuantized, "\(label): no dequantized twin recorded")
            }
        }
    }

    /// moe-compress reads its tokenizer back from the file (tokenizer.huggingface.json) and
    /// tokenizes as Hugging Face does; llama.cpp's own tokenizer, from the tokenizer.ggml.*
    /// metadata, gives Hugging Face's ids too — byte-level BPE (tokenizer.ggml.model gpt2, the
    /// tiny fixtures' pre-tokenizer "qwen2") on every recorded text, and the SentencePiece-style
    /// BPE of the default model (model llama, scores −merge rank) on every text that does not
    /// start with a space (also every line of Fixtures/text, checked when recording).
    /// Known difference: Hugging Face's Metaspace (prepend_scheme "first") adds "▁" only when the
    /// text does not already start with one, llama.cpp's SPM tokenizer always prepends a space
    /// when add_space_prefix is set (llama-vocab.cpp, llama_vocab::impl::tokenize: `if
    /// (add_space_prefix && is_prev_special) text = ' '`), so for a text starting with a space
    /// llama.cpp's ids are Hugging Face's ids of " " + text. No metadata can express "unless it
    /// starts with a space"; add_space_prefix false would lose the prefix of every other text.
    @Test(arguments: models)
    func tokenizerMetadataAgreesWithHuggingFace(model name: String) throws {
        let record = try Self.record(name)
        let scratch = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let url = scratch.appendingPathComponent("model.gguf")
        try Self.write(try Self.input(record, scratch: scratch), .q8_0, to: url)
        let file = try GGUFFile(path: url.path)
        let tokenizer = try Model.open(url).tokenizer()
        let prependsSpace = file["tokenizer.ggml.model"]?.stringValue == "llama" && file["tokenizer.ggml.add_space_prefix"]?.boolValue == true
        #expect(file["tokenizer.ggml.add_bos_token"]?.boolValue == record["llama_cpp_adds_bos"] as? Bool, "\(name): add_bos_token")
        // The special tokens llama.cpp's converter names (gguf-py's SpecialVocab: tokenizer_config.json,
        // then config.json's ids; the tiny fixtures' tokenizers name no BOS, their config 511), and
        // llama.cpp reads them (without an id it takes BOS = EOS = 11 for a BPE vocabulary).
        let special = Self.specialTokenIDs(file)
        #expect(special == (record["converter_special_token_ids"] as? [String: Int]) ?? [:], "\(name): special token ids")
        let read = record.object("llama_cpp_special_token_ids")
        #expect(read.int("bos") == special["bos"] && read.int("eos") == special["eos"], "\(name): BOS and EOS as llama.cpp read them")
        let entries = record.objects("tokenization")
        #expect(entries.count >= 3)
        for entry in entries {
            let text = entry["text"] as? String ?? ""
            let huggingFace = entry.ints("huggingface")
            #expect(try tokenizer.encode(text) == huggingFace, "\(name): moe-compress's tokenizer from the GGUF on \(text.debugDescription)")
            let llamaCpp = entry.ints("llama_cpp")
            if prependsSpace && text.hasPrefix(" ") {
                #expect(llamaCpp == entry.ints("huggingface_space_prefixed") && llamaCpp != huggingFace,
                        "\(name): llama.cpp's known extra space on \(text.debugDescription)")
            } else {
                #expect(llamaCpp == huggingFace, "\(name): llama.cpp's ids on \(text.debugDescription)")
            }
        }
    }

    static func specialTokenIDs(_ file: GGUFFile) -> [String: Int] {
        var ids: [String: Int] = [:]
        for (key, ggufKey) in [("bos", "bos_token_id"), ("eos", "eos_token_id"), ("unk", "unknown_token_id"), ("pad", "padding_token_id")] {
            ids[key] = file["tokenizer.ggml.\(ggufKey)"]?.intValue
        }
        return ids
    }

    /// A model read from a GGUF file and written again keeps every tokenizer entry, the special
    /// token ids included (a GGUF file has no tokenizer_config.json; the ids travel in the config
    /// the file is read back as).
    @Test(arguments: models)
    func writingAGGUFFileAgainKeepsItsTokenizer(model name: String) throws {
        let scratch = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let first = scratch.appendingPathComponent("first.gguf"), second = scratch.appendingPathComponent("second.gguf")
        try Self.write(try Self.input(try Self.record(name), scratch: scratch), .q8_0, to: first)
        try Self.write(try Model.open(first), .q8_0, to: second)
        func tokenizerEntries(_ url: URL) throws -> [String: GGUFValue] {
            Dictionary(uniqueKeysWithValues: try GGUFFile(path: url.path).metadata.filter { $0.key.hasPrefix("tokenizer.") }.map { ($0.key, $0.value) })
        }
        let before = try tokenizerEntries(first), after = try tokenizerEntries(second)
        #expect(before == after, "\(name): entries that differ \(Set(before.keys).union(after.keys).filter { before[$0] != after[$0] }.sorted())")
        #expect(before["tokenizer.ggml.eos_token_id"] != nil)
    }

    /// The fixtures recorded through a variant are refused as they are, with the reason the
    /// record keeps (llama.cpp's graph would compute another model).
    @Test func refusesWhatLlamaCppsGraphCannotCompute() throws {
        var refused = 0
        for name in Self.models {
            let record = try Self.record(name)
            guard let reason = record["refused"] as? String else { continue }
            refused += 1
            let fixture = try Model.open(Fixtures.url(record["model"] as? String ?? ""))
            #expect {
                _ = try GGUFExport.layout(fixture)
            } throws: { error in
                String(describing: error).hasSuffix(reason)
            }
        }
        #expect(refused == 2)
    }
}
