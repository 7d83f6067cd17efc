import FixtureSupport
import Foundation
import Testing

/// `calibrate` and `prune` as a user runs them, and every bad input the issue names: one line,
/// non-zero exit, and no output left behind.
struct PruneCommandTests {
    static let calibration = ["--data", "Fixtures/text/calibration.txt", "--seq-len", "64", "--samples", "8"]

    /// One statistics file of the default model for the tests that need one.
    static let statistics: Result<URL, Error> = Result {
        let file = try Fixtures.temporaryDirectory().appendingPathComponent("stats.safetensors")
        let result = try MoECompressBinary.run(["calibrate", "Fixtures/default-model", "-o", file.path] + calibration)
        guard result.status == 0 else { throw FixtureError("calibrate failed: \(result.stderr)") }
        return file
    }

    @Test func calibrateThenPruneWithEval() throws {
        let stats = try Self.statistics.get()
        let output = try Fixtures.temporaryDirectory().appendingPathComponent("pruned")
        let result = try MoECompressBinary.run(["prune", "Fixtures/default-model", "-o", output.path, "--ratio", "0.25",
                                                "--method", "reap", "--stats", stats.path, "--eval", "Fixtures/text/heldout.txt",
                                                "--eval-seq-len", "64", "--eval-max-tokens", "256"])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: output.appendingPathComponent("prune-report.json"))) as! [String: Any]
        let layers = report.object("plan").objects("layers")
        #expect(layers.count == 4 && layers.allSatisfy { $0.ints("kept").count == 6 && $0.doubles("scores").count == 8 })
        let perplexity = report.object("perplexity")
        #expect(perplexity.double("before") > 1 && perplexity.double("after") > 1)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: output.appendingPathComponent("config.json"))) as! [String: Any]
        #expect(config.int("num_local_experts") == 6 && config.int("num_experts_per_tok") == 2)
        // The eval of the written output agrees with the report's "after".
        let evaluated = try MoECompressBinary.run(["eval", output.path, "--text", "Fixtures/text/heldout.txt", "--seq-len", "64", "--max-tokens", "256", "--json"])
        let measured = try JSONSerialization.jsonObject(with: Data(evaluated.stdout.utf8)) as! [String: Any]
        #expect(abs(measured.double("perplexity") - perplexity.double("after")) < 1e-9)
    }

    func expectRefused(_ arguments: [String], _ fragment: String, output: URL) throws {
        let result = try MoECompressBinary.run(arguments)
        #expect(result.status != 0)
        let lines = result.stderr.split(separator: "\n").filter { $0.hasPrefix("Error: ") }
        #expect(lines.count == 1 && lines[0].contains(fragment), "\(arguments): \(result.stderr)")
        #expect(result.stdout.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: output.path), "no output after an error")
    }

    @Test func badPruneArguments() throws {
        let stats = try Self.statistics.get().path
        let output = try Fixtures.temporaryDirectory().appendingPathComponent("never")
        let base = ["prune", "Fixtures/default-model", "-o", output.path, "--method", "reap"]
        try expectRefused(base + ["--keep", "8", "--stats", stats], "--keep 8: the model has 8 experts per layer", output: output)
        try expectRefused(base + ["--keep", "9", "--stats", stats], "--keep 9: the model has 8 experts per layer", output: output)
        try expectRefused(base + ["--keep", "1", "--stats", stats], "--keep 1: fewer than the 2 experts each token is routed to", output: output)
        try expectRefused(base + ["--keep", "0", "--stats", stats], "--keep 0: must be positive", output: output)
        try expectRefused(base + ["--keep", "-3", "--stats", stats], "--keep -3: must be positive", output: output)
        try expectRefused(base + ["--ratio", "1.5", "--stats", stats], "--ratio 1.5: must be between 0 and 1", output: output)
        try expectRefused(base + ["--keep", "4"], "pass exactly one of --stats FILE and --data FILE[:N]", output: output)
        let inside = Fixtures.url("Fixtures/default-model/pruned")
        try expectRefused(["prune", "Fixtures/default-model", "-o", inside.path, "--keep", "4", "--stats", stats], "refusing to write into the input model directory", output: inside)
    }

    @Test func statisticsOfAnotherModelOrDamagedAreRefused() throws {
        let stats = try Self.statistics.get()
        let output = try Fixtures.temporaryDirectory().appendingPathComponent("never")
        try expectRefused(["prune", "Fixtures/models/tiny-mixtral", "-o", output.path, "--keep", "4", "--stats", stats.path],
                          "measured on another model", output: output)
        // Same file, one array's shape changed in the header.
        let damaged = stats.deletingLastPathComponent().appendingPathComponent("damaged.safetensors")
        var bytes = try Data(contentsOf: stats)
        let length = Int(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        var header = try JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<(8 + length))) as! [String: Any]
        var entry = header["layers.2.reap"] == nil ? header["layers.2.easy_ep"] as! [String: Any] : [:]
        entry["shape"] = [4, 2]
        header["layers.2.easy_ep"] = entry
        var json = try JSONSerialization.data(withJSONObject: header)
        while json.count % 8 != 0 { json.append(UInt8(ascii: " ")) }
        var newLength = UInt64(json.count).littleEndian
        bytes = Data(bytes: &newLength, count: 8) + json + bytes.subdata(in: (8 + length)..<bytes.count)
        try bytes.write(to: damaged)
        try expectRefused(["prune", "Fixtures/default-model", "-o", output.path, "--keep", "4", "--stats", damaged.path],
                          "layers.2.easy_ep", output: output)
        try expectRefused(["prune", "Fixtures/default-model", "-o", output.path, "--keep", "4", "--stats", "Fixtures/default-model/model.safetensors"],
                          "not a moe-compress statistics file", output: output)
    }

    @Test func badCalibrationData() throws {
        let directory = try Fixtures.temporaryDirectory()
        let empty = directory.appendingPathComponent("empty.txt"), stats = directory.appendingPathComponent("stats.safetensors")
        try Data().write(to: empty)
        try expectRefused(["calibrate", "Fixtures/default-model", "-o", stats.path, "--data", empty.path], "empty.txt: no text to calibrate on", output: stats)
        try expectRefused(["calibrate", "Fixtures/default-model", "-o", stats.path, "--data", "Fixtures/text/heldout.txt", "--seq-len", "1000000"],
                          "too short for one window", output: stats)
        try expectRefused(["calibrate", "Fixtures/default-model", "-o", stats.path, "--data", "Fixtures/text/heldout.txt:100000", "--seq-len", "64"],
                          "windows of 64, but 100000 were asked for", output: stats)
        try expectRefused(["calibrate", "Fixtures/default-model", "-o", "Fixtures/default-model/stats.safetensors", "--data", "Fixtures/text/heldout.txt"],
                          "inside the model directory", output: Fixtures.url("Fixtures/default-model/stats.safetensors"))
    }
}
