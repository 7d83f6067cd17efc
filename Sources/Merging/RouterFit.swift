import Foundation
import CLinearAlgebra

/// Router rows for merged experts, fitted on calibration inputs so that each merged expert's
/// logit matches the log-sum-exp of its members' logits: a cluster's members had softmax
/// probabilities that added up, and exp(merged logit) = Σ exp(member logits) makes the merged
/// expert's probability exactly their sum. One row cannot do that for every input, so it is
/// the ridge least-squares solution, pulled toward `initial` (the usage-weighted mean row):
///
///   minimise over w_c:  Σ_t (w_c · x_t − y_ct)² + λ ‖w_c − w⁰_c‖²,   y_ct = log Σ_{j∈c} exp(w_j · x_t)
///   ⇒ (XᵀX + λI) (w_c − w⁰_c) = Xᵀ (y_c − X w⁰_c),   λ = ridge × trace(XᵀX) / dimension
///
/// With a router bias, x_t gains a constant 1 and the bias is fitted with the row. One
/// Cholesky factorisation (LAPACK dposv) serves every cluster of the layer. A singleton's
/// target is its own logit, so with its own row as `initial` its row comes back unchanged.
public struct RouterFit: Sendable {
    public struct Summary: Sendable, Codable, Equatable {
        public let tokens: Int
        /// Root-mean-square error of the merged logits against the log-sum-exp targets, over
        /// the fitting tokens and clusters: with the initial rows, and with the fitted ones.
        public let rmsErrorInitial: Double
        public let rmsErrorFitted: Double

        enum CodingKeys: String, CodingKey {
            case tokens
            case rmsErrorInitial = "rms_error_initial"
            case rmsErrorFitted = "rms_error_fitted"
        }
    }

    /// `clusters x hidden`, row-major.
    public let rows: [Double]
    public let bias: [Double]?
    public let summary: Summary

    /// `inputs`: `tokens x hidden` router inputs; `weights`: the layer's `experts x hidden` router
    /// rows, `bias` its per-expert bias if it has one; `initial` (`clusters x hidden`) and
    /// `initialBias` the starting rows.
    public init(inputs: [Float], tokens: Int, hidden: Int, weights: [Float], bias: [Float]?, clusters: [[Int]],
                initial: [Double], initialBias: [Double]?, ridge: Double) throws {
        let experts = hidden > 0 ? weights.count / hidden : 0
        let k = clusters.count
        guard tokens >= 0, hidden >= 1, inputs.count == tokens * hidden, weights.count == experts * hidden, experts >= 1,
              initial.count == k * hidden, (bias == nil) == (initialBias == nil), bias.map({ $0.count == experts }) ?? true,
              initialBias.map({ $0.count == k }) ?? true, clusters.flatMap({ $0 }).allSatisfy({ (0..<experts).contains($0) }) else {
            throw MergingError("router fit: shapes disagree (\(tokens) tokens x \(hidden), \(weights.count) router values, \(k) clusters)")
        }
        guard ridge.isFinite, ridge > 0 else { throw MergingError("router fit: ridge \(ridge) must be positive") }
        let dimension = hidden + (bias == nil ? 0 : 1)
        // Augmented inputs, weights and starting rows (the bias as a last column).
        var x = [Double](repeating: 1, count: tokens * dimension)
        for t in 0..<tokens { for h in 0..<hidden { x[t * dimension + h] = Double(inputs[t * hidden + h]) } }
        var w = [Double](repeating: 0, count: experts * dimension)
        for e in 0..<experts {
            for h in 0..<hidden { w[e * dimension + h] = Double(weights[e * hidden + h]) }
            if let bias { w[e * dimension + hidden] = Double(bias[e]) }
        }
        var start = [Double](repeating: 0, count: k * dimension)
        for c in 0..<k {
            for h in 0..<hidden { start[c * dimension + h] = initial[c * hidden + h] }
            if let initialBias { start[c * dimension + hidden] = initialBias[c] }
        }
        // Residual targets r[t][c] = y_ct − w⁰_c · x_t = log Σ_{j∈c} exp((w_j − w⁰_c) · x_t), from the
        // members' offsets to their cluster's start: no cancellation between two separately
        // rounded products, and exactly 0 for a singleton that starts at its own row.
        let pairs = clusters.enumerated().flatMap { c, members in members.map { (cluster: c, expert: $0) } }
        var offsets = [Double](repeating: 0, count: pairs.count * dimension)
        for (p, pair) in pairs.enumerated() {
            for d in 0..<dimension { offsets[p * dimension + d] = w[pair.expert * dimension + d] - start[pair.cluster * dimension + d] }
        }
        let relative = product(x, offsets, rows: tokens, columns: pairs.count, inner: dimension)
        var residual = [Double](repeating: 0, count: tokens * k)
        var first = 0
        for (c, members) in clusters.enumerated() {
            for t in 0..<tokens {
                let values = relative[(t * pairs.count + first)..<(t * pairs.count + first + members.count)]
                let top = values.max() ?? 0
                residual[t * k + c] = top + log(values.reduce(0) { $0 + exp($1 - top) })
            }
            first += members.count
        }
        var gram = [Double](repeating: 0, count: dimension * dimension)
        x.withUnsafeBufferPointer { a in
            gram.withUnsafeMutableBufferPointer { g in
                cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, blasint(dimension), blasint(tokens),
                            1, a.baseAddress, blasint(dimension), 0, g.baseAddress, blasint(dimension))
            }
        }
        let trace = (0..<dimension).reduce(0) { $0 + gram[$1 * dimension + $1] }
        var change = [Double](repeating: 0, count: k * dimension)  // w_c − w⁰_c
        if tokens > 0, trace > 0 {
            let lambda = ridge * trace / Double(dimension)
            for d in 0..<dimension { gram[d * dimension + d] += lambda }
            // Right-hand sides Xᵀ R, dimension x k.
            var rhs = [Double](repeating: 0, count: dimension * k)
            x.withUnsafeBufferPointer { a in
                residual.withUnsafeBufferPointer { r in
                    rhs.withUnsafeMutableBufferPointer { b in
                        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, blasint(dimension), blasint(k), blasint(tokens),
                                    1, a.baseAddress, blasint(dimension), r.baseAddress, blasint(k), 0, b.baseAddress, blasint(k))
                    }
                }
            }
            let status = gram.withUnsafeMutableBufferPointer { a in
                rhs.withUnsafeMutableBufferPointer { b in
                    LAPACKE_dposv(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "U")), LapackInt(dimension), LapackInt(k),
                                  a.baseAddress, LapackInt(dimension), b.baseAddress, LapackInt(k))
                }
            }
            guard status == 0 else { throw MergingError("router fit: LAPACKE_dposv failed (info \(status))") }
            for c in 0..<k { for d in 0..<dimension { change[c * dimension + d] = rhs[d * k + c] } }
        }
        let fitted = zip(start, change).map { $0 + $1 }
        guard fitted.allSatisfy(\.isFinite) else { throw MergingError("router fit: the fitted rows are not finite") }
        // The fitted rows' error y_ct − w_c · x_t = r_ct − (w_c − w⁰_c) · x_t.
        let explained = product(x, change, rows: tokens, columns: k, inner: dimension)
        var before = 0.0, after = 0.0
        for index in 0..<(tokens * k) {
            before += residual[index] * residual[index]
            after += (residual[index] - explained[index]) * (residual[index] - explained[index])
        }
        let count = Double(max(tokens * k, 1))
        rows = (0..<(k * hidden)).map { fitted[($0 / hidden) * dimension + $0 % hidden] }
        self.bias = bias == nil ? nil : (0..<k).map { fitted[$0 * dimension + hidden] }
        summary = Summary(tokens: tokens, rmsErrorInitial: (before / count).squareRoot(), rmsErrorFitted: (after / count).squareRoot())
    }
}

/// `a (rows x inner) · bᵀ` with `b` `columns x inner`, both row-major.
private func product(_ a: [Double], _ b: [Double], rows: Int, columns: Int, inner: Int) -> [Double] {
    var out = [Double](repeating: 0, count: rows * columns)
    guard rows > 0, columns > 0 else { return out }
    a.withUnsafeBufferPointer { x in
        b.withUnsafeBufferPointer { y in
            out.withUnsafeMutableBufferPointer { c in
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blasint(rows), blasint(columns), blasint(inner),
                            1, x.baseAddress, blasint(inner), y.baseAddress, blasint(inner), 0, c.baseAddress, blasint(columns))
            }
        }
    }
    return out
}
