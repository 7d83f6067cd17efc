import Foundation
import Tensors

/// `moe-compress-bench attention`: the causal attention kernel alone on seeded random q/k/v, for
/// each query-block × key-block pair of the lists, fastest of `repeats`: how the block sizes
/// trade the GEMMs' shape against the L2 footprint of a work item (its queries, scores,
/// accumulator and one key and value block) on this machine. The default shapes are the
/// issue-13 Mixtral layout (8 heads, 2 KV heads of 128) at seq-len 2048, two sequences.
func attentionBenchmark(_ arguments: [String]) throws {
    let repeats = max(1, Int(option("--repeats", in: arguments) ?? "") ?? 3)
    let heads = Int(option("--heads", in: arguments) ?? "") ?? 8
    let keyValueHeads = Int(option("--kv-heads", in: arguments) ?? "") ?? 2
    let headDim = Int(option("--head-dim", in: arguments) ?? "") ?? 128
    let seqLen = Int(option("--seq-len", in: arguments) ?? "") ?? 2048
    let sequenceCount = Int(option("--sequences", in: arguments) ?? "") ?? 2
    let threads = Int(option("--threads", in: arguments) ?? "") ?? BLAS.threads
    let queryBlocks = (option("--query-blocks", in: arguments) ?? "32,64,128").split(separator: ",").compactMap { Int($0) }
    let keyBlocks = (option("--key-blocks", in: arguments) ?? "128,256,512").split(separator: ",").compactMap { Int($0) }
    guard heads > 0, keyValueHeads > 0, heads % keyValueHeads == 0, headDim > 0, seqLen > 0, sequenceCount > 0, threads > 0,
          !queryBlocks.isEmpty, !keyBlocks.isEmpty, (queryBlocks + keyBlocks).allSatisfy({ $0 > 0 }) else {
        throw BenchError(description: "heads must be a positive multiple of --kv-heads; every size and block positive")
    }
    let tokens = seqLen * sequenceCount
    var random = SplitMix64(state: 13)
    func filled(_ count: Int) -> FloatBuffer {
        let buffer = FloatBuffer(uninitializedCount: count)
        for index in 0..<count { buffer[index] = Float(random.uniform() * 2 - 1) }
        return buffer
    }
    let q = filled(tokens * heads * headDim), k = filled(tokens * keyValueHeads * headDim), v = filled(tokens * keyValueHeads * headDim)
    let context = FloatBuffer(uninitializedCount: tokens * heads * headDim)
    let sequences = (0..<sequenceCount).map { ($0 * seqLen)..<(($0 + 1) * seqLen) }
    let clock = ContinuousClock()
    var results: [[String: Any]] = []
    for queryBlock in queryBlocks {
        for keyBlock in keyBlocks {
            let kernel = CausalAttention(heads: heads, keyValueHeads: keyValueHeads, headDim: headDim,
                                         queryBlock: queryBlock, keyBlock: keyBlock)
            var times: [Double] = []
            for _ in 0..<repeats {
                let start = clock.now
                try kernel.apply(q: q.pointer, k: k.pointer, v: v.pointer, sequences: sequences, into: context.pointer, threads: threads)
                let elapsed = clock.now - start
                times.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
            }
            times.sort()
            let best = times[0], median = times[times.count / 2]
            let footprint = 4 * (queryBlock * (heads / keyValueHeads) * (2 * headDim + keyBlock) + 2 * keyBlock * headDim)
            results.append(["query_block": queryBlock, "key_block": keyBlock, "seconds": best, "median_seconds": median,
                            "gflops": kernel.flops(sequences: sequences) / best / 1e9,
                            "median_gflops": kernel.flops(sequences: sequences) / median / 1e9, "item_kib": footprint / 1024])
        }
    }
    let report: [String: Any] = [
        "benchmark": "attention", "heads": heads, "kv_heads": keyValueHeads, "head_dim": headDim, "seq_len": seqLen,
        "sequences": sequenceCount, "threads": threads, "isa": BLAS.oneDNNInstructionSet, "results": results,
    ]
    let json = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys, .prettyPrinted])
    print(String(decoding: json, as: UTF8.self))
}
