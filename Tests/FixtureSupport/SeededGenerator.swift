import Foundation

/// A deterministic random number generator for tests that build their own inputs (a 64-bit LCG:
/// statistical quality is beside the point, reproducibility is not), with normal samples.
public struct SeededGenerator: RandomNumberGenerator {
    public var state: UInt64

    public init(state: UInt64) { self.state = state }

    public mutating func next() -> UInt64 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return state
    }

    /// A standard normal sample (Box–Muller).
    public mutating func normal() -> Float {
        let u = Float.random(in: Float.ulpOfOne...1, using: &self), v = Float.random(in: 0...1, using: &self)
        return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
    }
}
