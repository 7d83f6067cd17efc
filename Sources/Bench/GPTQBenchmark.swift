import CLinearAlgebra
import Foundation
import Quantization

/// `moe-compress-bench gptq`: GPTQ on one OLMoE-1B-7B-shaped expert (gate and up: 1024 rows of
/// 2048, down: 2048 rows of 1024), per type, against weighted rounding of the same matrices. The
/// inputs are synthetic and seeded: `tokens` rows of correlated activations (a random mixing of
/// columns/4 latent factors plus noise, as real activations are correlated), whose Hessians
/// H = XᵀX are built once (gate and up share theirs, as they share their input). Times one
/// expert's three matrices, wall and process CPU, fastest of `repeats`.
func gptqBenchmark(_ arguments: [String]) throws {
    let repeats = max(1, Int(option("--repeats", in: arguments) ?? "") ?? 2)
    let hidden = Int(option("--hidden", in: arguments) ?? "") ?? 2048
    let width = Int(option("--width", in: arguments) ?? "") ?? 1024
    let tokens = Int(option("--tokens", in: arguments) ?? "") ?? 4096
    let names = (option("--types", in: arguments) ?? "Q4_K,Q2_K,IQ2_XXS").split(separator: ",")
    let types = try names.map { name -> GGMLType in
        guard let type = GGMLType(name: String(name)), type.isQuantized else { throw BenchError(description: "not a quantized ggml type: \(name)") }
        return type
    }
    var random = SplitMix64(state: 21)
    func normal() -> Float {
        let u = max(random.uniform(), 1e-300), v = random.uniform()
        return Float((-2 * log(u)).squareRoot() * cos(2 * .pi * v))
    }
    /// Σ x xᵀ over `tokens` correlated inputs of `columns` values.
    func hessian(columns: Int) -> [Double] {
        let factors = columns / 4
        let latent = (0..<(tokens * factors)).map { _ in normal() }
        let mixing = (0..<(factors * columns)).map { _ in normal() / Float(factors).squareRoot() }
        var x = (0..<(tokens * columns)).map { _ in 0.1 * normal() }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(tokens), Int32(columns), Int32(factors),
                    1, latent, Int32(factors), mixing, Int32(columns), 1, &x, Int32(columns))
        var h = [Float](repeating: 0, count: columns * columns)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(columns), Int32(columns), Int32(tokens),
                    1, x, Int32(columns), x, Int32(columns), 0, &h, Int32(columns))
        return h.map(Double.init)
    }
    let clock = ContinuousClock()
    let buildStart = clock.now
    let inputHessian = hessian(columns: hidden), downHessian = hessian(columns: width)
    let matrices: [(name: String, rows: Int, rowLength: Int, weights: [Float])] = [
        ("gate", width, hidden, (0..<(width * hidden)).map { _ in 0.02 * normal() }),
        ("up", width, hidden, (0..<(width * hidden)).map { _ in 0.02 * normal() }),
        ("down", hidden, width, (0..<(hidden * width)).map { _ in 0.02 * normal() }),
    ]
    let buildSeconds = seconds(clock.now - buildStart)
    let output = UnsafeMutableRawPointer.allocate(byteCount: width * hidden * 4, alignment: 64)
    defer { output.deallocate() }

    func time(_ body: () throws -> Void) rethrows -> (wall: Double, cpu: Double) {
        var best = (wall: Double.infinity, cpu: Double.infinity)
        for _ in 0..<repeats {
            let start = clock.now, cpu = processCPUSeconds()
            try body()
            best = (min(best.wall, seconds(clock.now - start)), min(best.cpu, processCPUSeconds() - cpu))
        }
        return best
    }
    var results: [[String: Any]] = []
    for type in types {
        var gptqTotal = (wall: 0.0, cpu: 0.0), roundingTotal = (wall: 0.0, cpu: 0.0)
        var perMatrix: [[String: Any]] = []
        for matrix in matrices {
            let h = matrix.rowLength == hidden ? inputHessian : downHessian
            let importance = (0..<matrix.rowLength).map { Float(h[$0 * matrix.rowLength + $0] / Double(tokens)) }
            let gptq = try time {
                _ = try h.withUnsafeBufferPointer {
                    try gptqQuantizeRows(type, matrix.weights, rows: matrix.rows, rowLength: matrix.rowLength, hessian: $0.baseAddress!,
                                         tokens: tokens, into: output)
                }
            }
            let rounding = try time {
                try quantizeRows(type, matrix.weights, rows: matrix.rows, rowLength: matrix.rowLength, importance: importance, into: output)
            }
            gptqTotal = (gptqTotal.wall + gptq.wall, gptqTotal.cpu + gptq.cpu)
            roundingTotal = (roundingTotal.wall + rounding.wall, roundingTotal.cpu + rounding.cpu)
            perMatrix.append(["matrix": matrix.name, "rows": matrix.rows, "row_length": matrix.rowLength,
                              "gptq_seconds": gptq.wall, "gptq_cpu_seconds": gptq.cpu,
                              "rounding_seconds": rounding.wall, "rounding_cpu_seconds": rounding.cpu])
        }
        results.append(["type": type.name, "gptq_seconds_per_expert": gptqTotal.wall, "gptq_cpu_seconds_per_expert": gptqTotal.cpu,
                        "rounding_seconds_per_expert": roundingTotal.wall, "rounding_cpu_seconds_per_expert": roundingTotal.cpu,
                        "matrices": perMatrix])
        FileHandle.standardError.write(Data(String(format: "%@: GPTQ %.3f s per expert (%.3f CPU s), weighted rounding %.3f s (%.3f CPU s)\n",
                                                   type.name, gptqTotal.wall, gptqTotal.cpu, roundingTotal.wall, roundingTotal.cpu).utf8))
    }
    let report: [String: Any] = ["mode": "gptq", "hidden": hidden, "width": width, "tokens": tokens, "repeats": repeats,
                                 "input_build_seconds": buildSeconds, "results": results]
    let data = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}
