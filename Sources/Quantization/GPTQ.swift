import CLinearAlgebra
import Foundation
import Tensors

/// GPTQ (Frantar et al. 2022, arXiv 2210.17323) on ggml's block grids: the weights of a row are
/// rounded one column at a time, and each column's rounding error is pushed onto the columns not
/// yet rounded through the inverse Hessian of the layer's inputs, H = Σ x xᵀ over calibration
/// tokens, so the rounding minimises ‖(W − Ŵ) X‖² rather than ‖W − Ŵ‖².
///
/// Blocks: when a block of the type (32 weights, or a 256-weight k-quant super-block) is reached,
/// its scales and mins are chosen by the type's own weighted encoder on the weights as updated so
/// far (the importance weights are diag(H) / tokens, as llama.cpp's imatrix), and each weight of
/// the block then takes the nearest level of that grid (BlockGrid). A lattice block (IQ2_*) has
/// no level per weight: each group of eight columns takes its nearest codebook point at the
/// block's scale (weights 1/U_jj², the columns' error costs), and the group's errors are pushed
/// on column by column as for any other rounding, which is the optimal update of the columns
/// after it for the group as chosen (the block form of the same step, as QuIP#'s BlockLDLQ and
/// GPTVQ, van Baalen et al. 2024, take it). Updates are lazy: within a
/// batch of columns (at least 128, a whole number of blocks) they touch only the batch; the rest
/// of the matrix gets one matrix product per batch (the paper's §4 "lazy batch updates").
///
/// Dampening: λ = `dampening` × mean(diag H) is added to the diagonal; when the Cholesky
/// factorisation still fails (H singular, as with fewer tokens than columns), λ grows tenfold, up
/// to five times. Columns no token touched (H_jj = 0) are fixed to 1 on the diagonal, as the
/// reference implementation does; their weights round without error feedback.
public struct GPTQOptions: Sendable {
    public var dampening: Double = 0.01
    public var batchColumns: Int = 128

    public init(dampening: Double = 0.01, batchColumns: Int = 128) {
        self.dampening = dampening
        self.batchColumns = batchColumns
    }
}

public struct GPTQReport: Sendable, Equatable {
    /// The relative dampening that made H positive definite.
    public let dampening: Double
    /// Σ over rows and columns of (w − ŵ)² / U_jj² (U the upper Cholesky factor of H⁻¹), the
    /// reference implementation's Losses.
    public let loss: Double
}

public enum GPTQError: Error, CustomStringConvertible, Equatable {
    case notPositiveDefinite(dampening: Double)
    case shape(String)

    public var description: String {
        switch self {
        case .notPositiveDefinite(let dampening): "the input Hessian is not positive definite even with relative dampening \(dampening)"
        case .shape(let problem): problem
        }
    }
}

/// Quantizes `rows` × `rowLength` weights (row-major) to `type` with GPTQ. `hessian` is the
/// `rowLength` × `rowLength` matrix Σ x xᵀ over `tokens` calibration inputs (row-major; only
/// symmetry is assumed). Writes `type.rowBytes(rowLength)` bytes per row into `destination`.
public func gptqQuantizeRows(_ type: GGMLType, _ weights: UnsafePointer<Float>, rows: Int, rowLength: Int,
                             hessian: UnsafePointer<Double>, tokens: Int, options: GPTQOptions = GPTQOptions(),
                             into destination: UnsafeMutableRawPointer) throws -> GPTQReport {
    guard type.isQuantized, let format = type.blockFormat else {
        throw GPTQError.shape("GPTQ needs a quantized type, not \(type.name)")
    }
    guard rowLength % type.blockSize == 0 else {
        throw QuantizationError.rowLengthNotMultipleOfBlock(type: type, rowLength: rowLength)
    }
    let n = rowLength
    let w = UnsafeMutablePointer<Float>.allocate(capacity: rows * n)
    defer { w.deallocate() }
    w.update(from: weights, count: rows * n)
    if let column = firstNonFinite(w, count: rows * n) {
        throw QuantizationError.nonFiniteInput(row: column / n, column: column % n)
    }

    // Importance for the scale search: mean squares of the inputs (the imatrix), before dampening.
    var importance = [Float](repeating: 0, count: n)
    let count = Double(max(tokens, 1))
    for j in 0..<n { importance[j] = Float(max(hessian[j * n + j], 0) / count) }

    let (inverse, dampening) = try upperCholeskyOfInverse(hessian, size: n, rows: rows, weights: w, relativeDampening: options.dampening)
    defer { inverse.deallocate() }

    let blockSize = type.blockSize, blockBytes = type.bytesPerBlock, rowBytes = type.rowBytes(n)
    let batch = max(options.batchColumns / blockSize, 1) * blockSize
    let errors = UnsafeMutablePointer<Float>.allocate(capacity: rows * batch)
    defer { errors.deallocate() }
    let lattice = format as? any LatticeBlockFormat.Type
    let grid = BlockGrid(type: type)
    defer { grid.deallocate() }
    // A lattice block's current group of eight, decoded, per row; and the group's column weights.
    let decodedGroups = UnsafeMutablePointer<Float>.allocate(capacity: rows * 8)
    let groupWeights = UnsafeMutablePointer<Float>.allocate(capacity: 8)
    defer {
        decodedGroups.deallocate()
        groupWeights.deallocate()
    }
    // Every row's grid and levels for the block being rounded.
    let zeros = UnsafeMutablePointer<Float>.allocate(capacity: rows * blockSize)
    let steps = UnsafeMutablePointer<Float>.allocate(capacity: rows * blockSize)
    let levels = UnsafeMutablePointer<Int32>.allocate(capacity: rows * blockSize)
    defer {
        zeros.deallocate()
        steps.deallocate()
        levels.deallocate()
    }
    let scratch = BlockScratch()
    defer { scratch.deallocate() }
    let lowest = Float(type.levelRange.lowerBound), highest = Float(type.levelRange.upperBound)
    var loss = 0.0

    for batchStart in stride(from: 0, to: n, by: batch) {
        let batchEnd = min(batchStart + batch, n)
        for blockStart in stride(from: batchStart, to: batchEnd, by: blockSize) {
            // Scales and mins for this block of every row, from the weights as updated so far.
            for row in 0..<rows {
                let block = destination + row * rowBytes + blockStart / blockSize * blockBytes
                importance.withUnsafeBufferPointer {
                    format.encode(w + row * n + blockStart, count: blockSize, importance: $0.baseAddress! + blockStart, into: block, scratch: scratch)
                }
                guard lattice == nil else { continue }
                grid.read(UnsafeRawPointer(block))
                (zeros + row * blockSize).update(from: grid.zero, count: blockSize)
                (steps + row * blockSize).update(from: grid.step, count: blockSize)
            }
            for column in blockStart..<(blockStart + blockSize) {
                let diagonal = inverse[column * n + column]
                let offset = column - blockStart
                let inverseRow = inverse + column * n
                if let lattice, offset % 8 == 0 {
                    for c in 0..<8 {
                        let u = inverse[(column + c) * n + column + c]
                        groupWeights[c] = 1 / (u * u)
                    }
                    for row in 0..<rows {
                        lattice.roundGroup(destination + row * rowBytes + blockStart / blockSize * blockBytes, group: offset / 8,
                                           w + row * n + column, weights: groupWeights, decoded: decodedGroups + 8 * row)
                    }
                }
                for row in 0..<rows {
                    let value = w[row * n + column]
                    let rounded: Float
                    if lattice != nil {
                        rounded = decodedGroups[8 * row + offset % 8]
                    } else {
                        let step = steps[row * blockSize + offset], zero = zeros[row * blockSize + offset]
                        // A zero step (an all-zero sub-block): every level decodes alike; store the lowest.
                        let ideal = step != 0 ? ((value - zero) / step).rounded() : lowest
                        let level = ideal.isFinite ? max(min(ideal, highest), lowest) : lowest
                        levels[row * blockSize + offset] = Int32(level)
                        rounded = zero + level * step
                    }
                    let error = (value - rounded) / diagonal
                    loss += Double(error * error)
                    errors[row * batch + (column - batchStart)] = error
                    // Within the batch, push the error onto the columns still to round.
                    let rowWeights = w + row * n
                    for later in (column + 1)..<batchEnd { rowWeights[later] -= error * inverseRow[later] }
                }
            }
            for row in 0..<rows where lattice == nil {
                type.storeLevels(levels + row * blockSize, into: destination + row * rowBytes + blockStart / blockSize * blockBytes)
            }
        }
        // The rest of the matrix, in one product: W[:, end:] −= E · H⁻¹[batch, end:].
        if batchEnd < n {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(n - batchEnd), Int32(batchEnd - batchStart),
                        -1, errors, Int32(batch), inverse + batchStart * n + batchEnd, Int32(n), 1, w + batchEnd, Int32(n))
        }
    }
    return GPTQReport(dampening: dampening, loss: loss)
}

/// The upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU), as GPTQ uses it: row j of U holds the OBS
/// update coefficients of column j onto the columns after it, and U_jj² = [H⁻¹]_jj given the
/// columns before. Dead columns are fixed; dampening grows until the factorisation succeeds.
private func upperCholeskyOfInverse(_ hessian: UnsafePointer<Double>, size n: Int, rows: Int, weights: UnsafeMutablePointer<Float>,
                                    relativeDampening: Double) throws -> (UnsafeMutablePointer<Float>, Double) {
    var base = [Double](UnsafeBufferPointer(start: hessian, count: n * n))
    // Symmetrise (callers may fill one triangle more carefully than the other) and fix dead columns.
    for i in 0..<n {
        for j in (i + 1)..<max(i + 1, n) {
            let mean = 0.5 * (base[i * n + j] + base[j * n + i])
            base[i * n + j] = mean
            base[j * n + i] = mean
        }
        if base[i * n + i] <= 0 {
            base[i * n + i] = 1
            for row in 0..<rows { weights[row * n + i] = 0 }
        }
    }
    let meanDiagonal = (0..<n).reduce(0.0) { $0 + base[$1 * n + $1] } / Double(n)
    var dampening = relativeDampening
    for _ in 0..<6 {
        var matrix = base
        let lambda = dampening * meanDiagonal
        for i in 0..<n { matrix[i * n + i] += lambda }
        // Cholesky of H (upper, row-major), its inverse, then the upper Cholesky factor of that.
        let upper = CChar(UInt8(ascii: "U"))
        var status = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, upper, LapackInt(n), &matrix, LapackInt(n))
        if status == 0 { status = LAPACKE_dpotri(LAPACK_ROW_MAJOR, upper, LapackInt(n), &matrix, LapackInt(n)) }
        if status == 0 {
            for i in 0..<n { for j in 0..<i { matrix[i * n + j] = matrix[j * n + i] } }
            status = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, upper, LapackInt(n), &matrix, LapackInt(n))
        }
        if status == 0 {
            let result = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
            for i in 0..<n { for j in 0..<n { result[i * n + j] = j >= i ? Float(matrix[i * n + j]) : 0 } }
            return (result, dampening)
        }
        dampening *= 10
    }
    throw GPTQError.notPositiveDefinite(dampening: dampening / 10)
}
