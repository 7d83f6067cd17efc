// moe-compress-bench: micro-benchmarks of library code no command isolates.
//
//   moe-compress-bench allocation [--repeats N] [--bins 20000,100000] [--bits 2.25,2.75,3.5,4.5] [--seed S] [--types LIST]
//   moe-compress-bench rows [--types F16,Q4_K,...] [--rows 1024] [--row-length 2048] [--repeats N]
//   moe-compress-bench gptq [--types Q4_K,Q2_K,IQ2_XXS] [--hidden 2048] [--width 1024] [--tokens 4096] [--repeats N]
//   moe-compress-bench attention [--seq-len 2048] [--sequences 2] [--heads 8] [--kv-heads 2] [--head-dim 128]
//                                [--query-blocks 32,64,128] [--key-blocks 128,256,512] [--threads T] [--repeats N]
//
// `allocation` times BitAllocation.solve (the multiple-choice knapsack of `quantize --bits`) on a
// synthetic error table of DeepSeek-V3's size; `rows` times quantizeRows on one expert-sized
// matrix of N(0, 0.02) weights, on one core and on all of them, with and without importance
// weights; `gptq` times GPTQ on one OLMoE-shaped expert (GPTQBenchmark.swift); `attention` times the
// causal attention kernel per block size (AttentionBenchmark.swift). Each prints one
// JSON object on stdout.
import Foundation
import Quantization
import Quantizing
import Tensors

/// SplitMix64: a seeded generator, so every run builds the same table.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
}

struct BenchError: Error, CustomStringConvertible { let description: String }

/// One unit of the plan: a tensor (or a layer's stacked experts) that gets one type.
struct Unit {
    let name: String
    let elements: Int
    /// nil: fixed (norms, router: F32, one candidate).
    let free: Bool
}

/// DeepSeek-V3's shapes (config.json of deepseek-ai/DeepSeek-V3): hidden 7168, 256 routed experts of
/// width 2048, one shared expert of width 2048, vocab 129280, 128 heads of multi-head latent
/// attention (q_lora_rank 1536, kv_lora_rank 512, qk_nope 128, qk_rope 64, v_head 128). Every one
/// of `layers` layers is modelled as an MoE layer (the real model's first 3 are dense).
/// Attention as four plain units, with MLA's projections grouped by role:
///   q = q_a_proj (7168 -> 1536) + q_b_proj (1536 -> 128 x 192)
///   k = kv_a_proj_with_mqa (7168 -> 512 + 64) + the key half of kv_b_proj (512 -> 128 x 128)
///   v = the value half of kv_b_proj (512 -> 128 x 128)
///   o = o_proj (128 x 128 -> 7168)
func deepSeekV3Units(layers: Int, experts: Int) -> [Unit] {
    let hidden = 7168, expertWidth = 2048, sharedWidth = 2048, vocab = 129_280
    let heads = 128, qLora = 1536, kvLora = 512, nope = 128, rope = 64, vHead = 128
    let q = hidden * qLora + qLora * heads * (nope + rope)
    let k = hidden * (kvLora + rope) + kvLora * heads * nope
    let v = kvLora * heads * vHead
    let o = heads * vHead * hidden
    var units = [Unit(name: "token_embd", elements: vocab * hidden, free: true)]
    for layer in 0..<layers {
        let p = "blk.\(layer)."
        units += [
            Unit(name: p + "attn_q", elements: q, free: true),
            Unit(name: p + "attn_k", elements: k, free: true),
            Unit(name: p + "attn_v", elements: v, free: true),
            Unit(name: p + "attn_output", elements: o, free: true),
            Unit(name: p + "ffn_gate_exps", elements: experts * expertWidth * hidden, free: true),
            Unit(name: p + "ffn_up_exps", elements: experts * expertWidth * hidden, free: true),
            Unit(name: p + "ffn_down_exps", elements: experts * expertWidth * hidden, free: true),
            Unit(name: p + "ffn_gate_shexp", elements: sharedWidth * hidden, free: true),
            Unit(name: p + "ffn_up_shexp", elements: sharedWidth * hidden, free: true),
            Unit(name: p + "ffn_down_shexp", elements: sharedWidth * hidden, free: true),
            // Fixed in F32: the router and the norms (attention, ffn, q_a and kv_a layernorms).
            Unit(name: p + "ffn_gate_inp", elements: experts * hidden, free: false),
            Unit(name: p + "norms", elements: hidden + hidden + qLora + kvLora, free: false),
        ]
    }
    units.append(Unit(name: "output_norm", elements: hidden, free: false))
    units.append(Unit(name: "output", elements: vocab * hidden, free: true))
    return units
}

/// Synthetic errors, seeded: unit scale (log-uniform over two decades) × elements × 2^(-2 bits)
/// (each extra bit quarters the squared error, as for uniform rounding) × a ±20% jitter per
/// candidate, then made strictly decreasing in bits.
func candidateTable(_ units: [Unit], types: [GGMLType], seed: UInt64) -> [[(bytes: Int, error: Double)]] {
    var random = SplitMix64(state: seed)
    return units.map { unit in
        guard unit.free else { return [(bytes: unit.elements * 4, error: 0)] }
        let scale = pow(10, 2 * random.uniform() - 1)
        var previous = Double.infinity
        return types.map { type in
            let jitter = 0.8 + 0.4 * random.uniform()
            var error = scale * Double(unit.elements) * pow(2, -2 * type.bitsPerWeight) * jitter
            error = min(error, previous * 0.999)
            previous = error
            return (bytes: unit.elements / type.blockSize * type.bytesPerBlock, error: error)
        }
    }
}

func option(_ name: String, in arguments: [String]) -> String? {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}

func seconds(_ duration: Duration) -> Double {
    let parts = duration.components
    return Double(parts.seconds) + Double(parts.attoseconds) * 1e-18
}

/// CPU time of the calling thread: the solve is single-threaded, so on a loaded machine this is
/// the time it would take with a core to itself.
func threadCPUSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
}

func allocation(_ arguments: [String]) throws {
    let repeats = max(1, Int(option("--repeats", in: arguments) ?? "") ?? 5)
    let binsList = (option("--bins", in: arguments) ?? "20000,100000").split(separator: ",").compactMap { Int($0) }
    let bitsList = (option("--bits", in: arguments) ?? "2.25,2.75,3.5,4.5").split(separator: ",").compactMap { Double($0) }
    let seed = UInt64(option("--seed", in: arguments) ?? "") ?? 15
    let layers = Int(option("--layers", in: arguments) ?? "") ?? 61
    let experts = Int(option("--experts", in: arguments) ?? "") ?? 256
    // The candidates of `quantize --bits` (its default list).
    let types = try (option("--types", in: arguments) ?? "IQ2_XXS,IQ2_XS,Q2_K,Q3_K,Q4_K,Q5_K,Q6_K,Q8_0").split(separator: ",").map { name in
        guard let type = GGMLType(name: String(name)), type.isQuantized else { throw BenchError(description: "not a quantized ggml type: \(name)") }
        return type
    }

    let clock = ContinuousClock()
    let buildStart = clock.now
    let units = deepSeekV3Units(layers: layers, experts: experts)
    let table = candidateTable(units, types: types, seed: seed)
    let buildSeconds = seconds(clock.now - buildStart)
    let weights = units.reduce(0) { $0 + $1.elements }
    let smallest = table.reduce(0) { $0 + ($1.map(\.bytes).min() ?? 0) }
    let largest = table.reduce(0) { $0 + ($1.map(\.bytes).max() ?? 0) }

    var results: [[String: Any]] = []
    for bins in binsList {
        for bits in bitsList {
            // As `quantize --bits`: the budget counts every tensor's weights, the fixed ones too.
            let budget = Int((bits * Double(weights) / 8).rounded(.down))
            var entry: [String: Any] = ["bins": bins, "bits": bits, "budget_bytes": budget]
            var times: [Double] = [], cpuTimes: [Double] = []
            var solved: BitAllocation?
            var failure: String?
            for _ in 0..<repeats {
                let start = clock.now, cpuStart = threadCPUSeconds()
                do { solved = try BitAllocation.solve(table, budget: budget, bins: bins) } catch { failure = "\(error)" }
                times.append(seconds(clock.now - start))
                cpuTimes.append(threadCPUSeconds() - cpuStart)
            }
            entry["seconds"] = times.min()!
            entry["all_seconds"] = times
            entry["cpu_seconds"] = cpuTimes.min()!
            entry["all_cpu_seconds"] = cpuTimes
            if let solved {
                var counts: [String: Int] = [:]
                var typeWeights: [String: Int] = [:]
                for (index, unit) in units.enumerated() where unit.free {
                    counts[types[solved.choice[index]].name, default: 0] += 1
                    typeWeights[types[solved.choice[index]].name, default: 0] += unit.elements
                }
                entry["bytes"] = solved.bytes
                entry["bits_per_weight"] = Double(solved.bytes * 8) / Double(weights)
                entry["unspent_bytes"] = budget - solved.bytes
                entry["error"] = solved.error
                entry["quantum_bytes"] = solved.quantum
                entry["slack_bound_bytes"] = solved.slackBound
                entry["unit_counts"] = counts
                entry["weights_by_type"] = typeWeights
            } else {
                entry["infeasible"] = failure ?? "unknown"
            }
            results.append(entry)
            FileHandle.standardError.write(Data(String(format: "bins %d, %.2f bits: %.4f s wall, %.4f s CPU (best of %d)%@\n", bins, bits,
                                                       times.min()!, cpuTimes.min()!, repeats, failure.map { ", " + $0 } ?? "").utf8))
        }
    }
    let report: [String: Any] = [
        "mode": "allocation", "model": "DeepSeek-V3 shapes (synthetic errors)", "layers": layers, "experts": experts,
        "seed": Int(seed), "repeats": repeats, "candidates": types.map(\.name),
        "units": units.count, "free_units": units.filter(\.free).count, "weights": weights,
        "smallest_bits_per_weight": Double(smallest * 8) / Double(weights),
        "largest_bits_per_weight": Double(largest * 8) / Double(weights),
        "table_build_seconds": buildSeconds, "results": results,
    ]
    let data = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

/// quantizeRows per type on a rows × rowLength matrix: serially (calls of 16 rows, below the size at
/// which quantizeRows spreads rows over the cores) and in one call (all cores).
func rowsBenchmark(_ arguments: [String]) throws {
    let repeats = max(1, Int(option("--repeats", in: arguments) ?? "") ?? 3)
    let rows = Int(option("--rows", in: arguments) ?? "") ?? 1024
    let rowLength = Int(option("--row-length", in: arguments) ?? "") ?? 2048
    let names = (option("--types", in: arguments) ?? "F16,BF16,Q8_0,Q6_K,Q5_K,Q4_K,Q3_K,Q2_K,IQ2_XS,IQ2_XXS").split(separator: ",")
    let types = try names.map { name -> GGMLType in
        guard let type = GGMLType(name: String(name)) else { throw BenchError(description: "unknown ggml type \(name)") }
        return type
    }
    var random = SplitMix64(state: 15)
    let count = rows * rowLength
    let values = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
    defer { values.deallocate() }
    for index in stride(from: 0, to: count, by: 2) {
        // Box-Muller: two N(0, 0.02) values per pair of uniforms.
        let u = max(random.uniform(), 1e-300), v = random.uniform()
        let radius = 0.02 * (-2 * log(u)).squareRoot()
        values[index] = Float(radius * cos(2 * .pi * v))
        if index + 1 < count { values[index + 1] = Float(radius * sin(2 * .pi * v)) }
    }
    // Importance: positive per-column weights spread over two decades, as mean squared inputs are.
    let importance = (0..<rowLength).map { _ in Float(pow(10, 2 * random.uniform() - 1)) }
    let output = UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64)
    defer { output.deallocate() }
    let clock = ContinuousClock()
    let serialRows = 16
    var results: [[String: Any]] = []
    for type in types {
        for weighted in type.isQuantized ? [false, true] : [false] {
            func time(_ body: () throws -> Void) rethrows -> (Double, Double) {
                var best = Double.infinity, bestCPU = Double.infinity
                for _ in 0..<repeats {
                    let start = clock.now, cpu = processCPUSeconds()
                    try body()
                    best = min(best, seconds(clock.now - start))
                    bestCPU = min(bestCPU, processCPUSeconds() - cpu)
                }
                return (best, bestCPU)
            }
            let rowBytes = type.rowBytes(rowLength)
            try importance.withUnsafeBufferPointer { weights in
                let w = weighted ? weights.baseAddress : nil
                let (serial, serialCPU) = try time {
                    for start in stride(from: 0, to: rows, by: serialRows) {
                        let n = min(serialRows, rows - start)
                        try quantizeRows(type, values.baseAddress! + start * rowLength, rows: n, rowLength: rowLength,
                                         importance: w, into: output + start * rowBytes)
                    }
                }
                let (parallel, parallelCPU) = try time {
                    try quantizeRows(type, values.baseAddress!, rows: rows, rowLength: rowLength, importance: w, into: output)
                }
                results.append(["type": type.name, "importance": weighted, "weights": count,
                                "serial_seconds": serial, "serial_cpu_seconds": serialCPU,
                                "serial_weights_per_second": Double(count) / serial,
                                "parallel_seconds": parallel, "parallel_cpu_seconds": parallelCPU,
                                "parallel_weights_per_second": Double(count) / parallel])
                FileHandle.standardError.write(Data(String(format: "%@%@: serial %.4f s (%.1f M weights/s), all cores %.4f s (%.1f M weights/s)\n",
                                                           type.name, weighted ? " +importance" : "", serial, Double(count) / serial / 1e6,
                                                           parallel, Double(count) / parallel / 1e6).utf8))
            }
        }
    }
    let report: [String: Any] = ["mode": "rows", "rows": rows, "row_length": rowLength, "repeats": repeats,
                                 "serial_chunk_rows": serialRows, "cores": Cores.available,
                                 "results": results]
    let data = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

/// CPU time of the whole process (all threads).
func processCPUSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
}

let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "allocation":
    do { try allocation(Array(arguments.dropFirst())) } catch {
        FileHandle.standardError.write(Data("moe-compress-bench: \(error)\n".utf8))
        exit(1)
    }
case "rows":
    do { try rowsBenchmark(Array(arguments.dropFirst())) } catch {
        FileHandle.standardError.write(Data("moe-compress-bench: \(error)\n".utf8))
        exit(1)
    }
case "gptq":
    do { try gptqBenchmark(Array(arguments.dropFirst())) } catch {
        FileHandle.standardError.write(Data("moe-compress-bench: \(error)\n".utf8))
        exit(1)
    }
case "attention":
    do { try attentionBenchmark(Array(arguments.dropFirst())) } catch {
        FileHandle.standardError.write(Data("moe-compress-bench: \(error)\n".utf8))
        exit(1)
    }
default:
    FileHandle.standardError.write(Data("""
        usage: moe-compress-bench allocation [--repeats N] [--bins 20000,100000] [--bits 2.25,2.75,3.5,4.5] [--seed S] [--layers 61] [--experts 256] [--types LIST]
               moe-compress-bench rows [--types F16,Q4_K,...] [--rows 1024] [--row-length 2048] [--repeats N]
               moe-compress-bench gptq [--types Q4_K,Q2_K,IQ2_XXS] [--hidden 2048] [--width 1024] [--tokens 4096] [--repeats N]
               moe-compress-bench attention [--seq-len 2048] [--sequences 2] [--heads 8] [--kv-heads 2] [--head-dim 128] [--query-blocks 32,64,128] [--key-blocks 128,256,512] [--threads T] [--repeats N]

        """.utf8))
    exit(2)
}
