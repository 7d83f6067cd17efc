import FixtureSupport
import Foundation
import Testing

/// Config values that no trained model has, and files that are not what their names say: each
/// is one line naming the file and the key or tensor, a non-zero exit, and an untouched input.
extension BadInputTests {
    static let configDamages: [Damage] = [
        Damage(name: "negative sliding_window", model: "tiny-mixtral", expected: "'sliding_window' must be a positive number of tokens, found -1") { model in
            try editConfig(model) { $0["sliding_window"] = -1 }
        },
        Damage(name: "zero sliding_window", model: "tiny-mixtral", expected: "'sliding_window' must be a positive number of tokens, found 0") { model in
            try editConfig(model) { $0["sliding_window"] = 0 }
        },
        Damage(name: "negative rms_norm_eps", model: "tiny-olmoe", expected: "'rms_norm_eps' must be a positive number, found -1") { model in
            try editConfig(model) { $0["rms_norm_eps"] = -1 }
        },
        Damage(name: "zero rope_theta", model: "tiny-mixtral", expected: "'rope_theta' must be a positive number, found 0") { model in
            try editConfig(model) { $0["rope_theta"] = 0 }
        },
        Damage(name: "negative rope_theta", model: "tiny-qwen2-moe", expected: "'rope_theta' must be a positive number, found -1") { model in
            try editConfig(model) { $0["rope_theta"] = -1 }
        },
        Damage(name: "rope_parameters.rope_theta a string", model: "tiny-qwen3-moe", expected: "'rope_parameters.rope_theta' should be a number, found a string") { model in
            try editConfig(model) {
                $0["rope_theta"] = nil
                $0["rope_parameters"] = ["rope_type": "default", "rope_theta": "1e6"]
            }
        },
        Damage(name: "rope_parameters.rope_theta an object", model: "tiny-qwen3-moe", expected: "'rope_parameters.rope_theta' should be a number, found an object") { model in
            try editConfig(model) {
                $0["rope_theta"] = nil
                $0["rope_parameters"] = ["rope_type": "default", "rope_theta": ["value": 1e6]]
            }
        },
        Damage(name: "rope_parameters without rope_theta", model: "tiny-qwen3-moe", expected: "'rope_parameters' has no 'rope_theta'") { model in
            try editConfig(model) {
                $0["rope_theta"] = nil
                $0["rope_parameters"] = ["rope_type": "default"]
            }
        },
        Damage(name: "fewer layers in the config than stored", model: "tiny-mixtral", expected: "num_hidden_layers is 1 but the checkpoint stores more layers") { model in
            try editConfig(model) { $0["num_hidden_layers"] = 1 }
        },
        Damage(name: "negative clip_qkv", model: "tiny-olmoe", expected: "'clip_qkv' must be a positive number, found -2.5") { model in
            try editConfig(model) { $0["clip_qkv"] = -2.5 }
        },
        Damage(name: "implausibly many layers", model: "tiny-mixtral", expected: "'num_hidden_layers' is implausibly large: 2147483647") { model in
            try editConfig(model) { $0["num_hidden_layers"] = Int(Int32.max) }
        },
        Damage(name: "a key named twice in config.json", model: "tiny-mixtral", expected: "names key 'num_hidden_layers' twice") { model in
            let url = model.appendingPathComponent("config.json")
            var text = try String(contentsOf: url, encoding: .utf8)
            text = text.replacingOccurrences(of: "{", with: "{\"num_hidden_layers\": 3, ", options: [], range: text.range(of: "{"))
            try text.write(to: url, atomically: true, encoding: .utf8)
            return url.path
        },
        Damage(name: "implausibly large hidden_size", model: "tiny-mixtral", expected: "'hidden_size' is implausibly large") { model in
            try editConfig(model) { $0["hidden_size"] = 1 << 40 }
        },
        Damage(name: "header length one byte short", model: "tiny-mixtral", expected: "the header length or data_offsets are wrong") { model in
            let file = try shard(model)
            let bytes = try Data(contentsOf: file)
            let length = Int(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
            // Padding of eight spaces keeps the JSON valid when its last byte is cut off.
            let json = Data(String(decoding: bytes.subdata(in: 8..<(8 + length)), as: UTF8.self)
                .trimmingCharacters(in: .whitespaces).utf8) + Data(repeating: UInt8(ascii: " "), count: 8)
            var shortLength = UInt64(json.count - 1).littleEndian
            try (Data(bytes: &shortLength, count: 8) + json + bytes.subdata(in: (8 + length)..<bytes.count)).write(to: file)
            return file.path
        },
        Damage(name: "a tensor named twice in a header", model: "tiny-mixtral", expected: "header names tensor 'model.embed_tokens.weight' twice") { model in
            let file = try shard(model)
            let bytes = try Data(contentsOf: file)
            let length = Int(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
            let header = try JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<(8 + length))) as! [String: Any]
            let entry = try JSONSerialization.data(withJSONObject: header["model.embed_tokens.weight"]!)
            var json = try JSONSerialization.data(withJSONObject: header)
            json.insert(contentsOf: Data("\"model.embed_tokens.weight\":".utf8) + entry + Data(",".utf8), at: 1)
            while json.count % 8 != 0 { json.append(UInt8(ascii: " ")) }
            var newLength = UInt64(json.count).littleEndian
            try (Data(bytes: &newLength, count: 8) + json + bytes.subdata(in: (8 + length)..<bytes.count)).write(to: file)
            return file.path
        },
    ]

    static let indexDamages: [Damage] = [
        Damage(name: "an index that omits a stored tensor", model: "tiny-qwen2-moe", expected: "does not list tensor 'lm_head.weight'") { model in
            let index = model.appendingPathComponent("model.safetensors.index.json")
            var object = try JSONSerialization.jsonObject(with: Data(contentsOf: index)) as! [String: Any]
            var map = object["weight_map"] as! [String: String]
            map["lm_head.weight"] = nil
            object["weight_map"] = map
            try JSONSerialization.data(withJSONObject: object).write(to: index)
            return index.path
        },
    ]

    static let fileKindDamages: [Damage] = [
        Damage(name: "config.json is a directory", model: "tiny-mixtral", expected: "is a directory, not a regular file") { model in
            let config = model.appendingPathComponent("config.json")
            try FileManager.default.removeItem(at: config)
            try FileManager.default.createDirectory(at: config, withIntermediateDirectories: false)
            return config.path
        },
        Damage(name: "config.json is a FIFO", model: "tiny-mixtral", expected: "is a FIFO, not a regular file") { model in
            let config = model.appendingPathComponent("config.json")
            try FileManager.default.removeItem(at: config)
            #expect(mkfifo(config.path, 0o644) == 0)
            return config.path
        },
        Damage(name: "model.safetensors is a FIFO", model: "tiny-mixtral", expected: "is a FIFO, not a regular file") { model in
            let file = try shard(model)
            try FileManager.default.removeItem(at: file)
            #expect(mkfifo(file.path, 0o644) == 0)
            return file.path
        },
    ]

    /// A NaN in a weight is reported at the layer where it first shows, never printed as a result.
    @Test func nonFiniteWeightIsAnErrorNamingTheLayer() throws {
        let model = try Fixtures.temporaryDirectory().appendingPathComponent("tiny-mixtral")
        try FileManager.default.copyItem(at: Fixtures.url("Fixtures/models/tiny-mixtral"), to: model)
        let file = try Self.shard(model)
        var bytes = try Data(contentsOf: file)
        let length = Int(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let header = try JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<(8 + length))) as! [String: Any]
        let entry = header["model.layers.1.self_attn.v_proj.weight"] as! [String: Any]
        let start = 8 + length + (entry["data_offsets"] as! [Int])[0]
        let nan: [UInt8] = entry["dtype"] as? String == "F32" ? [0x00, 0x00, 0xC0, 0x7F] : [0xC0, 0x7F]
        bytes.replaceSubrange(start..<(start + nan.count), with: nan)
        try bytes.write(to: file)
        let config = model.appendingPathComponent("config.json").path
        for command in [["eval", model.path, "--text", "Fixtures/text/heldout.txt", "--max-tokens", "64"],
                        ["eval", model.path, "--text", "Fixtures/text/heldout.txt", "--max-tokens", "64", "--json"],
                        ["forward", model.path, "--ids", "1,2,3", "--json"]] {
            let result = try MoECompressBinary.run(command)
            expectOneLineError(result, naming: config, "after layer 1's attention")
        }
    }
}

/// Argument errors: one line, no usage block, non-zero exit.
struct BadArgumentTests {
    @Test(arguments: [
        (["eval"], "Missing expected argument '<model>'"),
        (["eval", "Fixtures/default-model", "--text", "Fixtures/text/heldout.txt", "--max-tokens", "-1"], "--max-tokens -1: must be at least 2"),
        (["eval", "Fixtures/default-model", "--text", "Fixtures/text/heldout.txt", "--seq-len", "9223372036854775807"], "--seq-len 9223372036854775807: must be between 1 and"),
        (["eval", "Fixtures/default-model", "--text", "Fixtures/text/heldout.txt", "--seq-len", "0"], "--seq-len 0: must be between 1 and"),
        (["eval", "Fixtures/default-model", "--text", "Fixtures/text/heldout.txt", "--batch-tokens", "-3"], "--batch-tokens -3: must be positive"),
        (["eval", "Fixtures/default-model", "--text", "Fixtures/text/heldout.txt", "--threads", "100000"], "--threads 100000: must be between 1 and"),
        (["forward", "Fixtures/default-model", "--ids", "1,2", "--top", "-2"], "--top must be positive"),
        (["forward", "Fixtures/default-model"], "pass exactly one of --ids and --text"),
        (["inspect", "Fixtures/default-model", "--no-such-flag"], "Unknown option '--no-such-flag'"),
        (["no-such-command"], "Unexpected argument 'no-such-command'"),
    ])
    func oneLine(arguments: [String], expected: String) throws {
        let result = try MoECompressBinary.run(arguments)
        #expect(result.status != 0)
        let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: true)
        #expect(lines.count == 1 && lines[0].hasPrefix("Error: ") && lines[0].contains(expected), "stderr: \(result.stderr)")
        #expect(result.stdout.isEmpty)
    }

    @Test func unknownInstructionSetOverride() throws {
        let result = try MoECompressBinary.run(["forward", "Fixtures/default-model", "--ids", "1,2"],
                                               environment: ["MOE_COMPRESS_MAX_ISA": "avx9000"])
        #expect(result.status != 0)
        #expect(result.stderr == "Error: MOE_COMPRESS_MAX_ISA=avx9000 is not one of scalar, avx2, avx512\n", "\(result.stderr)")
    }
}
