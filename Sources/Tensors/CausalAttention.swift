import CKernels
import Dispatch
import Synchronization

/// Causal softmax attention with grouped-query heads and an optional sliding window, computed in
/// blocks with an online softmax (FlashAttention-2): for one block of query positions and all the
/// query heads that share a KV head, the key blocks up to the diagonal are visited in order; each
/// gives one GEMM for the scores and one for P·V, with a running max and sum per row. Key blocks
/// that no query of the block can see are never touched, masking is a per-row column range, and
/// memory is a few blocks per worker instead of a length × length score matrix per head.
public struct CausalAttention: Sendable {
    public let heads: Int
    public let keyValueHeads: Int
    public let headDim: Int
    /// Key j is visible to query i iff j <= i and i - j < window (nil: no window). At least 1.
    public let window: Int?
    /// Query positions per work item; each score GEMM has `groupSize * queryBlock` rows.
    public let queryBlock: Int
    /// Key positions per score GEMM.
    public let keyBlock: Int

    /// The default blocks were measured on the issue-13 Mixtral layout (groups of 4 heads of
    /// 128, seq-len 2048, 2 threads): query blocks of 32–128 with key blocks of 128–512 were
    /// within noise of each other (0.23–0.26 s of kernel time); one item at a time with
    /// two-threaded GEMMs took 0.33 s.
    public init(heads: Int, keyValueHeads: Int, headDim: Int, window: Int? = nil,
                queryBlock: Int = 64, keyBlock: Int = 256) {
        self.heads = heads
        self.keyValueHeads = keyValueHeads
        self.headDim = headDim
        self.window = window.map { max($0, 1) }
        self.queryBlock = max(queryBlock, 1)
        self.keyBlock = max(keyBlock, 1)
    }

    /// Query heads per KV head.
    public var groupSize: Int { heads / keyValueHeads }

    /// Attention over independent sequences packed one after another. `q` holds one row of
    /// `heads * headDim` values per token, `k` and `v` rows of `keyValueHeads * headDim` (each
    /// token's heads side by side, as the projections produce them; query rows `queryStride`
    /// floats apart, nil for packed: a fused q/k/v projection interleaves them); `sequences` are
    /// token ranges. Writes each covered token's row of `heads * headDim` values into `context`.
    /// Work items (sequence, KV head, query block) are shared by `threads` workers, each running
    /// its GEMMs single-threaded; with one thread the GEMMs keep the caller's thread count.
    public func apply(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                      queryStride: Int? = nil,
                      sequences: [Range<Int>], into context: UnsafeMutablePointer<Float>, threads: Int) throws {
        let items = workItems(sequences)
        let workers = min(max(threads, 1), items.count)
        let operands = Operands(q: q, k: k, v: v, context: context, queryStride: queryStride ?? heads * headDim)
        guard workers > 1 else {
            let scratch = Scratch(rows: groupSize * queryBlock, keyBlock: keyBlock, headDim: headDim)
            for item in items { try attend(item, operands, scratch) }
            return
        }
        let next = Atomic<Int>(0)
        // A worker cannot throw out of concurrentPerform: the first failure is kept, and the
        // other workers stop taking items.
        let failure = Mutex<(any Error)?>(nil)
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            let scratch = Scratch(rows: groupSize * queryBlock, keyBlock: keyBlock, headDim: headDim)
            BLAS.singleThreaded {
                while failure.withLock({ $0 == nil }) {
                    let index = next.wrappingAdd(1, ordering: .relaxed).oldValue
                    guard index < items.count else { return }
                    do { try attend(items[index], operands, scratch) } catch {
                        failure.withLock { if $0 == nil { $0 = error } }
                    }
                }
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
    }

    /// One block of query positions of one sequence, for the query heads of one KV head.
    struct WorkItem {
        let sequenceStart: Int
        let queries: Range<Int>
        let keyValueHead: Int
    }

    /// Later query blocks see more keys and cost more, so they come first: the last items left
    /// to the workers are the short ones.
    func workItems(_ sequences: [Range<Int>]) -> [WorkItem] {
        var items: [WorkItem] = []
        for sequence in sequences {
            for blockStart in stride(from: 0, to: sequence.count, by: queryBlock) {
                let queries = blockStart..<min(blockStart + queryBlock, sequence.count)
                for head in 0..<keyValueHeads {
                    items.append(WorkItem(sequenceStart: sequence.lowerBound, queries: queries, keyValueHead: head))
                }
            }
        }
        return items.sorted { keysSeen(by: $0.queries) > keysSeen(by: $1.queries) }
    }

    /// How many key positions a block of queries spans, a measure of its cost.
    private func keysSeen(by queries: Range<Int>) -> Int {
        queries.upperBound - firstVisibleKey(queries.lowerBound)
    }

    /// Multiply-adds of the scores and of P·V counted as two FLOPs each, over visible
    /// (query, key) pairs only: what a causal kernel must compute at the least.
    public func flops(sequences: [Range<Int>]) -> Double {
        var pairs = 0
        for sequence in sequences {
            for position in 0..<sequence.count { pairs += position + 1 - firstVisibleKey(position) }
        }
        return 4 * Double(pairs) * Double(heads * headDim)
    }

    /// The first key position that query `position` can see.
    func firstVisibleKey(_ position: Int) -> Int {
        window.map { max(0, position - $0 + 1) } ?? 0
    }

    /// The pointers of one `apply` call; every work item writes disjoint rows of `context`.
    private struct Operands: @unchecked Sendable {
        let q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>
        let context: UnsafeMutablePointer<Float>
        let queryStride: Int
    }

    /// One worker's blocks: the stacked queries, a block of scores, the output accumulator and
    /// each row's running max and sum.
    private final class Scratch {
        let queries: FloatBuffer, scores: FloatBuffer, output: FloatBuffer
        let runningMax: FloatBuffer, runningSum: FloatBuffer

        init(rows: Int, keyBlock: Int, headDim: Int) {
            queries = FloatBuffer(uninitializedCount: rows * headDim)
            scores = FloatBuffer(uninitializedCount: rows * keyBlock)
            output = FloatBuffer(uninitializedCount: rows * headDim)
            runningMax = FloatBuffer(uninitializedCount: rows)
            runningSum = FloatBuffer(uninitializedCount: rows)
        }
    }

    /// Rows of the stacked blocks are head-major: row `h * n + t` is query head `h` of the group
    /// at query position `queries.lowerBound + t`, with `n = queries.count`.
    private func attend(_ item: WorkItem, _ operands: Operands, _ scratch: Scratch) throws {
        let d = headDim, group = groupSize, n = item.queries.count, rows = group * n
        let contextWidth = heads * d, keyValueStride = keyValueHeads * d
        let firstHead = item.keyValueHead * group
        for h in 0..<group {
            for t in 0..<n {
                let token = item.sequenceStart + item.queries.lowerBound + t
                (scratch.queries.pointer + (h * n + t) * d).update(from: operands.q + token * operands.queryStride + (firstHead + h) * d, count: d)
            }
        }
        scratch.output.pointer.initialize(repeating: 0, count: rows * d)
        scratch.runningMax.pointer.initialize(repeating: -.infinity, count: rows)
        scratch.runningSum.pointer.initialize(repeating: 0, count: rows)
        let scale = 1 / Float(d).squareRoot()
        let keyBase = operands.k + item.sequenceStart * keyValueStride + item.keyValueHead * d
        let valueBase = operands.v + item.sequenceStart * keyValueStride + item.keyValueHead * d
        let keysEnd = item.queries.upperBound
        for keyStart in stride(from: firstVisibleKey(item.queries.lowerBound), to: keysEnd, by: keyBlock) {
            let keys = keyStart..<min(keyStart + keyBlock, keysEnd)
            try gemm(m: rows, n: keys.count, k: d, alpha: scale, a: scratch.queries.pointer, lda: d,
                 b: keyBase + keys.lowerBound * keyValueStride, ldb: keyValueStride, transposeB: true,
                 c: scratch.scores.pointer, ldc: keys.count)
            for row in 0..<rows {
                let visible = visibleColumns(query: item.queries.lowerBound + row % n, keys: keys)
                let rescale = ck_online_softmax_step(scratch.scores.pointer + row * keys.count, keys.count,
                                                     visible.lowerBound, visible.upperBound,
                                                     scratch.runningMax.pointer + row, scratch.runningSum.pointer + row)
                if rescale != 1 { scaleRow(scratch.output.pointer + row * d, by: rescale, count: d) }
            }
            try gemm(m: rows, n: d, k: keys.count, a: scratch.scores.pointer, lda: keys.count,
                 b: valueBase + keys.lowerBound * keyValueStride, ldb: keyValueStride,
                 beta: 1, c: scratch.output.pointer, ldc: d)
        }
        for h in 0..<group {
            for t in 0..<n {
                let row = h * n + t
                let token = item.sequenceStart + item.queries.lowerBound + t
                // The query's own key is always visible, so the sum is positive.
                let normalizer = 1 / scratch.runningSum[row]
                let target = operands.context + token * contextWidth + (firstHead + h) * d
                for c in 0..<d { target[c] = scratch.output[row * d + c] * normalizer }
            }
        }
    }

    /// The columns of the key block `keys` that query `query` sees (an empty range for none).
    func visibleColumns(query: Int, keys: Range<Int>) -> Range<Int> {
        let first = max(firstVisibleKey(query), keys.lowerBound), end = min(query + 1, keys.upperBound)
        return first < end ? (first - keys.lowerBound)..<(end - keys.lowerBound) : 0..<0
    }
}

private func scaleRow(_ row: UnsafeMutablePointer<Float>, by factor: Float, count: Int) {
    for index in 0..<count { row[index] *= factor }
}
