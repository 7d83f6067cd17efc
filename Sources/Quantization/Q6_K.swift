/// Q6_K (block_q6_K, 210 bytes per 256 weights): ql[128] (low 4 bits), qh[64] (top 2 bits),
/// sixteen int8 sub-block scales, then d (half). x = d·sc·(q − 32), q ∈ [0, 63]. Within each
/// 128 weights (ql and qh advancing by 64 and 32 bytes), for l < 32: ql[l] holds weights l and
/// l+64 in its low and high nibble, ql[l+32] weights l+32 and l+96; qh[l] holds the top bits of
/// weights l, l+32, l+64, l+96 in bits 0–1, 2–3, 4–5, 6–7.
enum Q6_K: BlockFormat {
    static func encode(_ x: UnsafePointer<Float>, count: Int, importance: UnsafePointer<Float>?,
                       into blocks: UnsafeMutableRawPointer, scratch s: BlockScratch) {
        let levels = s.signedLevels
        for block in 0..<count / 256 {
            let xb = x + 256 * block, out = blocks + 210 * block
            // make_qx_quants per sub-block of 16; ggml weights the error by the imatrix itself
            // (quantize_row_q6_K_impl), or by x² without one (quantize_row_q6_K_ref).
            var maxScale: Float = 0, maxAbsScale: Float = 0
            for j in 0..<16 {
                let xs = xb + 16 * j
                let weights: UnsafePointer<Float>
                if let importance {
                    weights = importance + 256 * block + 16 * j
                } else {
                    for i in 0..<16 { s.weights[i] = xs[i] * xs[i] }
                    weights = UnsafePointer(s.weights)
                }
                s.scales[j] = symmetricScale(count: 16, nmax: 32, xs, weights: weights, levels: levels + 16 * j)
                if abs(s.scales[j]) > maxAbsScale {
                    maxAbsScale = abs(s.scales[j])
                    maxScale = s.scales[j]
                }
            }
            if maxAbsScale < groupMaxEpsilon {
                out.initializeMemory(as: UInt8.self, repeating: 0, count: 210)
                continue
            }
            let iscale = -128 / maxScale
            out.storeHalf(1 / iscale, at: 208)
            for j in 0..<16 {
                let scale = Int8(truncatingIfNeeded: Swift.min(127, nearestInt(iscale * s.scales[j])))
                out.storeBytes(of: scale, toByteOffset: 192 + j, as: Int8.self)
            }
            // Requantize every sub-block against the scales as stored.
            let d = UnsafeRawPointer(out).loadHalf(at: 208)
            for j in 0..<16 {
                let dj = d * Float(out.load(fromByteOffset: 192 + j, as: Int8.self))
                if dj == 0 { continue }
                for i in 16 * j..<16 * j + 16 { levels[i] = Int8(clamp(nearestInt(xb[i] / dj), -32, 31) + 32) }
            }
            for group in 0..<2 {
                let q = UnsafeRawPointer(levels + 128 * group).assumingMemoryBound(to: UInt8.self)
                for l in 0..<32 {
                    let q1 = q[l], q2 = q[l + 32], q3 = q[l + 64], q4 = q[l + 96]
                    out.storeBytes(of: (q1 & 0x0F) | ((q3 & 0x0F) << 4), toByteOffset: 64 * group + l, as: UInt8.self)
                    out.storeBytes(of: (q2 & 0x0F) | ((q4 & 0x0F) << 4), toByteOffset: 64 * group + l + 32, as: UInt8.self)
                    let high = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6)
                    out.storeBytes(of: high, toByteOffset: 128 + 32 * group + l, as: UInt8.self)
                }
            }
        }
    }

    static func decode(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        for block in 0..<count / 256 {
            let b = blocks + 210 * block
            let d = b.loadHalf(at: 208)
            for group in 0..<2 {
                let ql = b + 64 * group, qh = b + 128 + 32 * group, yg = y + 256 * block + 128 * group
                for l in 0..<32 {
                    let scale = { (k: Int) in d * Float(Int8(bitPattern: b.byte(192 + 8 * group + l / 16 + 2 * k))) }
                    let high = qh.byte(l)
                    yg[l] = scale(0) * Float(Int((ql.byte(l) & 0x0F) | ((high & 3) << 4)) - 32)
                    yg[l + 32] = scale(1) * Float(Int((ql.byte(l + 32) & 0x0F) | (((high >> 2) & 3) << 4)) - 32)
                    yg[l + 64] = scale(2) * Float(Int((ql.byte(l) >> 4) | (((high >> 4) & 3) << 4)) - 32)
                    yg[l + 96] = scale(3) * Float(Int((ql.byte(l + 32) >> 4) | (((high >> 6) & 3) << 4)) - 32)
                }
            }
        }
    }
}
