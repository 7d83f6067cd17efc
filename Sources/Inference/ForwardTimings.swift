import Foundation

/// Where a forward pass spent its time, for `eval --json` and the benchmark: reading and widening
/// weights, and the routed experts' matrix multiplications (with their FLOPs, so the achieved
/// GFLOP/s can be set against the machine's sgemm rate).
public final class ForwardTimings: @unchecked Sendable {
    public private(set) var weightSeconds: Double = 0
    public private(set) var expertMatmulSeconds: Double = 0
    public private(set) var expertMatmulFLOPs: Double = 0
    /// Attention compute (projections, q/k norms, RoPE, the kernel, output projection), without
    /// reading its weights.
    public private(set) var attentionSeconds: Double = 0
    /// The part of `attentionSeconds` in the attention kernel (scores, softmax, P·V), with the
    /// FLOPs of the visible (query, key) pairs.
    public private(set) var attentionKernelSeconds: Double = 0
    public private(set) var attentionKernelFLOPs: Double = 0

    public init() {}

    public var expertMatmulGFLOPS: Double {
        expertMatmulSeconds > 0 ? expertMatmulFLOPs / expertMatmulSeconds / 1e9 : 0
    }

    public var attentionKernelGFLOPS: Double {
        attentionKernelSeconds > 0 ? attentionKernelFLOPs / attentionKernelSeconds / 1e9 : 0
    }

    func measureWeights<T>(_ body: () throws -> T) rethrows -> T {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { weightSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        return try body()
    }

    func measureAttention(_ body: () throws -> Void) rethrows {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { attentionSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        try body()
    }

    func measureAttentionKernel(flops: Double, _ body: () throws -> Void) rethrows {
        let start = DispatchTime.now().uptimeNanoseconds
        defer {
            attentionKernelSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            attentionKernelFLOPs += flops
        }
        try body()
    }

    func measureExpertMatmul(flops: Double, _ body: () throws -> Void) rethrows {
        let start = DispatchTime.now().uptimeNanoseconds
        defer {
            expertMatmulSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            expertMatmulFLOPs += flops
        }
        try body()
    }
}
