/// SplitMix64 (Steele, Lea and Flood 2014): a tiny generator whose stream is fixed by its seed on
/// every platform and Swift version, so the same `--seed` draws the same calibration windows.
/// (The standard library has no seedable generator, and its shuffle algorithm is unspecified.)
public struct SeededRandom {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in 0..<bound (bound > 0), by rejection so that no value is favoured.
    public mutating func next(below bound: Int) -> Int {
        let limit = UInt64(bound)
        let threshold = (0 &- limit) % limit
        while true {
            let value = next()
            if value >= threshold { return Int(value % limit) }
        }
    }

    /// `count` distinct elements of `values` in the order drawn (a partial Fisher–Yates shuffle).
    public mutating func sample<T>(_ values: [T], count: Int) -> [T] {
        var pool = values
        let taken = min(count, pool.count)
        for index in 0..<taken {
            pool.swapAt(index, index + next(below: pool.count - index))
        }
        return Array(pool.prefix(taken))
    }
}
