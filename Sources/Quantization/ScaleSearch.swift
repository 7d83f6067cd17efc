// The scale searches of ggml-quants.c, shared by the block formats. Each is written to do ggml's
// float operations in ggml's order (no fused multiply-adds, left-to-right sums), so the levels
// and scales, and with them the bytes, come out as ggml's.

/// ggml's GROUP_MAX_EPS: a group whose largest magnitude is below this is stored as zeros.
let groupMaxEpsilon: Float = 1e-15

/// ggml's nearest_int: adding 1.5·2^23 leaves the rounded value (half to even) in the low
/// mantissa bits. Exact for |x| < 2^22; beyond that it returns what ggml's formula returns.
@inline(__always) func nearestInt(_ x: Float) -> Int {
    let shifted = x + 12_582_912
    return Int(shifted.bitPattern & 0x007F_FFFF) - 0x0040_0000
}

@inline(__always) func clamp(_ value: Int, _ lower: Int, _ upper: Int) -> Int {
    Swift.max(lower, Swift.min(upper, value))
}

/// make_qx_quants (rmse_type 1): symmetric levels l ∈ [-nmax, nmax-1], stored as l + nmax in
/// `levels`, and the scale s minimising Σ w (x − s·l)² over nineteen trial reciprocal scales
/// −(nmax + k/10)/max, k = -9…9 (the least-squares s for each set of levels). ggml tries them one
/// after another; they are independent, so eight at a time here, one per SIMD lane, each lane
/// summing in ggml's order, and then compared in ggml's order.
func symmetricScale(count: Int, nmax: Int, _ x: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                    levels: UnsafeMutablePointer<Int8>) -> Float {
    var max: Float = 0, amax: Float = 0
    for i in 0..<count where abs(x[i]) > amax {
        amax = abs(x[i])
        max = x[i]
    }
    if amax < groupMaxEpsilon {
        levels.update(repeating: 0, count: count)
        return 0
    }
    // Trial t = 0 is ggml's first guess −nmax/max (k = 0); it sets the bar the others must beat.
    var scale: Float = 0, best: Float = 0, bestIscale: Float = 0
    let lowest = Lanes(repeating: Float(-nmax)), highest = Lanes(repeating: Float(nmax - 1))
    for batch in 0..<3 {
        // ggml's k in ggml's order: 0 (its first guess), then −9…−1, 1…9; the last lanes unused.
        let steps = batch == 0 ? Lanes(0, -9, -8, -7, -6, -5, -4, -3) : batch == 1 ? Lanes(-2, -1, 1, 2, 3, 4, 5, 6) : Lanes(7, 8, 9, 9, 9, 9, 9, 9)
        let iscales = -(Lanes(repeating: Float(nmax)) + Lanes(repeating: 0.1) * steps) / Lanes(repeating: max)
        let (lx, l2) = symmetricTrialSums(count: count, x, weights: weights, iscales: iscales, lowest: lowest, highest: highest)
        for lane in 0..<Lanes.scalarCount {
            let t = batch * Lanes.scalarCount + lane
            if t == 0 {
                scale = l2[lane] != 0 ? lx[lane] / l2[lane] : 0
                best = scale * lx[lane]
                bestIscale = iscales[lane]
            } else if t < 19 && l2[lane] > 0 && lx[lane] * lx[lane] > best * l2[lane] {
                scale = lx[lane] / l2[lane]
                best = scale * lx[lane]
                bestIscale = iscales[lane]
            }
        }
    }
    for i in 0..<count {
        levels[i] = Int8(truncatingIfNeeded: clamp(nearestInt(bestIscale * x[i]), -nmax, nmax - 1) + nmax)
    }
    return scale
}

/// One batch of symmetricScale's trials: each lane's Σ w·x·l and Σ w·l² in ggml's order (out of
/// line for the reason given at trialSums).
@inline(never)
private func symmetricTrialSums(count: Int, _ x: UnsafePointer<Float>, weights: UnsafePointer<Float>, iscales: Lanes,
                                lowest: Lanes, highest: Lanes) -> (Lanes, Lanes) {
    var lx = Lanes(), l2 = Lanes()
    for i in 0..<count {
        let l = roundedHalfEven(iscales * Lanes(repeating: x[i])).clamped(lowest, highest)
        lx += Lanes(repeating: weights[i] * x[i]) * l
        l2 += Lanes(repeating: weights[i]) * l * l
    }
    return (lx, l2)
}

/// Eight trial scales side by side, one per lane.
typealias Lanes = SIMD8<Float>

/// nearest_int for every lane, as a float: adding and removing 1.5·2^23 rounds half to even,
/// the same integer ggml's bit trick extracts (for |v| < 2^22, the only values the searches see).
@inline(__always) func roundedHalfEven(_ v: Lanes) -> Lanes { (v + magicRound) - magicRound }

private let magicRound = Lanes(repeating: 12_582_912)

extension SIMD8<Float> {
    // The standard pointwiseMin/Max do not inline and go lane by lane through Float.minimum's
    // NaN rules; a masked replacement on each 4-lane half compiles to minps/maxps.
    @inline(__always) func clamped(_ lower: Self, _ upper: Self) -> Self {
        Self(lowHalf: lowHalf.clamped(lower.lowHalf, upper.lowHalf), highHalf: highHalf.clamped(lower.highHalf, upper.highHalf))
    }

    @inline(__always) func capped(_ upper: Self) -> Self {
        Self(lowHalf: lowHalf.capped(upper.lowHalf), highHalf: highHalf.capped(upper.highHalf))
    }

    /// fabsf in every lane: the sign bits cleared.
    @inline(__always) var magnitude: Self {
        unsafeBitCast(unsafeBitCast(self, to: SIMD8<UInt32>.self) & 0x7FFF_FFFF, to: Self.self)
    }
}

extension SIMD4<Float> {
    @inline(__always) func clamped(_ lower: Self, _ upper: Self) -> Self {
        var result = self
        result.replace(with: lower, where: result .< lower)
        result.replace(with: upper, where: result .> upper)
        return result
    }

    @inline(__always) func capped(_ upper: Self) -> Self {
        var result = self
        result.replace(with: upper, where: result .> upper)
        return result
    }
}

/// make_q3_quants with do_rmse: symmetric levels as above, then up to five passes that move
/// single levels while that raises (Σ w x l)² / Σ w l², with weights w = x².
func symmetricScaleRefined(count: Int, nmax: Int, _ x: UnsafePointer<Float>, levels: UnsafeMutablePointer<Int8>) -> Float {
    var max: Float = 0, amax: Float = 0
    for i in 0..<count where abs(x[i]) > amax {
        amax = abs(x[i])
        max = x[i]
    }
    if amax < groupMaxEpsilon {
        levels.update(repeating: 0, count: count)
        return 0
    }
    let iscale = Float(-nmax) / max
    var sumlx: Float = 0, suml2: Float = 0
    for i in 0..<count {
        let l = clamp(nearestInt(iscale * x[i]), -nmax, nmax - 1)
        levels[i] = Int8(truncatingIfNeeded: l)
        let w = x[i] * x[i], fl = Float(l)
        sumlx += w * x[i] * fl
        suml2 += w * fl * fl
    }
    for _ in 0..<5 {
        var changed = false
        for i in 0..<count {
            let w = x[i] * x[i], old = Float(levels[i])
            var slx = sumlx - w * x[i] * old
            guard slx > 0 else { continue }
            var sl2 = suml2 - w * old * old
            let l = clamp(nearestInt(x[i] * sl2 / slx), -nmax, nmax - 1)
            guard l != Int(levels[i]) else { continue }
            slx += w * x[i] * Float(l)
            sl2 += w * Float(l) * Float(l)
            if sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                levels[i] = Int8(truncatingIfNeeded: l)
                sumlx = slx
                suml2 = sl2
                changed = true
            }
        }
        if !changed { break }
    }
    for i in 0..<count { levels[i] &+= Int8(truncatingIfNeeded: nmax) }
    return suml2 > 0 ? sumlx / suml2 : 0
}

/// make_qkx2_quants / make_qkx3_quants (the same search when weights are given): levels
/// l ∈ [0, nmax] with x ≈ s·l − m, m ≥ 0. Starts from the range [min(x, 0), max(x)] split into
/// nmax steps, then tries reciprocal scales (nmax + rmin + k·rdelta)/range, k = 0…steps, each
/// with its weighted least-squares s and m, keeping the smallest Σ w·err (err = |diff| with
/// `absoluteError`, else diff²). Returns s and m.
///
/// ggml runs the trials in order, and a better trial moves the range's lower end (its m) for the
/// trials after it. Here eight consecutive trials run at once, one per SIMD lane, against the
/// current lower end; they are accepted in ggml's order, and after one that moves the lower end
/// the rest are discarded and run again from there. Every lane sums in ggml's order, so the result
/// is ggml's exactly. `trial` holds the lanes' levels (count entries).
func asymmetricScale(count: Int, nmax: Int, _ x: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                     levels: UnsafeMutablePointer<UInt8>, trial: UnsafeMutablePointer<Lanes>,
                     rmin: Float, rdelta: Float, steps: Int, absoluteError: Bool) -> (scale: Float, min: Float) {
    var low = x[0], high = x[0]
    var sumW = weights[0]
    var sumX = sumW * x[0]
    for i in 1..<count {
        if x[i] < low { low = x[i] }
        if x[i] > high { high = x[i] }
        sumW += weights[i]
        sumX += weights[i] * x[i]
    }
    if low > 0 { low = 0 }
    if high == low {
        levels.update(repeating: 0, count: count)
        return (0, -low)
    }
    let iscale = Float(nmax) / (high - low)
    var scale = 1 / iscale
    var bestError: Float = 0
    for i in 0..<count {
        let l = clamp(nearestInt(iscale * (x[i] - low)), 0, nmax)
        levels[i] = UInt8(truncatingIfNeeded: l)
        let diff = scale * Float(l) + low - x[i]
        bestError += weights[i] * (absoluteError ? abs(diff) : diff * diff)
    }
    if steps < 1 { return (scale, -low) }
    // The accepted trial, to rebuild its levels at the end: its k and the lower end it used.
    var best: (step: Int, low: Float)?
    let zero = Lanes(), top = Lanes(repeating: Float(nmax))
    var next = 0
    while next <= steps {
        let k = laneIndices + Lanes(repeating: Float(next))
        let iscales = (Lanes(repeating: rmin) + Lanes(repeating: rdelta) * k + top) / Lanes(repeating: high - low)
        let (sumL, sumL2, sumXL) = trialSums(count: count, x, weights: weights, iscales: iscales, low: low, top: top, trial: trial)
        let w = Lanes(repeating: sumW), wx = Lanes(repeating: sumX)
        let determinant = w * sumL2 - sumL * sumL
        var trialScale = (w * sumXL - wx * sumL) / determinant
        var trialMin = (sumL2 * wx - sumL * sumXL) / determinant
        let positive = trialMin .> zero
        trialMin.replace(with: zero, where: positive)
        trialScale.replace(with: sumXL / sumL2, where: positive)
        let error = trialErrors(count: count, x, weights: weights, trial: trial, scale: trialScale, min: trialMin,
                                absoluteError: absoluteError)
        let first = next
        next += Lanes.scalarCount
        for lane in 0..<Lanes.scalarCount where first + lane <= steps && determinant[lane] > 0 && error[lane] < bestError {
            bestError = error[lane]
            scale = trialScale[lane]
            best = (first + lane, low)
            if trialMin[lane].bitPattern != low.bitPattern {
                low = trialMin[lane]
                next = first + lane + 1
                break
            }
        }
    }
    if let best {
        let iscale = (rmin + rdelta * Float(best.step) + Float(nmax)) / (high - best.low)
        for i in 0..<count {
            levels[i] = UInt8(truncatingIfNeeded: clamp(nearestInt(iscale * (x[i] - best.low)), 0, nmax))
        }
    }
    return (scale, -low)
}

private let laneIndices = Lanes(0, 1, 2, 3, 4, 5, 6, 7)

/// One batch of asymmetricScale's trials: each lane's levels (into `trial`) and its Σ w·l,
/// Σ w·l², Σ w·l·x in ggml's order. Kept out of line: inlined, LLVM interleaves the iterations
/// with shuffles that cost more than they save.
@inline(never)
private func trialSums(count: Int, _ x: UnsafePointer<Float>, weights: UnsafePointer<Float>, iscales: Lanes, low: Float, top: Lanes,
                       trial: UnsafeMutablePointer<Lanes>) -> (Lanes, Lanes, Lanes) {
    var sumL = Lanes(), sumL2 = Lanes(), sumXL = Lanes()
    for i in 0..<count {
        // Every lane's scale is positive, so a value below `low` rounds to a level ≤ 0 in every
        // lane, which ggml clamps to 0: clamping x − low at 0 first gives the same levels.
        let l = roundedHalfEven(iscales * Lanes(repeating: Swift.max(x[i] - low, 0))).capped(top)
        trial[i] = l
        let wl = Lanes(repeating: weights[i]) * l
        sumL += wl
        sumL2 += wl * l
        sumXL += wl * Lanes(repeating: x[i])
    }
    return (sumL, sumL2, sumXL)
}

/// Each lane's Σ w·err for its scale and min (err = |diff| or diff²), in ggml's order.
@inline(never)
private func trialErrors(count: Int, _ x: UnsafePointer<Float>, weights: UnsafePointer<Float>, trial: UnsafePointer<Lanes>,
                         scale: Lanes, min: Lanes, absoluteError: Bool) -> Lanes {
    var error = Lanes()
    for i in 0..<count {
        let diff = scale * trial[i] + min - Lanes(repeating: x[i])
        error += Lanes(repeating: weights[i]) * (absoluteError ? diff.magnitude : diff * diff)
    }
    return error
}

/// make_qp_quants: levels l ∈ [0, nmax] for non-negative x (the sub-block scales or mins of a
/// k-quant block) with x ≈ s·l: the best of nine trial reciprocal scales (nmax + k/10)/max by
/// weighted error, then up to five passes moving single levels while (Σ w x l)² / Σ w l² grows.
/// Levels are stored as ggml stores them, in a uint8 (a negative x wraps, as in ggml).
func positiveScale(count: Int, nmax: Int, _ x: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                   levels: UnsafeMutablePointer<UInt8>) -> Float {
    var max: Float = 0
    for i in 0..<count { max = max > x[i] ? max : x[i] }
    if max < groupMaxEpsilon {
        levels.update(repeating: 0, count: count)
        return 0
    }
    var iscale = Float(nmax) / max
    for i in 0..<count { levels[i] = UInt8(truncatingIfNeeded: nearestInt(iscale * x[i])) }
    let scale = 1 / iscale
    var bestError: Float = 0
    for i in 0..<count {
        let diff = x[i] - scale * Float(levels[i])
        bestError += weights[i] * diff * diff
    }
    for step in -4...4 where step != 0 {
        let trialIscale = (0.1 * Float(step) + Float(nmax)) / max
        let trialScale = 1 / trialIscale
        var error: Float = 0
        for i in 0..<count {
            let l = Swift.min(nmax, nearestInt(trialIscale * x[i]))
            let diff = x[i] - trialScale * Float(l)
            error += weights[i] * diff * diff
        }
        if error < bestError {
            bestError = error
            iscale = trialIscale
        }
    }
    var sumlx: Float = 0, suml2: Float = 0
    for i in 0..<count {
        let l = Swift.min(nmax, nearestInt(iscale * x[i]))
        levels[i] = UInt8(truncatingIfNeeded: l)
        let w = weights[i], fl = Float(l)
        sumlx += w * x[i] * fl
        suml2 += w * fl * fl
    }
    for _ in 0..<5 {
        var changed = false
        for i in 0..<count {
            let w = weights[i], old = Float(levels[i])
            var slx = sumlx - w * x[i] * old
            var sl2 = suml2 - w * old * old
            guard slx > 0 && sl2 > 0 else { continue }
            let l = Swift.min(nmax, nearestInt(x[i] * sl2 / slx))
            guard l != Int(levels[i]) else { continue }
            slx += w * x[i] * Float(l)
            sl2 += w * Float(l) * Float(l)
            if slx * slx * suml2 > sumlx * sumlx * sl2 {
                levels[i] = UInt8(truncatingIfNeeded: l)
                sumlx = slx
                suml2 = sl2
                changed = true
            }
        }
        if !changed { break }
    }
    return suml2 > 0 ? sumlx / suml2 : 0
}

/// asymmetricScale for eight sub-blocks at once, one per SIMD lane (a k-quant super-block's
/// sub-blocks are searched independently): every lane runs ggml's trials in ggml's order against
/// its own lower end, so no trial is ever run twice and each lane's scale, min and levels are
/// exactly what asymmetricScale (and ggml) gives its sub-block. `x` and `weights` hold the eight
/// sub-blocks one after another, `count` values each; the levels go to `levels` in the same
/// layout. `scratch` supplies the lanes' working rows.
func asymmetricScales(count: Int, nmax: Int, _ x: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                      levels: UnsafeMutablePointer<UInt8>, scratch s: BlockScratch,
                      rmin: Float, rdelta: Float, steps: Int, absoluteError: Bool) -> (scale: Lanes, min: Lanes) {
    let xs = s.laneValues, ws = s.laneWeights
    for i in 0..<count {
        for lane in 0..<Lanes.scalarCount {
            xs[i][lane] = x[lane * count + i]
            ws[i][lane] = weights[lane * count + i]
        }
    }
    var low = xs[0], high = xs[0]
    var sumW = ws[0]
    var sumX = sumW * xs[0]
    for i in 1..<count {
        low.replace(with: xs[i], where: xs[i] .< low)
        high.replace(with: xs[i], where: xs[i] .> high)
        sumW += ws[i]
        sumX += ws[i] * xs[i]
    }
    let zero = Lanes(), top = Lanes(repeating: Float(nmax))
    low.replace(with: zero, where: low .> zero)
    // A flat sub-block (max = min) keeps scale 0 and levels 0, and takes no trials.
    let flat = high .== low
    let iscale = top / (high - low)
    var scale = 1 / iscale
    var bestError = Lanes()
    for i in 0..<count {
        let l = roundedHalfEven(iscale * (xs[i] - low)).clamped(zero, top)
        let diff = scale * l + low - xs[i]
        bestError += ws[i] * (absoluteError ? diff.magnitude : diff * diff)
    }
    // Per lane, the accepted trial (−1: none) and the lower end it was run against.
    var bestStep = SIMD8<Int32>(repeating: -1), bestLow = low
    let initialLow = low
    if steps >= 1 {
        for step in 0...steps {
            let iscales = Lanes(repeating: rmin + rdelta * Float(step) + Float(nmax)) / (high - low)
            var sumL = Lanes(), sumL2 = Lanes(), sumXL = Lanes()
            for i in 0..<count {
                // As in trialSums: clamping x − low at 0 first gives ggml's clamped levels.
                var shifted = xs[i] - low
                shifted.replace(with: zero, where: shifted .< zero)
                let l = roundedHalfEven(iscales * shifted).capped(top)
                s.trial[i] = l
                let wl = ws[i] * l
                sumL += wl
                sumL2 += wl * l
                sumXL += wl * xs[i]
            }
            let determinant = sumW * sumL2 - sumL * sumL
            var trialScale = (sumW * sumXL - sumX * sumL) / determinant
            var trialMin = (sumL2 * sumX - sumL * sumXL) / determinant
            let positive = trialMin .> zero
            trialMin.replace(with: zero, where: positive)
            trialScale.replace(with: sumXL / sumL2, where: positive)
            var error = Lanes()
            for i in 0..<count {
                let diff = trialScale * s.trial[i] + trialMin - xs[i]
                error += ws[i] * (absoluteError ? diff.magnitude : diff * diff)
            }
            let accept = (determinant .> zero) .& (error .< bestError) .& .!flat
            bestError.replace(with: error, where: accept)
            scale.replace(with: trialScale, where: accept)
            bestLow.replace(with: low, where: accept)
            bestStep.replace(with: Int32(step), where: accept)
            low.replace(with: trialMin, where: accept)
        }
    }
    for lane in 0..<Lanes.scalarCount {
        let out = levels + lane * count, values = x + lane * count
        if flat[lane] {
            out.update(repeating: 0, count: count)
            continue
        }
        let step = Int(bestStep[lane])
        let base = step >= 0 ? bestLow[lane] : initialLow[lane]
        let laneIscale = step >= 0 ? (rmin + rdelta * Float(step) + Float(nmax)) / (high[lane] - base) : iscale[lane]
        for i in 0..<count {
            out[i] = UInt8(truncatingIfNeeded: clamp(nearestInt(laneIscale * (values[i] - base)), 0, nmax))
        }
    }
    scale.replace(with: zero, where: flat)
    return (scale, -low)
}
