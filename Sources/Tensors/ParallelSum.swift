import Dispatch

/// `Σ term(i)` over `0..<count`, the range split into `threads` contiguous parts that are summed
/// on their own threads and then added in order, so a given thread count always gives the same
/// result.
public func parallelSum(count: Int, threads: Int, _ term: @Sendable (Int) -> Double) -> Double {
    let parts = min(max(threads, 1), count)
    guard parts > 1 else { return (0..<max(count, 0)).reduce(0) { $0 + term($1) } }
    let sums = UnsafeMutableBufferPointer<Double>.allocate(capacity: parts)
    sums.initialize(repeating: 0)
    defer { sums.deallocate() }
    // Each part writes only its own slot.
    nonisolated(unsafe) let slots = sums
    DispatchQueue.concurrentPerform(iterations: parts) { part in
        var sum: Double = 0
        for index in (count * part / parts)..<(count * (part + 1) / parts) { sum += term(index) }
        slots[part] = sum
    }
    return sums.reduce(0, +)
}
