import FixtureSupport
import Foundation
import Testing

/// Each kind of bad input gives one line on stderr naming the file and the problem, a non-zero
/// exit, and leaves the input directory exactly as it was.
struct BadInputTests {
    /// A damage applied to a scratch copy of a fixture model; returns the file the error must name.
    struct Damage: CustomTestStringConvertible, Sendable {
        let name: String
        let model: String
        let expected: String
        let apply: @Sendable (URL) throws -> String
        var testDescription: String { name }
    }

    static func shard(_ model: URL) throws -> URL {
        let names = try FileManager.default.contentsOfDirectory(atPath: model.path).filter { $0.hasSuffix(".safetensors") }.sorted()
        return model.appendingPathComponent(names[0])
    }

    /// Rewrites a safetensors file with an edited header and the same data section.
    static func editHeader(_ file: URL, _ edit: (inout [String: Any]) -> Void) throws {
        let bytes = try Data(contentsOf: file)
        let length = Int(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        var header = try JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<(8 + length))) as! [String: Any]
        edit(&header)
        var json = try JSONSerialization.data(withJSONObject: header)
        while json.count % 8 != 0 { json.append(UInt8(ascii: " ")) }
        var newLength = UInt64(json.count).littleEndian
        try (Data(bytes: &newLength, count: 8) + json + bytes.subdata(in: (8 + length)..<bytes.count)).write(to: file)
    }

    static func editConfig(_ model: URL, _ edit: (inout [String: Any]) -> Void) throws -> String {
        let url = model.appendingPathComponent("config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        edit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: url)
        return url.path
    }

    /// Edits the header entry of the first expert weight in the model's first shard.
    static func editExpertEntry(_ model: URL, _ edit: @escaping (inout [String: Any]) -> Void) throws -> String {
        let file = try shard(model)
        try editHeader(file) { header in
            let name = header.keys.filter { $0.contains("experts.0") }.sorted()[0]
            var entry = header[name] as! [String: Any]
            edit(&entry)
            header[name] = entry
        }
        return file.path
    }

    static let damages: [Damage] = [
        Damage(name: "truncated file", model: "tiny-mixtral", expected: "outside the") { model in
            let file = try shard(model)
            let data = try Data(contentsOf: file)
            try data.prefix(data.count / 2).write(to: file)
            return file.path
        },
        Damage(name: "header length beyond the file", model: "tiny-mixtral", expected: "runs past the end") { model in
            let file = try shard(model)
            var data = try Data(contentsOf: file)
            data.replaceSubrange(0..<8, with: [0, 0, 0, 0, 0, 1, 0, 0])
            try data.write(to: file)
            return file.path
        },
        Damage(name: "invalid JSON header", model: "tiny-mixtral", expected: "not a valid JSON object") { model in
            let file = try shard(model)
            var data = try Data(contentsOf: file)
            data.replaceSubrange(8..<12, with: Array("}{][".utf8))
            try data.write(to: file)
            return file.path
        },
        Damage(name: "overlapping tensors", model: "tiny-mixtral", expected: "overlap") { model in
            let file = try shard(model)
            try editHeader(file) { header in
                let names = header.keys.filter { $0 != "__metadata__" }.sorted()
                let first = header[names[0]] as! [String: Any]
                var second = header[names[1]] as! [String: Any]
                let offsets = first["data_offsets"] as! [Int]
                let size = (second["data_offsets"] as! [Int])[1] - (second["data_offsets"] as! [Int])[0]
                second["data_offsets"] = [offsets[0], offsets[0] + size]
                second["shape"] = [size / 4]
                second["dtype"] = "F32"
                header[names[1]] = second
            }
            return file.path
        },
        Damage(name: "offsets out of range", model: "tiny-mixtral", expected: "outside the") { model in
            try editExpertEntry(model) { entry in
                entry["data_offsets"] = (entry["data_offsets"] as! [Int]).map { $0 + 1_000_000_000 }
            }
        },
        Damage(name: "shape disagrees with byte length", model: "tiny-mixtral", expected: "needs") { model in
            try editExpertEntry(model) { entry in entry["shape"] = (entry["shape"] as! [Int]).map { $0 + 1 } }
        },
        Damage(name: "unknown dtype", model: "tiny-mixtral", expected: "unknown dtype 'F12'") { model in
            try editExpertEntry(model) { entry in entry["dtype"] = "F12" }
        },
        Damage(name: "missing shard named by the index", model: "tiny-qwen2-moe", expected: "which is missing") { model in
            let names = try FileManager.default.contentsOfDirectory(atPath: model.path).filter { $0.hasSuffix(".safetensors") }.sorted()
            try FileManager.default.removeItem(at: model.appendingPathComponent(names[1]))
            return model.appendingPathComponent("model.safetensors.index.json").path
        },
        Damage(name: "config missing a required key", model: "tiny-olmoe", expected: "missing required key 'num_hidden_layers'") { model in
            try editConfig(model) { $0["num_hidden_layers"] = nil }
        },
        Damage(name: "config disagrees with tensor shapes", model: "tiny-qwen3-moe", expected: "implies") { model in
            try editConfig(model) { $0["moe_intermediate_size"] = (($0["moe_intermediate_size"] as? Int) ?? 1) + 8 }
        },
        Damage(name: "unknown model_type", model: "tiny-mixtral", expected: "unknown model_type 'gpt2'") { model in
            try editConfig(model) { $0["model_type"] = "gpt2" }
        },
    ]

    func snapshot(_ directory: URL) throws -> [String: Data] {
        var files: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) {
            // FIFOs and directories are recorded by kind: reading a FIFO would block.
            let url = directory.appendingPathComponent(name)
            let type = try FileManager.default.attributesOfItem(atPath: url.path)[.type] as? FileAttributeType
            files[name] = type == .typeRegular ? try Data(contentsOf: url) : Data((type?.rawValue ?? "?").utf8)
        }
        return files
    }

    /// Progress lines ("eval 50% …") may come before the error line when it is raised mid-run.
    func expectOneLineError(_ result: CommandResult, naming file: String, _ fragment: String) {
        #expect(result.status != 0)
        let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: true)
            .filter { !$0.hasPrefix("eval ") && !$0.hasPrefix("forward ") }
        #expect(lines.count == 1, "stderr: \(result.stderr)")
        #expect(result.stderr.contains(file), "stderr should name \(file): \(result.stderr)")
        #expect(result.stderr.contains(fragment), "stderr should say '\(fragment)': \(result.stderr)")
        #expect(result.stdout.isEmpty)
    }

    @Test(arguments: damages + configDamages + indexDamages + fileKindDamages)
    func damagedCheckpoint(_ damage: Damage) throws {
        let model = try Fixtures.temporaryDirectory().appendingPathComponent(damage.model)
        try FileManager.default.copyItem(at: Fixtures.url("Fixtures/models/\(damage.model)"), to: model)
        let file = try damage.apply(model)
        let before = try snapshot(model)
        for command in [["inspect", model.path], ["eval", model.path, "--text", "Fixtures/text/heldout.txt", "--max-tokens", "64"]] {
            let result = try MoECompressBinary.run(command)
            expectOneLineError(result, naming: URL(fileURLWithPath: file).lastPathComponent, damage.expected)
        }
        #expect(try snapshot(model) == before, "the input must not change")
    }

    @Test func textThatIsNotUTF8() throws {
        let text = try Fixtures.temporaryDirectory().appendingPathComponent("latin1.txt")
        try Data([0x63, 0x61, 0x66, 0xE9, 0x0A]).write(to: text)
        let result = try MoECompressBinary.run(["eval", "Fixtures/default-model", "--text", text.path])
        expectOneLineError(result, naming: text.path, "not valid UTF-8")
    }
}
