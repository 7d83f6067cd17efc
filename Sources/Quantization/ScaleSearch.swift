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
/// −(nmax + k/10)/max, k = -9…9 (the least-squares s for each set of levels).
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
    var sumlx: Float = 0, suml2: Float = 0
    var iscale = Float(-nmax) / max
    for i in 0..<count {
        let l = clamp(nearestInt(iscale * x[i]), -nmax, nmax - 1)
        levels[i] = Int8(l + nmax)
        let w = weights[i], fl = Float(l)
        sumlx += w * x[i] * fl
        suml2 += w * fl * fl
    }
    var scale = suml2 != 0 ? sumlx / suml2 : 0
    var best = scale * sumlx
    for step in -9...9 where step != 0 {
        iscale = -(Float(nmax) + 0.1 * Float(step)) / max
        sumlx = 0
        suml2 = 0
        for i in 0..<count {
            let l = Float(clamp(nearestInt(iscale * x[i]), -nmax, nmax - 1))
            let w = weights[i]
            sumlx += w * x[i] * l
            suml2 += w * l * l
        }
        if suml2 > 0 && sumlx * sumlx > best * suml2 {
            for i in 0..<count {
                levels[i] = Int8(clamp(nearestInt(iscale * x[i]), -nmax, nmax - 1) + nmax)
            }
            scale = sumlx / suml2
            best = scale * sumlx
        }
    }
    return scale
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
        levels[i] = Int8(l)
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
                levels[i] = Int8(l)
                sumlx = slx
                suml2 = sl2
                changed = true
            }
        }
        if !changed { break }
    }
    for i in 0..<count { levels[i] += Int8(nmax) }
    return suml2 > 0 ? sumlx / suml2 : 0
}

/// make_qkx2_quants / make_qkx3_quants (the same search when weights are given): levels
/// l ∈ [0, nmax] with x ≈ s·l − m, m ≥ 0. Starts from the range [min(x, 0), max(x)] split into
/// nmax steps, then tries reciprocal scales (nmax + rmin + k·rdelta)/range, k = 0…steps, each
/// with its weighted least-squares s and m, keeping the smallest Σ w·err (err = |diff| with
/// `absoluteError`, else diff²). Returns s and m.
func asymmetricScale(count: Int, nmax: Int, _ x: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                     levels: UnsafeMutablePointer<UInt8>, trial: UnsafeMutablePointer<UInt8>,
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
    var iscale = Float(nmax) / (high - low)
    var scale = 1 / iscale
    var bestError: Float = 0
    for i in 0..<count {
        let l = clamp(nearestInt(iscale * (x[i] - low)), 0, nmax)
        levels[i] = UInt8(l)
        let diff = scale * Float(l) + low - x[i]
        bestError += weights[i] * (absoluteError ? abs(diff) : diff * diff)
    }
    if steps < 1 { return (scale, -low) }
    for step in 0...steps {
        iscale = (rmin + rdelta * Float(step) + Float(nmax)) / (high - low)
        var sumL: Float = 0, sumL2: Float = 0, sumXL: Float = 0
        for i in 0..<count {
            let l = clamp(nearestInt(iscale * (x[i] - low)), 0, nmax)
            trial[i] = UInt8(l)
            let w = weights[i], fl = Float(l)
            sumL += w * fl
            sumL2 += w * fl * fl
            sumXL += w * fl * x[i]
        }
        let determinant = sumW * sumL2 - sumL * sumL
        guard determinant > 0 else { continue }
        var trialScale = (sumW * sumXL - sumX * sumL) / determinant
        var trialMin = (sumL2 * sumX - sumL * sumXL) / determinant
        if trialMin > 0 {
            trialMin = 0
            trialScale = sumXL / sumL2
        }
        var error: Float = 0
        for i in 0..<count {
            let diff = trialScale * Float(trial[i]) + trialMin - x[i]
            error += weights[i] * (absoluteError ? abs(diff) : diff * diff)
        }
        if error < bestError {
            levels.update(from: trial, count: count)
            bestError = error
            scale = trialScale
            low = trialMin
        }
    }
    return (scale, -low)
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
