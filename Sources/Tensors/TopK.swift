/// Indices of the `k` largest values, largest first; ties keep the lower index first, as
/// torch.topk does on CPU for the small rows a router produces.
public func topKIndices(_ values: UnsafePointer<Float>, count: Int, k: Int) -> [Int] {
    var chosen: [Int] = []
    chosen.reserveCapacity(k)
    for index in 0..<count {
        // Insertion into a short sorted list: k is at most a few dozen.
        var position = chosen.count
        while position > 0 && values[chosen[position - 1]] < values[index] { position -= 1 }
        if position < k {
            chosen.insert(index, at: position)
            if chosen.count > k { chosen.removeLast() }
        }
    }
    return chosen
}
