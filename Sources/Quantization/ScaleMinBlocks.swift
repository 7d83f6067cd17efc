/// The encoder of the two legacy scale-and-minimum formats, Q4_1 and Q5_1 (x = d·q + m over
/// blocks of 32), which differ only in `nmax` and in how `store` packs a block's d, m and levels.
/// Without importance: quantize_row_q{4,5}_1_ref, the block's range split into `nmax` steps.
/// With it: quantize_row_q{4,5}_1_impl, σ² over the whole row, then make_qkx3_quants per block.
func encodeScaleMinBlocks(_ x: UnsafePointer<Float>, count: Int, importance: UnsafePointer<Float>?, nmax: Int, blockBytes: Int,
                          into blocks: UnsafeMutableRawPointer, scratch: BlockScratch,
                          store: (_ d: Float, _ m: Float, _ levels: UnsafePointer<UInt8>, _ block: UnsafeMutableRawPointer) -> Void) {
    let levels = scratch.levels
    guard let importance else {
        for block in 0..<count / 32 {
            let (d, m) = rangeLevels(x + 32 * block, nmax: nmax, levels: levels)
            store(d, m, levels, blocks + blockBytes * block)
        }
        return
    }
    let sigma2 = sumOfSquares(x, count: count) / Float(count)
    for block in 0..<count / 32 {
        let xb = x + 32 * block
        importanceWeights(xb, importance + 32 * block, count: 32, sigma2: sigma2, into: scratch.weights)
        let (d, min) = asymmetricScale(count: 32, nmax: nmax, xb, weights: scratch.weights, levels: levels,
                                       trial: scratch.trial, rmin: -0.9, rdelta: 0.05, steps: 36, absoluteError: false)
        store(d, -min, levels, blocks + blockBytes * block)
    }
}

/// quantize_row_q4_1_ref / q5_1_ref: d = (max − min)/nmax, m = min, levels (x − min)/d rounded
/// half up (a truncating cast of +0.5). Q4_1 caps the levels at 15; Q5_1's cast cannot exceed 31.
/// Returns d and m unrounded; the caller stores them as halves.
func rangeLevels(_ x: UnsafePointer<Float>, nmax: Int, levels: UnsafeMutablePointer<UInt8>) -> (d: Float, m: Float) {
    var min = Float.greatestFiniteMagnitude, max = -Float.greatestFiniteMagnitude
    for j in 0..<32 {
        if x[j] < min { min = x[j] }
        if x[j] > max { max = x[j] }
    }
    let d = (max - min) / Float(nmax)
    let id: Float = d != 0 ? 1 / d : 0
    for j in 0..<32 {
        let q = truncatedByte((x[j] - min) * id + 0.5)
        levels[j] = nmax == 15 ? UInt8(bitPattern: Swift.min(15, Int8(bitPattern: q))) : q
    }
    return (d, min)
}
